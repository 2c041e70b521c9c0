/**
 * The `kubectl cnpg storage` command line: a table of subcommands, each a function of its arguments and an IO object,
 * so that commands are tested without a process and new subcommands are one entry in `subcommands`.
 */
import { UsageError, type CliIo, type Subcommand } from './command.ts';
import { simulateSubcommand } from './simulate.ts';
import { statusSubcommand } from './status.ts';
import { validateSubcommand } from './validate.ts';

export { UsageError, type CliIo, type Subcommand } from './command.ts';

export const programName = 'kubectl cnpg storage';

export const subcommands: readonly Subcommand[] = [statusSubcommand, validateSubcommand, simulateSubcommand];

function help(commands: readonly Subcommand[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `Usage: ${programName} <command> [options]`,
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `Run "${programName} <command> --help" for a command's options, "${programName} version" for the version.`,
    '',
  ].join('\n');
}

export async function runCli(argv: readonly string[], io: CliIo, commands: readonly Subcommand[] = subcommands): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    io.stdout(help(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === 'version' || name === '--version') {
    io.stdout(`${programName} ${io.version ?? 'unknown'}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.stderr(`${programName}: unknown command "${name}"\n\n${help(commands)}`);
    return 2;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    io.stdout(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${programName} ${command.name}: ${err.message}\n\n${command.usage}`);
      return 2;
    }
    throw err;
  }
}

/** Entry point of kubectl-cnpg-storage: binds the command line to the process. */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { runCli, type CliIo } from './cli.ts';

const io: CliIo = {
  stdout: (output) => { process.stdout.write(output); },
  stderr: (output) => { process.stderr.write(output); },
  readFile: (file) => readFile(file, 'utf8'),
  readStdin: () => text(process.stdin),
  listDirectory: async (dir) => {
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) return undefined;
    return (await readdir(dir)).sort().map((entry) => path.join(dir, entry));
  },
};

process.exitCode = await runCli(process.argv.slice(2), io);

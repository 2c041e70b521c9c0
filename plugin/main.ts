/** Entry point of kubectl-cnpg-storage: binds the command line to the process. */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { runCli, type CliIo } from './cli.ts';

// Set by the build of the self-contained executable (esbuild --define); a checkout runs without it.
declare const PLUGIN_RELEASE: string | undefined;
const release = typeof PLUGIN_RELEASE === 'string' ? PLUGIN_RELEASE : 'dev';

const io: CliIo = {
  stdout: (output) => { process.stdout.write(output); },
  stderr: (output) => { process.stderr.write(output); },
  version: `${release} (Node.js ${process.version})`,
  readFile: (file) => readFile(file, 'utf8'),
  readStdin: () => text(process.stdin),
  listDirectory: async (dir) => {
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) return undefined;
    return (await readdir(dir)).sort().map((entry) => path.join(dir, entry));
  },
};

// A promise chain, not top-level await: the self-contained executable runs this file bundled as CommonJS, which has none.
void runCli(process.argv.slice(2), io).then((code) => { process.exitCode = code; });

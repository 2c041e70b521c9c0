/**
 * What every subcommand shares: the IO object and the usage error. In a module of its own so that a subcommand module
 * (for example status.ts, which the live demo imports directly) can be loaded without the command table.
 */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readFile(path: string): Promise<string>;
  readStdin(): Promise<string>;
  /** Entries of a directory, or undefined when `path` is not a directory. */
  listDirectory(path: string): Promise<string[] | undefined>;
  /** What `version` prints: the release and the Node.js that runs the plugin. */
  readonly version?: string;
}

export interface Subcommand {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** Returns the exit code: 0 success, 1 the input has problems, 2 the command was used wrongly. */
  run(args: readonly string[], io: CliIo): Promise<number>;
}

export class UsageError extends Error {
  readonly code = 'Usage';
}

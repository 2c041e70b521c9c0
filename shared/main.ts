/** What the agent's and the controller's entry points share: how they stop on signals and report a failed start. */
import { errorCode, errorMessage } from './errors.ts';
import type { Logger } from './log.ts';

/** Stops on SIGTERM or SIGINT and exits (0 when stopped, 1 when stopping failed); a second signal exits at once. */
export function stopOnSignals(log: Logger, stop: () => Promise<void>): void {
  let signals = 0;
  const shutdown = (signal: string): void => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal; exiting now', { signal });
      process.exit(1);
    }
    log.info('shutting down', { signal });
    stop().then(() => { process.exit(0); }, (err: unknown) => {
      log.error('shutdown failed', { err });
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => { shutdown('SIGTERM'); });
  process.on('SIGINT', () => { shutdown('SIGINT'); });
}

/** Runs an entry point; a failure to start is one JSON log line on stderr (there may be no logger yet) and exit 1. */
export function runMain(component: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'error', msg: `${component} failed to start`, err: { code: errorCode(err), message: errorMessage(err) } }) + '\n');
    process.exit(1);
  });
}

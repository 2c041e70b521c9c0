/**
 * Child processes that must never outlive the test run: every process started here is killed when the test process
 * exits, is interrupted, or its owner stops it. Output goes to a log file so a failing start can be explained.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const live = new Set<ChildProcess>();
const setpriv = '/usr/bin/setpriv';
let hooksInstalled = false;

function killAllNow(): void {
  for (const child of live) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllNow();
      // Exit only when nobody else handles the signal (a long-running owner such as `make cluster-up` shuts down itself).
      if (process.listenerCount(signal) === 0) process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

export interface ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  exited(): boolean;
  stop(timeoutMs?: number): Promise<void>;
  tail(lines?: number): Promise<string>;
}

export function startProcess(name: string, binary: string, args: string[], logFile: string): ManagedProcess {
  installExitHooks();
  const log = createWriteStream(logFile, { flags: 'a' });
  // A process group of its own, so that stop() also reaches anything the binary forks. Where util-linux's setpriv is
  // present the kernel also kills the child if this process dies without running any handler (SIGKILL, OOM).
  const [command, commandArgs] = existsSync(setpriv)
    ? [setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args]]
    : [binary, args];
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  live.add(child);
  let hasExited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      live.delete(child);
      resolve();
    });
    child.once('error', () => {
      hasExited = true;
      live.delete(child);
      resolve();
    });
  });

  const signal = (sig: NodeJS.Signals): void => {
    if (hasExited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      child.kill(sig);
    }
  };

  return {
    name,
    logFile,
    child,
    exited: () => hasExited,
    async stop(timeoutMs = 10_000) {
      signal('SIGTERM');
      const timer = setTimeout(() => { signal('SIGKILL'); }, timeoutMs);
      await exitPromise;
      clearTimeout(timer);
      await new Promise<void>((resolve) => { log.end(resolve); });
    },
    async tail(lines = 30) {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').slice(-lines).join('\n');
    },
  };
}

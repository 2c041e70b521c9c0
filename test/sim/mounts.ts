/**
 * Real mounts for the simulation: tmpfs filesystems standing in for Azure disks, and bind mounts standing in for kubelet's
 * NodePublishVolume into a pod's volume directory. statfs on any of them tells the truth, and a tmpfs remounted with a
 * larger `size=` grows online, the way an ext4 filesystem grows after resize2fs.
 *
 * Every mount lives under a per-simulation directory whose name contains `cnpg-ds-sim`; everything is unmounted on
 * stop(), on process exit and on SIGINT/SIGTERM, and leftovers of crashed runs are swept at the next start.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const simDirMarker = 'cnpg-ds-sim';

/** Live mount points of every simulation in this process, for the exit hooks. */
const liveMounts = new Set<string>();
const liveDirs = new Set<string>();
let hooksInstalled = false;

function unmountNow(mountPoint: string): void {
  for (const args of [[mountPoint], ['-l', mountPoint]]) {
    try {
      execFileSync('umount', args, { stdio: 'ignore' });
      return;
    } catch {
      // try the lazy unmount next
    }
  }
}

/** Synchronous last-resort cleanup: deepest mounts first, then the directories. */
function cleanupNow(): void {
  for (const mountPoint of [...liveMounts].sort((a, b) => b.length - a.length)) unmountNow(mountPoint);
  liveMounts.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // nothing more to do at exit
    }
  }
  liveDirs.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupNow();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** Mount points (from /proc/self/mountinfo) whose path contains the simulation marker. */
export function simulationMountPoints(): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const points: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    // mountinfo escapes spaces and friends as octal
    const mountPoint = field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (mountPoint.includes(simDirMarker)) points.push(mountPoint);
  }
  return points;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Unmounts what crashed simulations left behind: mounts under `<tmpdir>/cnpg-ds-sim-<pid>-*` whose process is gone.
 * Returns the mount points removed.
 */
export function sweepLeftovers(tmpDir = os.tmpdir()): string[] {
  const prefix = path.join(tmpDir, `${simDirMarker}-`);
  const removed: string[] = [];
  const stale = simulationMountPoints().filter((mountPoint) => {
    if (!mountPoint.startsWith(prefix)) return false;
    const pid = Number(/^(\d+)-/.exec(mountPoint.slice(prefix.length))?.[1]);
    return Number.isInteger(pid) && pid !== process.pid && !pidAlive(pid);
  });
  for (const mountPoint of stale.sort((a, b) => b.length - a.length)) {
    unmountNow(mountPoint);
    removed.push(mountPoint);
  }
  const dirs = new Set(stale.map((mountPoint) => mountPoint.slice(0, prefix.length) + (mountPoint.slice(prefix.length).split('/')[0] ?? '')));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  return removed;
}

/** tmpfs rounds its size to whole pages; the smallest size we ask for is one page. */
export const pageSize = 4096;

export function tmpfsSize(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`tmpfs size must be a positive whole number of bytes, got ${bytes}`);
  return Math.ceil(bytes / pageSize) * pageSize;
}

export class MountError extends Error {
  readonly code = 'MountFailed';
}

/**
 * The mounts of one simulation, all below `root` (a fresh `<tmpdir>/cnpg-ds-sim-<pid>-XXXXXX`).
 */
export class MountTable {
  readonly root: string;
  private readonly mounts = new Map<string, { kind: 'tmpfs' | 'bind'; source: string }>();
  private stopped = false;

  private constructor(root: string) {
    this.root = root;
  }

  static create(tmpDir = os.tmpdir()): MountTable {
    installExitHooks();
    sweepLeftovers(tmpDir);
    const root = mkdtempSync(path.join(tmpDir, `${simDirMarker}-${process.pid}-`));
    liveDirs.add(root);
    return new MountTable(root);
  }

  private assertInside(target: string): void {
    const relative = path.relative(this.root, target);
    if (relative.startsWith('..') || path.isAbsolute(relative) || relative === '') {
      throw new MountError(`refusing to touch ${target}: outside the simulation directory ${this.root}`);
    }
  }

  has(mountPoint: string): boolean {
    return this.mounts.has(mountPoint);
  }

  list(): string[] {
    return [...this.mounts.keys()];
  }

  async mountTmpfs(mountPoint: string, sizeBytes: number): Promise<void> {
    this.assertInside(mountPoint);
    if (this.stopped) throw new MountError('mount table stopped');
    await mkdir(mountPoint, { recursive: true });
    await this.exec('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsSize(sizeBytes)},mode=0777`, 'tmpfs', mountPoint]);
    this.mounts.set(mountPoint, { kind: 'tmpfs', source: 'tmpfs' });
    liveMounts.add(mountPoint);
  }

  /** Grows (or shrinks, if the data fits) a tmpfs online. */
  async resizeTmpfs(mountPoint: string, sizeBytes: number): Promise<void> {
    this.assertInside(mountPoint);
    if (this.mounts.get(mountPoint)?.kind !== 'tmpfs') throw new MountError(`${mountPoint} is not a tmpfs of this simulation`);
    await this.exec('mount', ['-o', `remount,size=${tmpfsSize(sizeBytes)}`, mountPoint]);
  }

  async bind(source: string, mountPoint: string): Promise<void> {
    this.assertInside(source);
    this.assertInside(mountPoint);
    if (this.stopped) throw new MountError('mount table stopped');
    await mkdir(mountPoint, { recursive: true });
    await this.exec('mount', ['--bind', source, mountPoint]);
    this.mounts.set(mountPoint, { kind: 'bind', source });
    liveMounts.add(mountPoint);
  }

  /** Unmounts (lazily if busy) and forgets a mount point; unknown mount points are ignored. */
  async unmount(mountPoint: string): Promise<void> {
    if (!this.mounts.has(mountPoint)) return;
    try {
      await this.exec('umount', [mountPoint]);
    } catch {
      await this.exec('umount', ['-l', mountPoint]).catch(() => undefined);
    }
    this.mounts.delete(mountPoint);
    liveMounts.delete(mountPoint);
  }

  /** Unmounts everything (bind mounts and deeper paths first) and removes the simulation directory. */
  async destroy(): Promise<void> {
    this.stopped = true;
    const ordered = [...this.mounts.entries()].sort(([a, x], [b, y]) => {
      if (x.kind !== y.kind) return x.kind === 'bind' ? -1 : 1;
      return b.length - a.length;
    });
    for (const [mountPoint] of ordered) await this.unmount(mountPoint);
    // Anything mounted below the root by someone else (or left by a failed unmount) still must go before rm -r.
    for (const mountPoint of simulationMountPoints().filter((p) => p.startsWith(this.root + path.sep)).sort((a, b) => b.length - a.length)) {
      unmountNow(mountPoint);
      liveMounts.delete(mountPoint);
    }
    await rm(this.root, { recursive: true, force: true });
    liveDirs.delete(this.root);
  }

  private async exec(command: string, args: string[]): Promise<void> {
    try {
      await run(command, args);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new MountError(`${command} ${args.join(' ')} failed${stderr ? `: ${stderr}` : ''}`, { cause: err });
    }
  }
}

/**
 * A workload driver writing real files into the mounted volumes of CNPG instances: fill a data, WAL or tablespace volume
 * to a percentage or by a number of bytes (optionally at a rate), free space again, and keep a sentinel file whose
 * checksum proves no data was lost across resizes, restarts and failovers.
 *
 * Usage is measured like df: used / (used + available), from statfs of the mount.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pvcName, type VolumeRef } from './cnpg-names.ts';
import { sleep, waitUntil } from './kube.ts';

/** An instance's volume (`{ namespace, instance: 'pg-1', volume: 'wal' }`) or any PVC (`{ namespace, pvc: 'x' }`). */
export type VolumeTarget = { namespace: string; instance: string; volume: VolumeRef } | { namespace: string; pvc: string };

export interface Usage {
  /** Filesystem size (blocks x fragment size). */
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
  /** used / (used + available) x 100, as df shows it. */
  usedPercent: number;
}

export interface FillResult extends Usage {
  bytesWritten: number;
  /** The filesystem ran out of space (ENOSPC) before the target was reached. */
  full: boolean;
}

export type Amount = { percent: number } | { bytes: number };

export interface FillOptions {
  /** Throttle writes to this rate. */
  rateBytesPerSec?: number;
  /** Size of each write (default 1 MiB). */
  chunkBytes?: number;
  signal?: AbortSignal;
}

const fillDirName = 'cnpg-ds-sim-fill';
const sentinelName = 'cnpg-ds-sim-sentinel.bin';

export function statfsUsage(mountPath: string): Usage {
  const s = statfsSync(mountPath);
  const size = s.blocks * s.bsize;
  const used = (s.blocks - s.bfree) * s.bsize;
  const available = s.bavail * s.bsize;
  const denominator = used + available;
  return { sizeBytes: size, usedBytes: used, availableBytes: available, usedPercent: denominator === 0 ? 0 : (used / denominator) * 100 };
}

/** Where PostgreSQL keeps files inside each kind of volume (the fill files go next to them). */
function dataDir(target: VolumeTarget): string {
  if ('pvc' in target) return '.';
  if (target.volume === 'data') return 'pgdata';
  if (target.volume === 'wal') return 'pg_wal';
  return 'data';
}

export class Workload {
  private readonly resolvePath: (namespace: string, pvc: string) => string | undefined;
  private readonly sentinels = new Map<string, string>();
  private sequence = 0;

  constructor(resolvePath: (namespace: string, pvc: string) => string | undefined) {
    this.resolvePath = resolvePath;
  }

  pvcOf(target: VolumeTarget): string {
    return 'pvc' in target ? target.pvc : pvcName(target.instance, target.volume);
  }

  /** The mount path of the target's volume on its node, waiting (up to timeoutMs) for a pod to mount it. */
  async mountPath(target: VolumeTarget, timeoutMs = 30_000): Promise<string> {
    const pvc = this.pvcOf(target);
    return waitUntil(`${target.namespace}/${pvc} to be mounted`, () => this.resolvePath(target.namespace, pvc), timeoutMs);
  }

  async usage(target: VolumeTarget): Promise<Usage> {
    return statfsUsage(await this.mountPath(target));
  }

  /**
   * Writes files until the volume is at `percent` used (within half a point), or writes `bytes` more. Stops early on
   * ENOSPC (result.full). A percentage below the current usage frees fill files instead.
   */
  async fill(target: VolumeTarget, amount: Amount, options: FillOptions = {}): Promise<FillResult> {
    const mount = await this.mountPath(target);
    if ('percent' in amount) {
      if (amount.percent < 0 || amount.percent > 100) throw new RangeError(`percent must be within 0..100, got ${amount.percent}`);
      if (statfsUsage(mount).usedPercent > amount.percent + 0.5) {
        await this.freeTo(mount, target, amount.percent);
        return { ...statfsUsage(mount), bytesWritten: 0, full: false };
      }
    }
    const dir = path.join(mount, dataDir(target), fillDirName);
    await mkdir(dir, { recursive: true });
    const chunk = options.chunkBytes ?? 1024 * 1024;
    const started = Date.now();
    let written = 0;
    const remaining = (): number => {
      if ('bytes' in amount) return amount.bytes - written;
      const usage = statfsUsage(mount);
      const total = usage.usedBytes + usage.availableBytes;
      return Math.floor((amount.percent / 100) * total) - usage.usedBytes;
    };
    const file = await open(path.join(dir, `fill-${process.pid}-${++this.sequence}.bin`), 'a');
    let full = false;
    try {
      for (let left = remaining(); left > 0; left = remaining()) {
        if (options.signal?.aborted) break;
        // Small files cost a whole page: aim a little short and let the next round top up.
        const size = Math.min(chunk, left);
        try {
          await file.write(randomBytes(size));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
            full = true;
            break;
          }
          throw err;
        }
        written += size;
        if ('percent' in amount && size < 4096) break;
        if (options.rateBytesPerSec) {
          const due = started + (written / options.rateBytesPerSec) * 1000;
          if (due > Date.now()) await sleep(due - Date.now());
        }
      }
    } finally {
      await file.close();
    }
    return { ...statfsUsage(mount), bytesWritten: written, full };
  }

  /** Fills in the background until stopped (or the target is reached); for growth during other operations. */
  startFilling(target: VolumeTarget, amount: Amount, options: Omit<FillOptions, 'signal'> = {}): { stop(): Promise<FillResult>; done: Promise<FillResult> } {
    const controller = new AbortController();
    const done = this.fill(target, amount, { ...options, signal: controller.signal });
    return { done, stop: async () => { controller.abort(); return done; } };
  }

  /** Deletes fill files: all of them, or until usage is at most `percent`, or at least `bytes`. */
  async free(target: VolumeTarget, amount: Amount | 'all' = 'all'): Promise<Usage> {
    const mount = await this.mountPath(target);
    if (amount === 'all') {
      await rm(path.join(mount, dataDir(target), fillDirName), { recursive: true, force: true });
    } else if ('percent' in amount) {
      await this.freeTo(mount, target, amount.percent);
    } else {
      await this.freeBytes(mount, target, amount.bytes);
    }
    return statfsUsage(mount);
  }

  private async fillFiles(mount: string, target: VolumeTarget): Promise<string[]> {
    const dir = path.join(mount, dataDir(target), fillDirName);
    const names = await readdir(dir).catch(() => [] as string[]);
    return names.sort().map((n) => path.join(dir, n));
  }

  private async freeTo(mount: string, target: VolumeTarget, percent: number): Promise<void> {
    for (const file of await this.fillFiles(mount, target)) {
      const usage = statfsUsage(mount);
      if (usage.usedPercent <= percent) return;
      const excess = usage.usedBytes - Math.floor((percent / 100) * (usage.usedBytes + usage.availableBytes));
      const size = (await stat(file)).size;
      if (size <= excess) {
        await rm(file, { force: true });
      } else {
        const handle = await open(file, 'r+');
        try {
          await handle.truncate(size - excess);
        } finally {
          await handle.close();
        }
      }
    }
  }

  private async freeBytes(mount: string, target: VolumeTarget, bytes: number): Promise<void> {
    let left = bytes;
    for (const file of await this.fillFiles(mount, target)) {
      if (left <= 0) return;
      const size = (await stat(file)).size;
      if (size <= left) {
        await rm(file, { force: true });
        left -= size;
      } else {
        const handle = await open(file, 'r+');
        try {
          await handle.truncate(size - left);
        } finally {
          await handle.close();
        }
        left = 0;
      }
    }
  }

  /** Writes a sentinel file of random content and remembers its SHA-256 (also stored beside it). */
  async writeSentinel(target: VolumeTarget, bytes = 256 * 1024): Promise<string> {
    const mount = await this.mountPath(target);
    const content = randomBytes(bytes);
    const digest = createHash('sha256').update(content).digest('hex');
    await writeFile(path.join(mount, sentinelName), content);
    await writeFile(path.join(mount, `${sentinelName}.sha256`), `${digest}\n`);
    this.sentinels.set(`${target.namespace}/${this.pvcOf(target)}`, digest);
    return digest;
  }

  /** Checks the sentinel against the checksum recorded when it was written (waits for the volume to be mounted). */
  async verifySentinel(target: VolumeTarget, timeoutMs?: number): Promise<{ ok: boolean; expected: string; actual: string }> {
    const mount = await this.mountPath(target, timeoutMs);
    const key = `${target.namespace}/${this.pvcOf(target)}`;
    const expected = this.sentinels.get(key) ?? (await readFile(path.join(mount, `${sentinelName}.sha256`), 'utf8')).trim();
    const content = await readFile(path.join(mount, sentinelName)).catch(() => Buffer.alloc(0));
    const actual = createHash('sha256').update(content).digest('hex');
    return { ok: actual === expected, expected, actual };
  }
}

/** Test doubles for the agent: a scriptable statfs, a manual clock and scheduler, targets. */
import { StatfsError, statfsError, type Statfs, type StatfsResult } from '../../../agent/statfs.ts';
import type { MountCheck, ProberClock, Scheduler, VolumeTarget } from '../../../agent/prober.ts';
import type { VolumeRole } from '../../../shared/cnpg.ts';
import type { VolumeIdentity } from '../../../shared/readings.ts';

export class FakeStatfs implements Statfs {
  readonly implementation = 'node' as const;
  readonly results = new Map<string, StatfsResult | StatfsError>();
  calls = 0;

  set(path: string, result: Partial<StatfsResult> | string): void {
    if (typeof result === 'string') {
      this.results.set(path, statfsError(result, 2, path));
      return;
    }
    this.results.set(path, { blockSize: 4096, blocks: 1000, blocksFree: 1000, blocksAvailable: 1000, files: 100, filesFree: 100, ...result });
  }

  statfs(path: string): StatfsResult {
    this.calls++;
    const result = this.results.get(path);
    if (result === undefined) throw statfsError('ENOENT', 2, path);
    if (result instanceof StatfsError) throw result;
    return { ...result };
  }
}

export class ManualClock implements ProberClock, Scheduler {
  wall = Date.parse('2025-01-02T03:04:05.000Z');
  mono = 1000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;

  wallMs(): number { return this.wall; }
  monoMs(): number { return this.mono; }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.mono + ms, fn, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  get pending(): number { return this.timers.length; }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.wall += next.at - this.mono;
      this.mono = next.at;
      next.fn();
    }
    this.wall += end - this.mono;
    this.mono = end;
  }
}

/** A mount check that treats every path as mounted unless listed. */
export class FakeMounts implements MountCheck {
  readonly unmounted = new Set<string>();
  /** device() calls so far. */
  checks = 0;
  parentDevice(): number { return 1; }
  device(dir: string): number {
    this.checks++;
    return this.unmounted.has(dir) ? 1 : 2;
  }
}

export function identity(pvc: string, role: VolumeRole = 'data', extra: Partial<VolumeIdentity> = {}): VolumeIdentity {
  const instance = pvc.replace(/-(wal|tbs-.*)$/, '');
  const id: VolumeIdentity = {
    key: `db/${pvc}`, namespace: 'db', cluster: 'pg', instance, role, pvc, pv: `pv-${pvc}`, podName: instance,
    podUid: `uid-${instance}`, node: 'node-a', path: `/kubelet/pods/uid-${instance}/volumes/kubernetes.io~csi/pv-${pvc}/mount`,
    ...extra,
  };
  if (role === 'tablespace' && id.tablespace === undefined) id.tablespace = 'tbs1';
  return id;
}

export function target(pvc: string, role: VolumeRole = 'data', extra: Partial<VolumeTarget> = {}): VolumeTarget {
  return { identity: identity(pvc, role), requireMountPoint: true, ...extra };
}

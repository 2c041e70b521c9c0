/**
 * The world every sizer is measured in: one logical volume (one PVC per instance, all the same size), filesystems that
 * follow their PVC after a fixed resize latency, each instance's usage following its own trace. A sizer looks at the
 * disks on its own schedule and asks for a new size; the world charges what users pay for and what they suffer in the
 * same way for everyone: time out of space, time at or over the critical threshold, resizes in any 24 h, GiB-hours.
 */
import { BUDGET_WINDOW_MS, type DiskReading } from '../../controller/policy/index.ts';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
const GIB_HOUR = GiB * 3_600_000;
/** ext4 on a cloud disk: the filesystem is about 3% smaller than the PVC, and 5% of it is reserved for root. */
export const FILESYSTEM_RATIO = 0.97;
export const RESERVED_RATIO = 0.05;

/** Bytes the database wants to store on one instance at time t (ms). */
export type Trace = (t: number) => number;

export interface Shape {
  name: string;
  seed: number;
  /** Instance name -> its usage. */
  instances: Record<string, Trace>;
  startMs: number;
  endMs: number;
  /** How often the disks are sampled (and the finest any sizer can look). */
  stepMs: number;
  initialSize: number;
  limit: number;
}

export interface Resize {
  at: number;
  to: number;
  kind: string;
  reason: string;
}

/** What a sizer sees at one step: every instance's statfs. */
export interface Observation {
  now: number;
  /** Requested size of the PVCs. */
  size: number;
  /** Size the filesystems currently have (lags `size` by the resize latency). */
  capacity: number;
  resizing: boolean;
  readings: Record<string, DiskReading>;
}

export interface Sizer {
  name: string;
  /** A new size for every PVC of the volume, or undefined. Called every step; sizers keep their own schedule. */
  observe(observation: Observation): Resize | undefined;
}

export interface Outcome {
  sizer: string;
  shape: string;
  seed: number;
  resizes: Resize[];
  secondsOutOfSpace: number;
  secondsOverCritical: number;
  maxActionsIn24h: number;
  provisionedGiBHours: number;
  idealGiBHours: number;
  finalSize: number;
}

export interface WorldOptions {
  resizeLatencyMs: number;
  criticalThreshold: number;
  targetBuffer: number;
}

export function usableOf(capacity: number): number {
  return capacity * FILESYSTEM_RATIO * (1 - RESERVED_RATIO);
}

/** statfs of a filesystem sized for `capacity`, holding as much of `wanted` as fits. */
export function statfs(capacity: number, wanted: number, at: number): DiskReading {
  const total = Math.floor(capacity * FILESYSTEM_RATIO);
  const reserved = Math.floor(total * RESERVED_RATIO);
  const used = Math.min(Math.max(0, Math.round(wanted)), total - reserved);
  return { sampledAt: new Date(at), totalBytes: total, freeBytes: total - used, availableBytes: total - reserved - used };
}

export function run(shape: Shape, sizer: Sizer, options: WorldOptions): Outcome {
  let size = shape.initialSize;
  let capacity = shape.initialSize;
  let pending: { to: number; at: number } | undefined;
  const outcome: Outcome = {
    sizer: sizer.name, shape: shape.name, seed: shape.seed, resizes: [], secondsOutOfSpace: 0, secondsOverCritical: 0,
    maxActionsIn24h: 0, provisionedGiBHours: 0, idealGiBHours: 0, finalSize: size,
  };
  const seconds = shape.stepMs / 1000;
  const names = Object.keys(shape.instances);
  for (let t = shape.startMs; t <= shape.endMs; t += shape.stepMs) {
    if (pending !== undefined && pending.at <= t) {
      capacity = pending.to;
      pending = undefined;
    }
    const wanted = Object.fromEntries(names.map((name) => [name, shape.instances[name]?.(t) ?? 0]));
    const readings = Object.fromEntries(names.map((name) => [name, statfs(capacity, wanted[name] ?? 0, t)]));
    const usable = usableOf(capacity);
    const fullest = Math.max(...Object.values(wanted));
    if (fullest >= usable) outcome.secondsOutOfSpace += seconds;
    if ((Math.min(fullest, usable) / usable) * 100 >= options.criticalThreshold) outcome.secondsOverCritical += seconds;
    outcome.provisionedGiBHours += (capacity * shape.stepMs) / GIB_HOUR;
    const ideal = fullest / ((1 - options.targetBuffer / 100) * FILESYSTEM_RATIO * (1 - RESERVED_RATIO));
    outcome.idealGiBHours += (ideal * shape.stepMs) / GIB_HOUR;
    const resize = sizer.observe({ now: t, size, capacity, resizing: pending !== undefined, readings });
    if (resize !== undefined && resize.to > size) {
      outcome.resizes.push(resize);
      size = resize.to;
      pending = { to: size, at: t + options.resizeLatencyMs };
    }
  }
  outcome.finalSize = size;
  outcome.maxActionsIn24h = maxIn24h(outcome.resizes.map((r) => r.at));
  return outcome;
}

function maxIn24h(times: readonly number[]): number {
  let max = 0;
  for (const [index, start] of times.entries()) max = Math.max(max, times.slice(index).filter((t) => t < start + BUDGET_WINDOW_MS).length);
  return max;
}

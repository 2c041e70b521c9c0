/**
 * Usage shapes seen on real PostgreSQL volumes, as deterministic generators: each takes a seed and a scale and returns
 * every instance's usage over time. Randomness only picks rates, sizes, times and a small jitter; the same seed always
 * gives the same trace.
 */
import { GiB, MiB, type Shape, type Trace } from './world.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 0, 5, 9, 17);

/** mulberry32: a small, well-distributed seeded generator. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (rand: () => number, low: number, high: number): number => low + (high - low) * rand();

/** Page-level churn: a deterministic wobble of about `amplitude` bytes that changes every minute. */
function jitter(seed: number, amplitude: number): Trace {
  return (t) => {
    const bucket = Math.floor(t / MINUTE);
    const x = Math.sin(bucket * 12.9898 + seed * 78.233) * 43758.5453;
    return (x - Math.floor(x) - 0.5) * amplitude;
  };
}

const clampUp = (value: number): number => Math.max(0, value);

interface Scale {
  /** Size the volume starts at (and its request). */
  initial: number;
}

interface Run {
  seed: number;
  scale: Scale;
  days: number;
  stepMs: number;
}

function shape(name: string, run: Run, instances: Record<string, Trace>): Shape {
  const { seed, scale, days, stepMs } = run;
  return { name, seed, instances, startMs: START, endMs: START + days * DAY, stepMs, initialSize: scale.initial, limit: 64 * scale.initial };
}

/** Steady linear growth: 2-10% of the volume a day, from about half full. */
export function steady(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.35, 0.55);
  const perDay = scale.initial * between(rand, 0.02, 0.1);
  const wobble = jitter(seed, scale.initial * 0.002);
  return shape('steady growth', { seed, scale, days: 10, stepMs: 30_000 }, { 'pg-1': (t) => clampUp(base + (perDay * (t - START)) / DAY + wobble(t)) });
}

/** A daily cycle: slow growth, and every night temp files (sorts, index builds) that add 15-35% for 1-3 hours. */
export function dailyCycle(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.3, 0.5);
  const perDay = scale.initial * between(rand, 0.005, 0.03);
  const hump = scale.initial * between(rand, 0.15, 0.35);
  const startHour = Math.floor(between(rand, 0, 6));
  const hours = between(rand, 1, 3);
  const wobble = jitter(seed, scale.initial * 0.002);
  const trace: Trace = (t) => {
    const hourOfDay = ((t % DAY) / HOUR + 24) % 24;
    const into = hourOfDay - startHour;
    const ramp = Math.min(1, into / 0.25, (hours - into) / 0.25);
    const temp = into >= 0 && into <= hours ? hump * Math.max(0, ramp) : 0;
    return clampUp(base + (perDay * (t - START)) / DAY + temp + wobble(t));
  };
  return shape('daily cycle with a nightly hump', { seed, scale, days: 7, stepMs: 30_000 }, { 'pg-1': trace });
}

/** A bulk load: a quiet volume, then 100-600 MB every 15 s for 5-20 minutes, then quiet again. */
export function bulkLoad(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.3, 0.5);
  const rate = between(rand, 100, 600) * MiB / 15;
  const at = START + between(rand, 2, 20) * HOUR;
  const duration = between(rand, 5, 20) * MINUTE;
  const wobble = jitter(seed, scale.initial * 0.001);
  const trace: Trace = (t) => clampUp(base + rate * Math.min(duration, Math.max(0, t - at)) / 1000 + wobble(t));
  return shape('bulk load', { seed, scale, days: 2, stepMs: 5_000 }, { 'pg-1': trace });
}

/** Runaway WAL: archiving breaks, WAL grows 5-40% of the volume an hour for 4-12 hours, then archiving catches up. */
export function runawayWal(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.1, 0.3);
  const perHour = scale.initial * between(rand, 0.05, 0.4);
  const at = START + between(rand, 4, 30) * HOUR;
  const duration = between(rand, 4, 12) * HOUR;
  const wobble = jitter(seed, scale.initial * 0.002);
  const trace: Trace = (t) => {
    const growing = Math.min(duration, Math.max(0, t - at));
    const peak = (perHour * growing) / HOUR;
    const draining = t > at + duration ? Math.max(0, 1 - (t - at - duration) / (30 * MINUTE)) : 1;
    return clampUp(base + peak * draining + wobble(t));
  };
  return shape('runaway WAL', { seed, scale, days: 3, stepMs: 10_000 }, { 'pg-1': trace });
}

/** A slow leak over weeks: 0.5-3% of the volume a day. */
export function slowLeak(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.5, 0.7);
  const perDay = scale.initial * between(rand, 0.005, 0.03);
  const wobble = jitter(seed, scale.initial * 0.001);
  return shape('slow leak', { seed, scale, days: 28, stepMs: 60_000 }, { 'pg-1': (t) => clampUp(base + (perDay * (t - START)) / DAY + wobble(t)) });
}

/** A transient spike: in a few minutes usage jumps by 25-45% of the volume, stays 10-40 minutes, and goes away. */
export function transientSpike(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.4, 0.5);
  const spike = scale.initial * between(rand, 0.25, 0.45);
  const at = START + between(rand, 2, 20) * HOUR;
  const rise = between(rand, 1, 5) * MINUTE;
  const hold = between(rand, 10, 40) * MINUTE;
  const wobble = jitter(seed, scale.initial * 0.001);
  const trace: Trace = (t) => {
    const up = Math.min(1, Math.max(0, (t - at) / rise));
    const gone = t > at + rise + hold ? 0 : 1;
    return clampUp(base + spike * up * gone + wobble(t));
  };
  return shape('transient spike', { seed, scale, days: 2, stepMs: 5_000 }, { 'pg-1': trace });
}

/** One replica diverging: a stuck replication slot keeps WAL on one instance, 10-30% of the volume a day, the others flat. */
export function divergingReplica(seed: number, scale: Scale): Shape {
  const rand = random(seed);
  const base = scale.initial * between(rand, 0.3, 0.5);
  const perDay = scale.initial * between(rand, 0.1, 0.3);
  const stuckAt = START + between(rand, 1, 24) * HOUR;
  const flat = jitter(seed, scale.initial * 0.002);
  const diverging: Trace = (t) => clampUp(base + (perDay * Math.max(0, t - stuckAt)) / DAY + flat(t));
  return shape('one replica diverging', { seed, scale, days: 5, stepMs: 30_000 }, { 'pg-1': (t) => clampUp(base + flat(t)), 'pg-2': diverging, 'pg-3': (t) => clampUp(base + flat(t + 7 * MINUTE)) });
}

export const generators = [steady, dailyCycle, bulkLoad, runawayWal, slowLeak, transientSpike, divergingReplica];

export const scales: readonly Scale[] = [{ initial: 10 * GiB }, { initial: 100 * GiB }];
export const seeds: readonly number[] = [1, 2, 3];

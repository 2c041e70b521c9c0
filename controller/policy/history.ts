/** How readings are kept for the fill rates: a dense recent history and a sparse long-term one. */
import type { DiskReading } from './types.ts';

export interface ReadingHistoryOptions {
  /** How far back readings are kept. */
  retainMs: number;
  /** At most one kept reading per this interval. */
  sampleEveryMs: number;
}

/** For the fill rate: a little more than the engine's 10-minute look-back, one reading every 5 s. */
export const RECENT_HISTORY: ReadingHistoryOptions = { retainMs: 15 * 60_000, sampleEveryMs: 5_000 };
/** For the long-term growth rate: two days, one reading every 15 minutes. */
export const LONG_TERM_HISTORY: ReadingHistoryOptions = { retainMs: 48 * 60 * 60_000, sampleEveryMs: 15 * 60_000 };

/** The sampling rule of both series below: a reading is kept when the last kept one is at least `sampleEveryMs` older. */
function isNextSample(lastKeptAt: number | undefined, at: number, options: ReadingHistoryOptions): boolean {
  return lastKeptAt === undefined || at - lastKeptAt >= options.sampleEveryMs;
}

/** Appends `reading` when it is the next sample (`isNextSample`), and drops what is past `retainMs`. */
export function keepSampled(series: DiskReading[], reading: DiskReading, options: ReadingHistoryOptions): void {
  const at = reading.sampledAt.getTime();
  if (isNextSample(series.at(-1)?.sampledAt.getTime(), at, options)) series.push(reading);
  const horizon = at - options.retainMs;
  while ((series[0]?.sampledAt.getTime() ?? horizon) < horizon) series.shift();
}

/** Per kept reading: sampledAt (ms), totalBytes, freeBytes, availableBytes, inodesTotal, inodesFree (NaN: not reported). */
const FIELDS = 6;
const INITIAL_CAPACITY = 4;

/**
 * `keepSampled`'s series, kept in one Float64Array ring instead of an array of objects: 48 bytes a reading instead of
 * about 120 (an object, its Date, boxed numbers). The controller keeps two per PVC for two days; at 10,000 PVCs that is
 * 100-173 MiB instead of 440-770 (bench/readings-memory.bench.ts). The ring doubles when full, up to what the sampling
 * interval allows.
 */
export class SampledSeries {
  private data = new Float64Array(INITIAL_CAPACITY * FIELDS);
  private start = 0;
  private count = 0;
  private readonly options: ReadingHistoryOptions;

  constructor(options: ReadingHistoryOptions) {
    this.options = options;
  }

  get length(): number {
    return this.count;
  }

  /** The time of the newest kept reading, in ms; undefined when empty. */
  lastTime(): number | undefined {
    return this.count === 0 ? undefined : this.field(this.count - 1, 0);
  }

  /** As `keepSampled`: appends when it is the next sample, drops what is past `retainMs`. */
  keep(reading: DiskReading): void {
    const at = reading.sampledAt.getTime();
    if (isNextSample(this.lastTime(), at, this.options)) this.push(at, reading);
    const horizon = at - this.options.retainMs;
    while (this.count > 0 && this.field(0, 0) < horizon) {
      this.start = (this.start + 1) % this.capacity();
      this.count -= 1;
    }
  }

  /** The kept readings, oldest first, as new objects. */
  toArray(): DiskReading[] {
    const readings = new Array<DiskReading>(this.count);
    const { data } = this;
    const capacity = this.capacity();
    for (let i = 0; i < this.count; i += 1) {
      const offset = ((this.start + i) % capacity) * FIELDS;
      const inodesTotal = data[offset + 4] ?? Number.NaN;
      const inodesFree = data[offset + 5] ?? Number.NaN;
      // One object shape for every reading (no spreads): this runs for every PVC of every reconcile.
      readings[i] = {
        sampledAt: new Date(data[offset] ?? Number.NaN),
        totalBytes: data[offset + 1] ?? Number.NaN,
        freeBytes: data[offset + 2] ?? Number.NaN,
        availableBytes: data[offset + 3] ?? Number.NaN,
        inodesTotal: Number.isNaN(inodesTotal) ? undefined : inodesTotal,
        inodesFree: Number.isNaN(inodesFree) ? undefined : inodesFree,
      };
    }
    return readings;
  }

  private capacity(): number {
    return this.data.length / FIELDS;
  }

  private field(index: number, field: number): number {
    return this.data[((this.start + index) % this.capacity()) * FIELDS + field] ?? Number.NaN;
  }

  private push(at: number, reading: DiskReading): void {
    if (this.count === this.capacity()) this.grow();
    const offset = ((this.start + this.count) % this.capacity()) * FIELDS;
    const data = this.data;
    data[offset] = at;
    data[offset + 1] = reading.totalBytes;
    data[offset + 2] = reading.freeBytes;
    data[offset + 3] = reading.availableBytes;
    data[offset + 4] = reading.inodesTotal ?? Number.NaN;
    data[offset + 5] = reading.inodesFree ?? Number.NaN;
    this.count += 1;
  }

  private grow(): void {
    // Kept readings are at least sampleEveryMs apart within retainMs, plus the one pushed before the oldest is dropped.
    const most = Math.floor(this.options.retainMs / this.options.sampleEveryMs) + 2;
    const grown = new Float64Array(Math.max(this.count + 1, Math.min(this.capacity() * 2, most)) * FIELDS);
    for (let i = 0; i < this.count; i += 1) {
      const from = ((this.start + i) % this.capacity()) * FIELDS;
      grown.set(this.data.subarray(from, from + FIELDS), i * FIELDS);
    }
    this.data = grown;
    this.start = 0;
  }
}

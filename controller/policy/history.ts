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

/** Appends `reading` when the last kept one is at least `sampleEveryMs` older, and drops what is past `retainMs`. */
export function keepSampled(series: DiskReading[], reading: DiskReading, options: ReadingHistoryOptions): void {
  const last = series.at(-1);
  if (!last || reading.sampledAt.getTime() - last.sampledAt.getTime() >= options.sampleEveryMs) series.push(reading);
  const horizon = reading.sampledAt.getTime() - options.retainMs;
  while ((series[0]?.sampledAt.getTime() ?? horizon) < horizon) series.shift();
}

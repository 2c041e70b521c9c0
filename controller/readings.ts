/**
 * The latest disk reading of every PVC, and a short history for fill rates, as reported by the node agents. Keyed by
 * `namespace/pvc`. Only the fleet writes; reconciles read.
 */
import type { VolumeReading } from '../shared/readings.ts';
import type { DiskReading } from './policy/index.ts';

export interface ReadingHistoryOptions {
  /** How far back fill rates look (keep a little more than the engine's lookback). */
  retainMs: number;
  /** At most one history sample per this interval (the latest reading is always kept). */
  sampleEveryMs: number;
}

export const DEFAULT_HISTORY: ReadingHistoryOptions = { retainMs: 15 * 60_000, sampleEveryMs: 5_000 };
/** The sparse history the long-term growth rate is fitted to: two days, one reading every 15 minutes. */
export const LONG_TERM_HISTORY: ReadingHistoryOptions = { retainMs: 48 * 60 * 60_000, sampleEveryMs: 15 * 60_000 };

interface Entry {
  reading: VolumeReading;
  latest: DiskReading | undefined;
  recent: DiskReading[];
  longTerm: DiskReading[];
}

/** Appends `reading` when the last kept one is at least `sampleEveryMs` older, and drops what is past `retainMs`. */
function keep(series: DiskReading[], reading: DiskReading, options: ReadingHistoryOptions): void {
  const last = series.at(-1);
  if (!last || reading.sampledAt.getTime() - last.sampledAt.getTime() >= options.sampleEveryMs) series.push(reading);
  const horizon = reading.sampledAt.getTime() - options.retainMs;
  while ((series[0]?.sampledAt.getTime() ?? horizon) < horizon) series.shift();
}

export interface PvcReadings {
  latest: DiskReading | undefined;
  recent: readonly DiskReading[];
  longTerm: readonly DiskReading[];
  raw: VolumeReading | undefined;
}

export function diskReading(reading: VolumeReading): DiskReading | undefined {
  if (reading.status !== 'ok' || reading.usage === undefined) return undefined;
  const u = reading.usage;
  return {
    sampledAt: new Date(reading.sampledAt),
    totalBytes: u.totalBytes,
    freeBytes: u.freeBytes,
    availableBytes: u.availableBytes,
    inodesTotal: u.inodesTotal,
    inodesFree: u.inodesFree,
  };
}

export class ReadingsStore {
  private readonly entries = new Map<string, Entry>();
  private readonly options: ReadingHistoryOptions;

  constructor(options: ReadingHistoryOptions = DEFAULT_HISTORY) {
    this.options = options;
  }

  static keyOf(namespace: string, pvc: string): string {
    return `${namespace}/${pvc}`;
  }

  update(reading: VolumeReading): void {
    const key = ReadingsStore.keyOf(reading.namespace, reading.pvc);
    const entry = this.entries.get(key) ?? { reading, latest: undefined, recent: [], longTerm: [] };
    const latest = diskReading(reading);
    entry.reading = reading;
    entry.latest = latest;
    if (latest) {
      keep(entry.recent, latest, this.options);
      keep(entry.longTerm, latest, LONG_TERM_HISTORY);
    }
    this.entries.set(key, entry);
  }

  remove(namespace: string, pvc: string): void {
    this.entries.delete(ReadingsStore.keyOf(namespace, pvc));
  }

  /** Keys reported by a node; used to drop what a fresh snapshot no longer lists. */
  keysOfNode(node: string): string[] {
    return [...this.entries].filter(([, e]) => e.reading.node === node).map(([key]) => key);
  }

  removeKey(key: string): VolumeReading | undefined {
    const entry = this.entries.get(key);
    this.entries.delete(key);
    return entry?.reading;
  }

  forPvc(namespace: string, pvc: string): PvcReadings {
    const entry = this.entries.get(ReadingsStore.keyOf(namespace, pvc));
    if (!entry) return { latest: undefined, recent: [], longTerm: [], raw: undefined };
    const recent = entry.latest && entry.recent.at(-1) !== entry.latest ? [...entry.recent, entry.latest] : entry.recent;
    return { latest: entry.latest, recent, longTerm: entry.longTerm, raw: entry.reading };
  }
}

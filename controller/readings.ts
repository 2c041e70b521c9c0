/**
 * The latest disk reading of every PVC, and a short history for fill rates, as reported by the node agents. Keyed by
 * `namespace/pvc`. Only the fleet writes; reconciles read.
 */
import type { VolumeReading } from '../shared/readings.ts';
import type { DiskReading } from './policy/index.ts';
import { LONG_TERM_HISTORY, RECENT_HISTORY, keepSampled, type ReadingHistoryOptions } from './policy/history.ts';

interface Entry {
  reading: VolumeReading;
  latest: DiskReading | undefined;
  recent: DiskReading[];
  longTerm: DiskReading[];
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

  constructor(options: ReadingHistoryOptions = RECENT_HISTORY) {
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
      keepSampled(entry.recent, latest, this.options);
      keepSampled(entry.longTerm, latest, LONG_TERM_HISTORY);
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

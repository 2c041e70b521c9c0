/**
 * The latest disk reading of every PVC, and a short history for fill rates, as reported by the node agents. Keyed by
 * `namespace/pvc`. Only the fleet writes; reconciles read.
 */
import type { VolumeReading } from '../shared/readings.ts';
import type { DiskReading } from './policy/index.ts';
import { LONG_TERM_HISTORY, RECENT_HISTORY, SampledSeries, type ReadingHistoryOptions } from './policy/history.ts';

interface Entry {
  reading: VolumeReading;
  latest: DiskReading | undefined;
  recent: SampledSeries;
  longTerm: SampledSeries;
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

/**
 * Readings are kept per PVC and per reporting node: an agent cannot overwrite what another node's agent reported, and
 * the reconcile picks the reading of a node where the volume is mounted.
 */
export class ReadingsStore {
  private readonly entries = new Map<string, Map<string, Entry>>();
  private readonly options: ReadingHistoryOptions;

  constructor(options: ReadingHistoryOptions = RECENT_HISTORY) {
    this.options = options;
  }

  static keyOf(namespace: string, pvc: string): string {
    return `${namespace}/${pvc}`;
  }

  update(reading: VolumeReading): void {
    const key = ReadingsStore.keyOf(reading.namespace, reading.pvc);
    const byNode = this.entries.get(key) ?? new Map<string, Entry>();
    const entry = byNode.get(reading.node) ?? { reading, latest: undefined, recent: new SampledSeries(this.options), longTerm: new SampledSeries(LONG_TERM_HISTORY) };
    const latest = diskReading(reading);
    entry.reading = reading;
    entry.latest = latest;
    if (latest) {
      entry.recent.keep(latest);
      entry.longTerm.keep(latest);
    }
    byNode.set(reading.node, entry);
    this.entries.set(key, byNode);
  }

  /** Forgets what `node` reported about the PVC. */
  remove(namespace: string, pvc: string, node: string): VolumeReading | undefined {
    return this.removeKey(ReadingsStore.keyOf(namespace, pvc), node);
  }

  /** Keys reported by a node; used to drop what a fresh snapshot no longer lists. */
  keysOfNode(node: string): string[] {
    return [...this.entries].filter(([, byNode]) => byNode.has(node)).map(([key]) => key);
  }

  removeKey(key: string, node: string): VolumeReading | undefined {
    const byNode = this.entries.get(key);
    const entry = byNode?.get(node);
    byNode?.delete(node);
    if (byNode?.size === 0) this.entries.delete(key);
    return entry?.reading;
  }

  /** What `node` last reported about the PVC, as it was received. */
  rawFrom(namespace: string, pvc: string, node: string): VolumeReading | undefined {
    return this.entries.get(ReadingsStore.keyOf(namespace, pvc))?.get(node)?.reading;
  }

  /**
   * The PVC's reading from one of `nodes` (any node when left out), the most recent when several report it (a pod
   * moving between nodes). The histories are new arrays, the caller's to keep.
   */
  forPvc(namespace: string, pvc: string, nodes?: ReadonlySet<string>): PvcReadings {
    const byNode = this.entries.get(ReadingsStore.keyOf(namespace, pvc));
    let entry: Entry | undefined;
    for (const [node, candidate] of byNode ?? []) {
      if (nodes !== undefined && !nodes.has(node)) continue;
      if (!entry || candidate.reading.sampledAt > entry.reading.sampledAt) entry = candidate;
    }
    if (!entry) return { latest: undefined, recent: [], longTerm: [], raw: undefined };
    const recent = entry.recent.toArray();
    // The latest reading ends the recent history even when it came too soon after the last kept one to be kept.
    if (entry.latest && entry.recent.lastTime() !== entry.latest.sampledAt.getTime()) recent.push(entry.latest);
    return { latest: entry.latest, recent, longTerm: entry.longTerm.toArray(), raw: entry.reading };
  }
}

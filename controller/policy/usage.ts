/**
 * Usage as PostgreSQL sees it. statfs reports total, free (f_bfree, including the blocks reserved for root) and available
 * (f_bavail). PostgreSQL does not run as root, so the space it can use is `used + available` and the percentage is
 * `used / (used + available)`, exactly what `df` prints. `used / total` understates it by the reserved blocks (5% on ext4).
 */
import type { ActionRecord, DiskReading, EngineTuning, InstanceUsage, InstanceVolume, LongTermGrowth, Reason } from './types.ts';
import { Reasons } from './types.ts';

export interface Usage {
  usedBytes: number;
  usableBytes: number;
  availableBytes: number;
  percentUsed: number;
  inodePercentUsed: number | undefined;
}

export function usageOf(reading: DiskReading): Usage {
  const usedBytes = Math.max(0, reading.totalBytes - reading.freeBytes);
  const usableBytes = usedBytes + reading.availableBytes;
  const inodesTotal = reading.inodesTotal ?? 0;
  const inodesFree = reading.inodesFree ?? 0;
  return {
    usedBytes,
    usableBytes,
    availableBytes: reading.availableBytes,
    percentUsed: usableBytes > 0 ? (usedBytes / usableBytes) * 100 : 100,
    // btrfs and some others report no inode counts: no inode limit then.
    inodePercentUsed: inodesTotal > 0 ? ((inodesTotal - inodesFree) / inodesTotal) * 100 : undefined,
  };
}

export function isPlausibleReading(reading: DiskReading): boolean {
  const values = [reading.totalBytes, reading.freeBytes, reading.availableBytes];
  if (!values.every((value) => Number.isFinite(value) && value >= 0)) return false;
  if (Number.isNaN(reading.sampledAt.getTime())) return false;
  return reading.totalBytes > 0 && reading.freeBytes <= reading.totalBytes && reading.availableBytes <= reading.freeBytes;
}

/**
 * Why an instance's latest reading cannot be used, or undefined when it can. A reading is only trusted when it is recent,
 * taken after the volume's last recorded action, and shows a filesystem larger than the size that action grew from
 * (a filesystem cannot exceed its device, so a total at or below `from` has not been expanded yet).
 */
export function readingProblem(
  volume: InstanceVolume,
  lastAction: ActionRecord | undefined,
  tuning: EngineTuning,
  now: Date,
): Reason | undefined {
  const reading = volume.reading;
  if (reading === undefined) return Reasons.DiskStatusMissing;
  if (!isPlausibleReading(reading)) return Reasons.DiskStatusInvalid;
  if (now.getTime() - reading.sampledAt.getTime() > tuning.maxReadingAgeMs) return Reasons.DiskStatusStale;
  if (lastAction === undefined) return undefined;
  if (reading.sampledAt.getTime() <= lastAction.timestamp.getTime()) return Reasons.DiskStatusPredatesResize;
  if (filesystemNotExpanded(reading, volume, lastAction)) return Reasons.FilesystemResizePending;
  return undefined;
}

/** The PVC reached the action's size but the filesystem is still no larger than the device it grew from. */
function filesystemNotExpanded(reading: DiskReading, volume: InstanceVolume, action: ActionRecord): boolean {
  const grownByAction = (volume.capacity ?? 0) >= action.to && action.to > action.from;
  return grownByAction && reading.totalBytes <= action.from;
}

/** Usable filesystem bytes per PVC byte, observed on this instance. */
export function observedRatio(volume: InstanceVolume, usage: Usage): number {
  const size = volume.capacity ?? volume.requestedSize;
  if (size <= 0 || usage.usableBytes <= 0) return 1;
  return Math.min(1, usage.usableBytes / size);
}

export function describeUsage(
  volume: InstanceVolume,
  excluded: Reason | undefined,
  rates: { fillRate: number | undefined; longTermGrowth: LongTermGrowth | undefined },
): InstanceUsage {
  const usage = volume.reading !== undefined && isPlausibleReading(volume.reading) ? usageOf(volume.reading) : undefined;
  return {
    instance: volume.instance,
    pvcName: volume.pvcName,
    excluded,
    usedBytes: usage?.usedBytes ?? 0,
    usableBytes: usage?.usableBytes ?? 0,
    availableBytes: usage?.availableBytes ?? 0,
    percentUsed: usage?.percentUsed ?? 0,
    inodePercentUsed: usage?.inodePercentUsed,
    fillRate: rates.fillRate,
    longTermGrowth: rates.longTermGrowth,
    ratio: usage === undefined ? 1 : observedRatio(volume, usage),
  };
}

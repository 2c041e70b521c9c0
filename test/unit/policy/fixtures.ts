/** Builders for policy engine tests: readable defaults, everything overridable. */
import { GiB } from '../../../shared/quantity.ts';
import {
  POLICY_DEFAULTS,
  alwaysOpenWindow,
  parseMaintenanceWindow,
  type ActionRecord,
  type DecisionInput,
  type DiskReading,
  type EmergencyGrowPolicy,
  type InstanceVolume,
  type VolumePolicy,
} from '../../../controller/policy/index.ts';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

/** Inside the default window (03:00-05:00 UTC). */
export const IN_WINDOW = new Date('2024-06-01T03:30:00Z');
export const OUT_OF_WINDOW = new Date('2024-06-01T12:00:00Z');

export const defaultWindow = parseMaintenanceWindow({});

export function policy(overrides: Partial<Omit<VolumePolicy, 'emergencyGrow'>> & { emergencyGrow?: Partial<EmergencyGrowPolicy> } = {}): VolumePolicy {
  return {
    request: 10 * GiB,
    limit: 100 * GiB,
    targetBuffer: POLICY_DEFAULTS.targetBuffer,
    maintenanceWindow: defaultWindow,
    ...overrides,
    emergencyGrow: {
      ...POLICY_DEFAULTS.emergencyGrow,
      criticalMinimumFree: GiB,
      ...overrides.emergencyGrow,
    },
  };
}

export { alwaysOpenWindow };

/**
 * A reading of a filesystem whose usable space is `usable` (defaults to the capacity: no overhead, no reserved blocks,
 * so percentages are used / capacity), with `reserved` bytes reserved for root.
 */
export function reading(opts: { used: number; usable: number; at: Date; reserved?: number; inodesTotal?: number; inodesFree?: number }): DiskReading {
  const reserved = opts.reserved ?? 0;
  const total = opts.usable + reserved;
  return {
    sampledAt: opts.at,
    totalBytes: total,
    freeBytes: total - opts.used,
    availableBytes: Math.max(0, opts.usable - opts.used),
    inodesTotal: opts.inodesTotal,
    inodesFree: opts.inodesFree,
  };
}

export function instance(opts: {
  name?: string;
  size: number;
  capacity?: number | null;
  used?: number;
  at?: Date;
  readingAt?: Date | null;
  recent?: DiskReading[];
  resize?: InstanceVolume['resize'];
  inodesTotal?: number;
  inodesFree?: number;
  usable?: number;
}): InstanceVolume {
  const name = opts.name ?? 'pg-1';
  const capacity = opts.capacity === null ? undefined : (opts.capacity ?? opts.size);
  const at = opts.readingAt === null ? undefined : (opts.readingAt ?? opts.at ?? IN_WINDOW);
  const latest =
    at === undefined || opts.used === undefined
      ? undefined
      : reading({ used: opts.used, usable: opts.usable ?? capacity ?? opts.size, at, inodesTotal: opts.inodesTotal, inodesFree: opts.inodesFree });
  return {
    instance: name,
    pvcName: name,
    requestedSize: opts.size,
    capacity,
    resize: opts.resize,
    reading: latest,
    recentReadings: opts.recent ?? [],
  };
}

export function action(opts: Partial<ActionRecord> & { timestamp: Date }): ActionRecord {
  return { kind: 'ScheduledGrow', from: 10 * GiB, to: 11 * GiB, result: 'Success', ...opts };
}

export function input(opts: Partial<DecisionInput> & { instances: InstanceVolume[] }): DecisionInput {
  return { volume: 'data', policy: policy(), history: [], ...opts };
}

export function minutesBefore(at: Date, minutes: number): Date {
  return new Date(at.getTime() - minutes * MINUTE);
}

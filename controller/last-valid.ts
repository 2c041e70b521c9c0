/**
 * The last valid policy, remembered in status: when a later spec has a problem that leaves it usable (a cron typo or an
 * unknown time zone the API server accepts), the volumes keep the maintenance window they had rather than lose planned
 * growth altogether. Pure: the clock is an argument, and what is read from status is checked like any other input (the
 * status is only as trustworthy as whoever may write it).
 */
import type {
  DynamicStorage,
  LastValidPolicy,
  MaintenanceWindow as ApiMaintenanceWindow,
  PolicyProtection,
} from '../shared/api/dynamicstorage.generated.ts';
import { sameSlot, untypedVolumeSlots, type VolumeSlotId } from '../shared/cnpg.ts';
import { validateMaintenanceWindow } from './policy/window.ts';
import { rfc3339 } from './resolve.ts';
import { isObject } from '../shared/objects.ts';
import { ValidationCodes } from './validation/problems.ts';

/**
 * Problems that leave a policy usable for protection: the volumes are still sized (a volume whose window cannot be read
 * takes the last valid policy's window, or grows in emergencies only). Anything else (a second DynamicStorage for the
 * Cluster, a missing Cluster, a schema error) stops resizing until it is fixed.
 */
export const usableProblemCodes: ReadonlySet<string> = new Set<string>([
  ValidationCodes.InvalidSchedule, ValidationCodes.InvalidTimeZone, ValidationCodes.ClusterSizeBelowRequest,
  ValidationCodes.ClusterSizeAboveLimit, ValidationCodes.TablespaceNotFound, ValidationCodes.WalStorageNotConfigured,
]);

/** Full: valid. Partial: problems that leave it usable. None: nothing is resized until it is fixed. */
export function protectionOf(problems: readonly { code: string }[], clusterFound: boolean): PolicyProtection {
  if (problems.length === 0) return 'Full';
  return clusterFound && problems.every((p) => usableProblemCodes.has(p.code)) ? 'Partial' : 'None';
}

/**
 * What to keep in status: this spec when it has no problem (the recorded copy is kept while the generation is the
 * same, so that the status does not change with every reconcile), otherwise the copy already there, if it reads.
 */
export function rememberValidPolicy(object: DynamicStorage, problemCount: number, now: Date): LastValidPolicy | undefined {
  const previous = readLastValidPolicy(object).policy;
  const generation = object.metadata?.generation;
  if (problemCount > 0 || generation === undefined) return previous;
  if (previous?.generation === generation) return previous;
  return { generation, observedAt: rfc3339(now), spec: JSON.parse(JSON.stringify(object.spec)) as Record<string, unknown> };
}

export interface LastValidRead {
  policy: LastValidPolicy | undefined;
  /** Why the recorded copy was not used (a hand-edited or malformed status). */
  problem?: string | undefined;
}

/** The recorded last valid policy, when it is well-formed and is about the same Cluster; never throws. */
export function readLastValidPolicy(object: DynamicStorage): LastValidRead {
  const value: unknown = object.status?.lastValidPolicy;
  if (value === undefined) return { policy: undefined };
  if (!isObject(value) || !isObject(value.spec)) return { policy: undefined, problem: 'status.lastValidPolicy is not an object with a spec' };
  const { generation, observedAt, spec } = value;
  if (typeof generation !== 'number' || !Number.isInteger(generation) || generation < 0) {
    return { policy: undefined, problem: 'status.lastValidPolicy.generation is not a generation' };
  }
  if (typeof observedAt !== 'string' || Number.isNaN(Date.parse(observedAt))) {
    return { policy: undefined, problem: 'status.lastValidPolicy.observedAt is not a time' };
  }
  const current = object.metadata?.generation;
  if (current !== undefined && generation > current) return { policy: undefined, problem: `status.lastValidPolicy.generation ${generation} is ahead of the spec` };
  const cluster = isObject(spec.cluster) ? spec.cluster.name : undefined;
  if (cluster !== object.spec.cluster.name) return { policy: undefined, problem: 'status.lastValidPolicy is about another Cluster' };
  return { policy: { generation, observedAt, spec } };
}

/** The volume policy of `slot` in `spec` (a recorded copy, unchecked): tablespaces by name, their order may change. */
function volumeAt(spec: Record<string, unknown>, slot: VolumeSlotId): Record<string, unknown> | undefined {
  return untypedVolumeSlots(spec).find((s) => sameSlot(s, slot))?.policy;
}

export interface FallbackWindow {
  window: ApiMaintenanceWindow;
  generation: number;
}

/**
 * The maintenance window the last valid policy had for this volume, checked again; undefined when it had none that
 * reads (then only emergencies grow the volume while the current window is invalid).
 */
export function fallbackWindow(last: LastValidPolicy | undefined, slot: VolumeSlotId): FallbackWindow | undefined {
  if (!last) return undefined;
  const volume = volumeAt(last.spec, slot);
  const window = volume?.maintenanceWindow;
  if (!isObject(window)) return undefined;
  const text = (key: string): string | undefined => (typeof window[key] === 'string' ? window[key] : undefined);
  const spec: ApiMaintenanceWindow = {};
  const schedule = text('schedule');
  const duration = text('duration');
  const timezone = text('timezone');
  if (schedule !== undefined) spec.schedule = schedule;
  if (duration !== undefined) spec.duration = duration;
  if (timezone !== undefined) spec.timezone = timezone;
  if (validateMaintenanceWindow(spec).length > 0) return undefined;
  return { window: spec, generation: last.generation };
}

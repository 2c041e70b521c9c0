/**
 * What the CloudNativePG Cluster shows of its storage sizing, built from the DynamicStorage status (the one model; this
 * module only reads it). Pure: no client, no clock.
 *
 * - `storageSizingBlock`: the compact `storageSizing` block that the CNPG-I plugin returns from SetStatusInCluster, which
 *   the operator stores in `status.pluginStatus[<plugin>].status` of Clusters that opt in.
 * - `clusterSummary`: the condition `DynamicStorageReady` on the Cluster's `status.conditions` (reason = the worst volume
 *   state, message = one line per volume) and the same summary in the annotation `dynamicstorage.cnpg.io/status`.
 * - `conditionPatch`: a JSON patch that sets our condition and nothing else, so that it cannot remove the operator's.
 */
import { createHash } from 'node:crypto';
import type {
  BudgetStatus,
  DynamicStorageStatus,
  SizingAction,
  StorageSizingStatus,
  VolumeSizingState,
  VolumeSizingStatus,
} from '../shared/api/dynamicstorage.generated.ts';
import { placeSlot, slotEntries } from '../shared/cnpg.ts';
import { rfc3339 } from '../shared/time.ts';
import { ConditionTypes, type Condition } from './kube/conditions.ts';

/** The condition type on the Cluster. */
export const clusterConditionType = ConditionTypes.DynamicStorageReady;
/** The annotation on the Cluster holding the same summary (it survives any status write of the operator's). */
export const clusterStatusAnnotation = 'dynamicstorage.cnpg.io/status';

/** Reasons besides the volume states. */
export const ClusterStatusReasons = {
  /** The DynamicStorage has no storageSizing yet (first reconcile pending, or no volume found). */
  NoSizingStatus: 'NoSizingStatus',
  /** The policy is invalid and nothing is resized (protection None). */
  PolicyInvalid: 'PolicyInvalid',
} as const;

export interface CompactAction {
  kind: SizingAction['kind'];
  from?: string | undefined;
  to?: string | undefined;
  timestamp: string;
  result?: SizingAction['result'] | undefined;
}

export interface CompactVolume {
  effectiveSize?: string | undefined;
  targetSize?: string | undefined;
  actualSizes?: Record<string, string> | undefined;
  state?: VolumeSizingState | undefined;
  lastAction?: CompactAction | undefined;
  budget?: BudgetStatus | undefined;
  nextMaintenanceWindow?: string | undefined;
}

/** The plugin's answer: what `status.pluginStatus[<plugin>].status` holds (as JSON) for a Cluster that opts in. */
export interface PluginStatusBlock {
  /** The DynamicStorage the block comes from; absent when none names the Cluster. */
  dynamicStorage?: string;
  /** Why the block is empty, when it is. */
  message?: string;
  storageSizing: {
    data?: CompactVolume;
    wal?: CompactVolume;
    tablespaces?: Record<string, CompactVolume>;
  };
}

function compactAction(action: SizingAction | undefined): CompactAction | undefined {
  if (!action) return undefined;
  return { kind: action.kind, from: action.from, to: action.to, timestamp: action.timestamp, result: action.result };
}

function compactVolume(volume: VolumeSizingStatus): CompactVolume {
  return {
    effectiveSize: volume.effectiveSize,
    targetSize: volume.targetSize,
    actualSizes: volume.actualSizes,
    state: volume.state,
    lastAction: compactAction(volume.lastAction),
    budget: volume.budget,
    nextMaintenanceWindow: volume.nextMaintenanceWindow || undefined,
  };
}

/**
 * Drops undefined members and sorts keys, so that equal blocks serialize (and hash) the same whether built in memory or
 * read back from the API server (which stores custom resources with their keys sorted).
 */
function clean<T>(value: T): T {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, sort(x)]));
  };
  return sort(JSON.parse(JSON.stringify(value))) as T;
}

/** The compact block: per data / WAL / tablespace the sizes, state, last action, budget and next window. */
export function storageSizingBlock(dynamicStorage: string, sizing: StorageSizingStatus | undefined): PluginStatusBlock {
  const block: PluginStatusBlock = { dynamicStorage, storageSizing: {} };
  for (const { slot, value } of slotEntries(sizing)) placeSlot(block.storageSizing, slot, compactVolume(value));
  return clean(block);
}

/** Worst first: the condition's reason is the first of these that any volume is in. */
const severity: readonly VolumeSizingState[] = ['Emergency', 'AtLimit', 'WaitingForDiskStatus', 'NeedsGrow', 'PendingGrowth', 'Resizing', 'Balanced'];
/** States in which every volume still has the room its policy gives it, or is getting it. */
const healthy = new Set<VolumeSizingState>(['Balanced', 'Resizing', 'PendingGrowth', 'NeedsGrow']);

export interface ClusterSummary {
  status: Condition['status'];
  reason: string;
  /** One line per volume. */
  message: string;
  /** A short hash of the plugin's block: changes whenever the block does (see `annotationValue`). */
  revision: string;
}

function volumeLine(label: string, volume: VolumeSizingStatus): string {
  const sizes = [volume.effectiveSize && `size ${volume.effectiveSize}`, volume.targetSize && `target ${volume.targetSize}`].filter(Boolean).join(', ');
  return `${label}: ${volume.state ?? 'Unknown'}${sizes ? ` (${sizes})` : ''}`;
}

/** The summary of a DynamicStorage's status for the Cluster: worst state as reason, one line per volume. */
export function clusterSummary(dynamicStorage: string, status: DynamicStorageStatus | undefined): ClusterSummary {
  const revision = createHash('sha256').update(JSON.stringify(storageSizingBlock(dynamicStorage, status?.storageSizing))).digest('hex').slice(0, 12);
  const volumes = slotEntries(status?.storageSizing).map(({ label, value }): [string, VolumeSizingStatus] => [label, value]);
  if (status?.protection === 'None') {
    const valid = status.conditions?.find((c) => c.type === ConditionTypes.Valid);
    return { status: 'False', reason: ClusterStatusReasons.PolicyInvalid, message: `DynamicStorage ${dynamicStorage}: ${valid?.message ?? 'the policy is invalid'}; nothing is resized`, revision };
  }
  if (volumes.length === 0) {
    return { status: 'Unknown', reason: ClusterStatusReasons.NoSizingStatus, message: `DynamicStorage ${dynamicStorage} has not sized any volume yet`, revision };
  }
  const states = volumes.map(([, v]) => v.state ?? 'WaitingForDiskStatus');
  const worst = severity.find((s) => states.includes(s)) ?? 'WaitingForDiskStatus';
  const conditionStatus = worst === 'WaitingForDiskStatus' ? 'Unknown' : healthy.has(worst) ? 'True' : 'False';
  return { status: conditionStatus, reason: worst, message: volumes.map(([label, v]) => volumeLine(label, v)).join('\n'), revision };
}

/** The annotation's value: the summary as one JSON object (stable key order, no time stamps: it changes only with it). */
export function annotationValue(summary: ClusterSummary): string {
  return JSON.stringify({ status: summary.status, reason: summary.reason, message: summary.message, revision: summary.revision });
}

/** A condition as found on the Cluster: any writer's, so nothing is assumed of it. */
export interface ForeignCondition {
  type?: string | undefined;
  status?: string | undefined;
  reason?: string | undefined;
  message?: string | undefined;
  lastTransitionTime?: string | undefined;
}

export interface ClusterLike {
  metadata?: { resourceVersion?: string | undefined; annotations?: Record<string, string> | undefined } | undefined;
  status?: { conditions?: readonly ForeignCondition[] | undefined } | undefined;
}

export type JsonPatchOperation =
  | { op: 'test'; path: string; value: unknown }
  | { op: 'add' | 'replace'; path: string; value: unknown };

/**
 * The JSON patch (status subresource) that sets our condition, or undefined when it already says the same. It touches
 * one list element only, guarded by a `test`: our condition at its index (replace), or the resourceVersion read (when it
 * is appended or the list is created), so that a concurrent write of the operator's makes the patch fail (and be retried
 * on the next reconcile) instead of losing either condition. The transition time changes only when the status does.
 */
export function conditionPatch(cluster: ClusterLike, summary: ClusterSummary, observedGeneration: number | undefined, now: Date): JsonPatchOperation[] | undefined {
  const conditions = cluster.status?.conditions;
  const index = conditions?.findIndex((c) => c.type === clusterConditionType) ?? -1;
  const existing = index >= 0 ? conditions?.[index] : undefined;
  if (existing && existing.status === summary.status && existing.reason === summary.reason && existing.message === summary.message) return undefined;
  const condition: Condition = {
    type: clusterConditionType, status: summary.status, reason: summary.reason, message: summary.message,
    lastTransitionTime: existing?.status === summary.status && existing.lastTransitionTime ? existing.lastTransitionTime : rfc3339(now),
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
  };
  if (existing) {
    return [
      { op: 'test', path: `/status/conditions/${index}/type`, value: clusterConditionType },
      { op: 'replace', path: `/status/conditions/${index}`, value: condition },
    ];
  }
  const guard: JsonPatchOperation = { op: 'test', path: '/metadata/resourceVersion', value: cluster.metadata?.resourceVersion ?? '' };
  if (conditions) return [guard, { op: 'add', path: '/status/conditions/-', value: condition }];
  if (cluster.status) return [guard, { op: 'add', path: '/status/conditions', value: [condition] }];
  return [guard, { op: 'add', path: '/status', value: { conditions: [condition] } }];
}

/** The merge patch that sets the annotation, or undefined when it already holds this summary. */
export function annotationPatch(cluster: ClusterLike, summary: ClusterSummary): { metadata: { annotations: Record<string, string> } } | undefined {
  const value = annotationValue(summary);
  if (cluster.metadata?.annotations?.[clusterStatusAnnotation] === value) return undefined;
  return { metadata: { annotations: { [clusterStatusAnnotation]: value } } };
}

/** Reads the annotation back (for `kubectl cnpg storage status`); undefined when absent or not ours. */
export function readStatusAnnotation(annotations: Record<string, string> | undefined): Omit<ClusterSummary, 'revision'> & { revision?: string } | undefined {
  const text = annotations?.[clusterStatusAnnotation];
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<ClusterSummary>;
    if (typeof parsed.reason !== 'string' || typeof parsed.message !== 'string' || typeof parsed.status !== 'string') return undefined;
    return { status: parsed.status, reason: parsed.reason, message: parsed.message, ...(typeof parsed.revision === 'string' ? { revision: parsed.revision } : {}) };
  } catch {
    return undefined;
  }
}

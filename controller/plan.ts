/**
 * Pure planning of one reconcile, from one snapshot of a DynamicStorage (what the reconciler gathered: the object, its
 * Cluster, the policy's problems, and per volume its PVCs, StorageClass, history and readings): the policy's status, and
 * for each volume the outcome of the previous action settled, the engine's decision, and the resulting status. The
 * reconciler does the I/O around it: it gathers the snapshot, then acts on the plan.
 */
import type * as k8s from '@kubernetes/client-node';
import type {
  BudgetStatus as ApiBudgetStatus,
  DynamicStorage,
  DynamicStorageStatus,
  InstanceVolumeStatus,
  PolicyProtection,
  StorageSizingStatus,
  VolumeSizingStatus,
} from '../shared/api/dynamicstorage.generated.ts';
import { instanceOfPvc, placeSlot, type VolumeSlot } from '../shared/cnpg.ts';
import { formatBytesHuman, formatQuantity } from '../shared/quantity.ts';
import { dfPercent } from '../shared/readings.ts';
import { maxMessageLength, truncate } from '../shared/text.ts';
import {
  BUDGET_WINDOW_MS,
  NoOp,
  Reasons,
  decide,
  evaluateBudget,
  overshootBytes,
  type ActionRecord,
  type Decision,
  type DiskReading,
  type EngineTuning,
  type MaintenanceWindow,
  type ProviderFacts,
  type VolumePolicy,
} from './policy/index.ts';
import type { ClusterLike } from './cluster-status.ts';
import { readStatusActions } from './history.ts';
import { setCondition } from './kube/conditions.ts';
import { rememberValidPolicy, type FallbackWindow, type LastValidRead } from './last-valid.ts';
import { classifyMembers, isOwnedByCluster, type ExcludedMember } from './membership.ts';
import { instanceVolume, providerFacts, resolveVolumePolicy, rfc3339, sizingAction } from './resolve.ts';
import { validCondition, type CnpgCluster, type ValidConditionFields, type ValidationProblem } from './validation/index.ts';

/** The readings of one PVC, copied from the store when the snapshot was taken. */
export interface PvcReadings {
  readonly latest: DiskReading | undefined;
  readonly recent: readonly DiskReading[];
  readonly longTerm?: readonly DiskReading[] | undefined;
}

/** One volume of a DynamicStorage, as gathered: its slot (policy, previous status) and what its PVCs say. */
export interface VolumeSnapshot extends Omit<VolumeSlot, 'selector'> {
  /** The PVCs the Cluster owns with this volume's labels (sizes not yet checked: planVolume sorts them out). */
  readonly pvcs: readonly k8s.V1PersistentVolumeClaim[];
  /** The Cluster's UID; when given, PVCs it does not own are ignored here too. */
  readonly clusterUid?: string | undefined;
  /** The action history to count, already validated and merged (default: the status's recentActions, validated). */
  readonly history?: readonly Readonly<ActionRecord>[] | undefined;
  /** The policy's maintenance window is invalid: planned growth never happens, emergencies still do. */
  readonly windowInvalid?: boolean | undefined;
  /** While the window is invalid: the last valid policy's window for this volume, used in its place. */
  readonly fallbackWindow?: FallbackWindow | undefined;
  /** What was wrong with the history as read (reported in the message). */
  readonly historyProblems?: readonly string[] | undefined;
  readonly storageClass: k8s.V1StorageClass | undefined;
  /**
   * Each PVC's readings by claim name, from an agent on a node where the volume is mounted; a PVC left out has none.
   * Data, not a view of the store: planning reads nothing else.
   */
  readonly readings: ReadonlyMap<string, PvcReadings>;
}

/** A CNPG Cluster as the reconciler reads it. */
export type ClusterObject = CnpgCluster & ClusterLike & { metadata?: { uid?: string; resourceVersion?: string; generation?: number; annotations?: Record<string, string> } };

/**
 * Everything one reconcile of a DynamicStorage decides from, gathered once. Read-only: planning is a function of it (and
 * of the time), and nothing changes it afterwards.
 */
export interface DynamicStorageSnapshot {
  readonly object: Readonly<DynamicStorage>;
  /** The Cluster it names; null when it does not exist. */
  readonly cluster: Readonly<ClusterObject> | null;
  /** Every problem with the policy (sorted), a second DynamicStorage for the Cluster included. */
  readonly problems: readonly ValidationProblem[];
  /** What the controller does with the policy, given its problems. */
  readonly protection: PolicyProtection;
  /** The last valid policy recorded in status, as read (checked). */
  readonly lastValid: LastValidRead;
  /** The volumes, in slot order; none when nothing is sized (protection None). */
  readonly volumes: readonly VolumeSnapshot[];
}

/** What every status write carries: a policy's validity and what the controller does with it. */
export type PolicyStatus = Pick<DynamicStorageStatus, 'observedGeneration' | 'conditions' | 'protection' | 'lastValidPolicy'>;

export interface DynamicStoragePlan {
  /** The Valid condition (without its transition time). */
  valid: ValidConditionFields;
  policyStatus: PolicyStatus;
  /**
   * Whether the volumes are sized: a policy whose problems leave it usable still protects them (one mistake must not
   * switch emergencies off), one that does not is left alone until it is fixed.
   */
  sized: boolean;
  plans: VolumePlan[];
  /** Volumes that could not be planned (a StorageClass annotation that is not a quantity, ...): they keep their status. */
  unplanned: { volume: VolumeSnapshot; error: unknown }[];
  /** The action each plan asks for, in the order of `plans` (undefined: none). */
  records: (ActionRecord | undefined)[];
}

/** Plans one reconcile of a DynamicStorage: pure, from its snapshot and the time. */
export function planDynamicStorage(snapshot: DynamicStorageSnapshot, now: Date): DynamicStoragePlan {
  const { object, problems, protection } = snapshot;
  const generation = object.metadata?.generation;
  const valid = validCondition(problems, generation);
  const policyStatus: PolicyStatus = {
    observedGeneration: generation,
    conditions: setCondition(object.status?.conditions ?? [], valid, now),
    protection,
    lastValidPolicy: rememberValidPolicy(object, problems.length, now),
  };
  const plans: VolumePlan[] = [];
  const unplanned: DynamicStoragePlan['unplanned'] = [];
  for (const volume of snapshot.volumes) {
    try {
      plans.push(planVolume(volume, now));
    } catch (error) {
      unplanned.push({ volume, error });
    }
  }
  return { valid, policyStatus, sized: protection !== 'None', plans, unplanned, records: plans.map((plan) => newAction(plan, now)) };
}

/** Reason of a volume whose grow is not attempted because its StorageClass does not allow expansion. */
export const ExpansionNotAllowed = 'ExpansionNotAllowed';

/** The engine's decision, with the reasons only the controller adds (decided outside the engine). */
export type PlanDecision = Omit<Decision, 'reason'> & { reason: Decision['reason'] | typeof ExpansionNotAllowed };

export interface VolumePlan {
  /** The snapshot, its pvcs narrowed to the members the volume is sized from. */
  snapshot: VolumeSnapshot;
  /** Member PVCs left out of the sizing, and why. */
  excluded: readonly ExcludedMember[];
  policy: VolumePolicy;
  decision: PlanDecision;
  /** History with the previous action's outcome settled (before any new action). */
  history: ActionRecord[];
  /** The previous action, when this reconcile settled it. */
  settled: ActionRecord | undefined;
}

/**
 * History kept in status: every action of the budget window, and always the last one. The budget admits at most
 * maxActionsPerDay (at most 50) actions in any 24 h, so this bound (the CRD's maxItems) never drops a counted one.
 */
export const MAX_RECORDED_ACTIONS = 64;

/** Pending -> Success once every PVC's capacity reached the size asked for; Pending -> Failed when infeasible. */
function settle(history: ActionRecord[], decision: PlanDecision, capacities: readonly (number | undefined)[], now: Date): ActionRecord | undefined {
  const last = history.at(-1);
  if (!last || last.result !== 'Pending') return undefined;
  if (capacities.length > 0 && capacities.every((c) => c !== undefined && c >= last.to)) {
    last.result = 'Success';
    last.completedAt = now;
    return last;
  }
  if (decision.reason === Reasons.ResizeInfeasible) {
    last.result = 'Failed';
    return last;
  }
  return undefined;
}

/** Stands in for a window that cannot be parsed: never open, so only emergencies grow the volume. */
export const neverOpenWindow: MaintenanceWindow = {
  kind: 'scheduled', schedule: '', timezone: 'UTC', durationMs: 0,
  contains: () => false, mostRecentStart: () => undefined, nextStart: () => undefined, nextOpen: () => undefined, closesAt: () => undefined,
  describe: () => 'an invalid maintenance window (see the Valid condition); only emergencies grow the volume',
};

/** The largest size the policy lets a member PVC have: the limit, or the bounded overshoot when emergencies may pass it. */
export function memberCeiling(policy: VolumePolicy, provider: ProviderFacts, tuning: EngineTuning): number {
  return policy.emergencyGrow.exceedLimitOnEmergency ? policy.limit + overshootBytes(policy, provider, tuning) : policy.limit;
}

/** True when the StorageClass is known and does not allow expansion: every patch would be rejected by admission. */
export function expansionForbidden(storageClass: k8s.V1StorageClass | undefined): boolean {
  return storageClass !== undefined && storageClass.allowVolumeExpansion !== true;
}

/** A grow the StorageClass cannot do is not attempted: it would spend the budget on a certain rejection. */
function withoutForbiddenExpansion(decision: Decision, storageClass: k8s.V1StorageClass | undefined): PlanDecision {
  if (decision.action === NoOp || !expansionForbidden(storageClass)) return decision;
  const name = storageClass?.metadata?.name ?? '';
  return {
    ...decision, action: NoOp, newSize: undefined, patches: [], reason: ExpansionNotAllowed,
    message: `${decision.message}; not patching: StorageClass ${name} does not set allowVolumeExpansion: true, so the resize would be rejected`,
  };
}

/** A PVC no agent reported. */
const noReadings: PvcReadings = { latest: undefined, recent: [], longTerm: [] };

export function planVolume(snapshot: VolumeSnapshot, now: Date): VolumePlan {
  const fallback = snapshot.windowInvalid ? snapshot.fallbackWindow : undefined;
  const api = snapshot.windowInvalid ? { ...snapshot.policy, maintenanceWindow: fallback?.window } : snapshot.policy;
  const resolved = resolveVolumePolicy(api, snapshot.field);
  if (snapshot.windowInvalid && !fallback) resolved.policy.maintenanceWindow = neverOpenWindow;
  const provider = providerFacts(snapshot.storageClass, resolved.roundToAzureTier);
  const history = snapshot.history ? snapshot.history.map((r) => ({ ...r })) : readStatusActions(snapshot.previous?.recentActions, now).records;
  const uid = snapshot.clusterUid;
  const owned = uid === undefined ? snapshot.pvcs : snapshot.pvcs.filter((pvc) => isOwnedByCluster(pvc, uid));
  const membership = classifyMembers(owned, memberCeiling(resolved.policy, provider, resolved.tuning), provider.allocationUnit);
  const members = { ...snapshot, pvcs: membership.members };
  const instances = membership.members.map((pvc) => instanceVolume(pvc, snapshot.readings.get(pvc.metadata?.name ?? '') ?? noReadings));
  const input = {
    volume: snapshot.label,
    policy: resolved.policy,
    instances,
    history,
    provider,
    tuning: resolved.tuning,
  };
  let decision = decide(input, now);
  const settled = settle(history, decision, instances.map((i) => i.capacity), now);
  // A settled action changes what the engine sees (a completed resize, learned latency): decide again on the truth.
  if (settled) decision = decide({ ...input, history }, now);
  return {
    snapshot: members, excluded: membership.excluded, policy: resolved.policy,
    decision: withoutForbiddenExpansion(decision, snapshot.storageClass), history, settled,
  };
}

export interface ActionOutcome {
  record: ActionRecord;
  /** Why the patch failed; undefined when every PVC was patched. */
  error: string | undefined;
  /** How many PVCs were patched (some may be, when others were rejected). */
  patched?: number | undefined;
}

/** The action the plan asks for, as it will be recorded (Pending until the PVCs report the new capacity). */
export function newAction(plan: VolumePlan, now: Date): ActionRecord | undefined {
  const { decision } = plan;
  if (decision.action === NoOp || decision.newSize === undefined) return undefined;
  const instances = decision.patches.map((p) => p.instance);
  return {
    kind: decision.action,
    from: decision.currentSize,
    to: decision.newSize,
    timestamp: now,
    result: 'Pending',
    instance: instances.length === 1 ? instances[0] : undefined,
  };
}

export function trimHistory(history: readonly ActionRecord[], now: Date): ActionRecord[] {
  const since = now.getTime() - BUDGET_WINDOW_MS;
  const kept = history.filter((a, i) => a.timestamp.getTime() > since || i === history.length - 1);
  return kept.slice(-MAX_RECORDED_ACTIONS);
}

function budgetStatus(history: readonly ActionRecord[], policy: VolumePolicy, now: Date): ApiBudgetStatus {
  const view = evaluateBudget(history, policy.emergencyGrow, now);
  return {
    actionsLast24h: view.actionsLast24h,
    availableForPlanned: view.availableForPlanned,
    availableForEmergency: view.availableForEmergency,
    ...(view.budgetResetsAt ? { budgetResetsAt: rfc3339(view.budgetResetsAt) } : {}),
  };
}

/** The status of one logical volume after this reconcile (and the outcome of its action, if one was taken). */
export function volumeStatus(plan: VolumePlan, outcome: ActionOutcome | undefined, now: Date): VolumeSizingStatus {
  const { decision } = plan;
  const history = trimHistory(outcome ? [...plan.history, outcome.record] : plan.history, now);
  // A PVC patched to the new size makes it the volume's size, even when the patch of another PVC was rejected.
  const grown = outcome && (outcome.error === undefined || (outcome.patched ?? 0) > 0) ? outcome.record.to : 0;
  const last = history.at(-1);
  const messages = history.map((a) => (a === outcome?.record ? outcome.error : previousMessage(plan, a)));
  return {
    effectiveSize: formatQuantity(Math.max(decision.currentSize, grown)),
    targetSize: formatQuantity(decision.targetSize),
    actualSizes: actualSizes(plan.snapshot.pvcs),
    instances: { ...excludedStatuses(plan.excluded), ...instanceStatuses(decision) },
    state: decision.state,
    reason: decision.reason,
    message: truncate(messageOf(plan, outcome), maxMessageLength),
    ...(last ? { lastAction: sizingAction(last, messages.at(-1)) } : {}),
    recentActions: history.map((a, i) => sizingAction(a, messages[i])),
    budget: budgetStatus(history, plan.policy, now),
    ...(decision.window.nextStart ? { nextMaintenanceWindow: rfc3339(decision.window.nextStart) } : {}),
  };
}

/** The status of every planned volume; a volume that could not be planned keeps its previous status. */
export function sizingOf(outcomes: readonly (readonly [VolumePlan, ActionOutcome | undefined])[], now: Date, volumes: readonly VolumeSnapshot[]): StorageSizingStatus {
  const sizing: StorageSizingStatus = {};
  for (const volume of volumes) if (volume.previous) placeSlot(sizing, volume, volume.previous);
  for (const [plan, outcome] of outcomes) placeSlot(sizing, plan.snapshot, volumeStatus(plan, outcome, now));
  return sizing;
}

function messageOf(plan: VolumePlan, outcome: ActionOutcome | undefined): string {
  const parts = [outcome?.error ? `${plan.decision.message}; patching failed: ${outcome.error}` : plan.decision.message];
  const fallback = plan.snapshot.windowInvalid ? plan.snapshot.fallbackWindow : undefined;
  if (fallback) parts.push(`the maintenance window is invalid (see the Valid condition): the window of the last valid policy (generation ${fallback.generation}) is used`);
  for (const excluded of plan.excluded) parts.push(excluded.message);
  const problems = plan.snapshot.historyProblems ?? [];
  if (problems.length > 0) parts.push(`action history: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ''}`);
  return parts.join('; ');
}

/** Member PVCs left out of the sizing, under their instance (or PVC name), with the reason as their disk status. */
function excludedStatuses(excluded: readonly ExcludedMember[]): Record<string, InstanceVolumeStatus> {
  const result: Record<string, InstanceVolumeStatus> = {};
  for (const entry of excluded) result[entry.instance || entry.pvcName] = { persistentVolumeClaim: entry.pvcName, diskStatus: entry.reason };
  return result;
}

/**
 * What each instance's agent reported, rounded for display so that the status changes when what people read changes,
 * not with every byte written.
 */
function instanceStatuses(decision: PlanDecision): Record<string, InstanceVolumeStatus> {
  const result: Record<string, InstanceVolumeStatus> = {};
  for (const usage of decision.instances) {
    result[usage.instance] = usage.excluded === undefined
      ? {
          persistentVolumeClaim: usage.pvcName, diskStatus: 'Reported',
          used: formatBytesHuman(usage.usedBytes), available: formatBytesHuman(usage.availableBytes),
          percentUsed: Math.min(100, dfPercent(usage.usedBytes, usage.usableBytes)),
        }
      : { persistentVolumeClaim: usage.pvcName, diskStatus: usage.excluded };
  }
  return result;
}

/** Each instance's current capacity (the requested size while the claim is not bound yet). */
function actualSizes(pvcs: readonly k8s.V1PersistentVolumeClaim[]): Record<string, string> {
  const sizes: Record<string, string> = {};
  for (const pvc of pvcs) {
    const instance = instanceOfPvc(pvc);
    const size = pvc.status?.capacity?.storage ?? pvc.spec?.resources?.requests?.storage;
    if (size !== undefined) sizes[instance] = size;
  }
  return sizes;
}

function previousMessage(plan: VolumePlan, action: ActionRecord): string | undefined {
  const stamp = rfc3339(action.timestamp);
  const previous = plan.snapshot.previous?.recentActions?.find((a) => a.timestamp === stamp && a.kind === action.kind);
  if (action === plan.settled && action.result === 'Failed') return plan.decision.message;
  return previous?.message;
}


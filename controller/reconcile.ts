/**
 * One reconcile of one DynamicStorage: gather (API reads, validation, agent readings) into one read-only snapshot ->
 * plan (pure: plan.ts, a function of the snapshot and the time) -> act (patch PVCs, events) -> write status (through the
 * status writer only). Returns when to look again.
 */
import * as k8s from '@kubernetes/client-node';
import {
  dynamicStorageApiVersion,
  dynamicStorageKind,
  type DynamicStorage,
  type DynamicStorageStatus,
  type PolicyProtection,
  type VolumeSizingStatus,
} from '../shared/api/dynamicstorage.generated.ts';
import { apiErrorMessage, errorMessage } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { formatQuantity } from '../shared/quantity.ts';
import { cnpgAnnotations, cnpgClusterKind, cnpgGroup, cnpgVersion, managerIdentity, pvcSelector, slotEntries, slotKey, readSlot, volumeSlots, type VolumeRole, type VolumeSlot, type VolumeSlotId } from '../shared/cnpg.ts';
import { ApiState, type StateReader } from './kube/cache.ts';
import { ConditionTypes, type Condition } from './kube/conditions.ts';
import { EventReasons, type EventSink, type EventTarget } from './kube/events.ts';
import { NoOp, VolumeStates, type ActionRecord } from './policy/index.ts';
import { actionsAnnotation, encodeActionsAnnotation, mergeHistories, readActionsAnnotation, readStatusActions } from './history.ts';
import { fallbackWindow, protectionOf, readLastValidPolicy } from './last-valid.ts';
import { isOwnedByCluster } from './membership.ts';
import {
  planDynamicStorage,
  sizingOf,
  type ActionOutcome,
  type ClusterObject,
  type DynamicStoragePlan,
  type DynamicStorageSnapshot,
  type PolicyStatus,
  type PvcReadings,
  type VolumePlan,
  type VolumeSnapshot,
} from './plan.ts';
import type { ReadingsStore } from './readings.ts';
import type { StatusSink } from './status.ts';
import { ClusterStatusConflict, type ClusterStatusSink } from './cluster-status-writer.ts';
import { checkSingleManager, sortProblems, validateDynamicStorage, type ValidationProblem } from './validation/index.ts';
import { ValidationCodes } from './validation/problems.ts';

export interface ReconcilerDeps {
  kubeConfig: k8s.KubeConfig;
  /** Where objects are read (the leader's caches); the API server when absent. Writes always go to the API server. */
  state?: StateReader | undefined;
  readings: ReadingsStore;
  events: EventSink;
  status: StatusSink;
  /** Writes the summary on the CNPG Cluster (condition and annotation); none: nothing is written there. */
  clusterStatus?: ClusterStatusSink | undefined;
  log: Logger;
  clock: () => Date;
  /** Look again at least this often, even when nothing changes (default 30 s). */
  resyncMs?: number;
  /** Look again this soon while a resize is in flight or disk status is awaited (default 2 s). */
  busyRequeueMs?: number;
  /** Called with each reconciled volume's status (metrics). */
  onVolumeStatus?: (key: VolumeKey, status: VolumeSizingStatus | undefined) => void;
  /** Called with whether each reconciled policy is valid, and what the controller does with it (metrics). */
  onPolicy?: (key: PolicyKey, validity: PolicyValidity) => void;
}

export interface PolicyKey {
  namespace: string;
  cluster: string;
  dynamicStorage: string;
}

export interface PolicyValidity {
  valid: boolean;
  protection: PolicyProtection;
}

export interface VolumeKey {
  namespace: string;
  cluster: string;
  dynamicStorage: string;
  role: VolumeRole;
  tablespace?: string | undefined;
}

export interface ReconcileResult {
  requeueAfterMs: number | undefined;
}

export class Reconciler {
  private readonly deps: ReconcilerDeps;
  private readonly state: StateReader;
  private readonly core: k8s.CoreV1Api;
  private readonly foreignSeen = new Set<string>();
  /** namespace/name -> when a DynamicStorageError event was last recorded for it. */
  private readonly failureEvents = new Map<string, number>();

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
    this.state = deps.state ?? new ApiState(deps.kubeConfig);
    this.core = deps.kubeConfig.makeApiClient(k8s.CoreV1Api);
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const object = await this.getDynamicStorage(namespace, name);
    if (!object) return { requeueAfterMs: undefined };
    const now = this.deps.clock();
    const log = this.deps.log.child({ namespace, cluster: object.spec.cluster.name, dynamicStorage: name });
    const snapshot = await this.gather(namespace, object, now, log);
    const planned = planDynamicStorage(snapshot, now);
    return await this.carryOut(namespace, snapshot, planned, { now, log });
  }

  /** Acts on the plan: patches, events, status; returns when to look again. */
  private async carryOut(namespace: string, snapshot: DynamicStorageSnapshot, planned: DynamicStoragePlan, context: { now: Date; log: Logger }): Promise<ReconcileResult> {
    const { now, log } = context;
    const { object, cluster } = snapshot;
    const name = object.metadata?.name ?? '';
    const target = eventTarget(object, cluster);
    const { policyStatus, plans, records } = planned;
    this.deps.onPolicy?.({ namespace, cluster: object.spec.cluster.name, dynamicStorage: name }, { valid: snapshot.problems.length === 0, protection: snapshot.protection });
    await this.admit({ object, target, log, policyStatus }, snapshot.problems, planned);
    if (!planned.sized) {
      this.forgetVolumes(object, undefined);
      const published = await this.publishToCluster(cluster, name, { ...object.status, ...policyStatus }, { now, log });
      return { requeueAfterMs: Math.min(published, this.deps.resyncMs ?? 30_000) };
    }
    for (const { volume, error } of planned.unplanned) {
      log.error('could not plan volume', { err: error, volume: volume.label });
      void this.deps.events.record(target, 'Warning', dynamicStorageErrorReason, `${volume.label}: ${errorMessage(error)}`);
    }
    let current: DynamicStorage = object;
    if (records.some((record) => record !== undefined)) {
      // Record the actions before touching any PVC: a patch whose record is lost (a conflicting write, a restart in
      // between) would be invisible to the budget. If this write fails, nothing has been patched.
      const intent = plans.map((plan, i): [VolumePlan, ActionOutcome | undefined] => {
        const record = records[i];
        return [plan, record && { record: { ...record }, error: undefined }];
      });
      current = await this.writeStatus(current, { ...policyStatus, storageSizing: sizingOf(intent, now, snapshot.volumes) });
    }
    const outcomes: [VolumePlan, ActionOutcome | undefined][] = [];
    let requeue = this.deps.resyncMs ?? 30_000;
    for (const [i, plan] of plans.entries()) {
      const record = records[i];
      const outcome = record && await this.act(plan, record, target, log);
      outcomes.push([plan, outcome]);
      requeue = Math.min(requeue, this.requeueFor(plan, outcome, now));
    }
    const sizing = sizingOf(outcomes, now, snapshot.volumes);
    for (const [plan, outcome] of outcomes) {
      const status = readSlot(sizing, plan.snapshot);
      if (!status) continue;
      await this.announce(plan, status, outcome, target);
      this.deps.onVolumeStatus?.(volumeKey(object, plan.snapshot), status);
    }
    this.forgetVolumes(object, plans);
    const finalStatus: DynamicStorageStatus = { ...policyStatus, storageSizing: sizing };
    await this.writeStatus(current, finalStatus);
    requeue = Math.min(requeue, await this.publishToCluster(cluster, name, finalStatus, { now, log }));
    return { requeueAfterMs: Math.max(requeue, 100) };
  }

  /**
   * Puts the summary of the status just written on the Cluster (condition and annotation, when they changed). Never fails
   * the reconcile: sizing goes on whatever happens to this write. Returns when to look again: soon after a conflict.
   */
  private async publishToCluster(cluster: ClusterObject | null, dynamicStorage: string, status: DynamicStorageStatus, context: { now: Date; log: Logger }): Promise<number> {
    const sink = this.deps.clusterStatus;
    if (!sink || !cluster) return Number.POSITIVE_INFINITY;
    try {
      const written = await sink.publish(cluster, dynamicStorage, status, context.now);
      if (written.condition || written.annotation) context.log.debug('storage sizing summary written on the Cluster', written);
      return Number.POSITIVE_INFINITY;
    } catch (err) {
      if (err instanceof ClusterStatusConflict) {
        context.log.debug('Cluster changed while the summary was written; trying again', { err });
        return this.deps.busyRequeueMs ?? 2_000;
      }
      context.log.warn('could not write the storage sizing summary on the Cluster', { err });
      return this.deps.resyncMs ?? 30_000;
    }
  }

  /**
   * Reports the policy's problems (a Warning when they changed). A policy whose problems leave it usable is still sized
   * (see planDynamicStorage), while Valid=False and the Warning say what to fix; one that does not gets its status only.
   */
  private async admit(context: AdmitContext, problems: readonly { code: string }[], planned: DynamicStoragePlan): Promise<void> {
    const { object, target, log, policyStatus } = context;
    const { valid } = planned;
    if (problems.length === 0) return;
    const name = object.metadata?.name ?? '';
    const generation = object.metadata?.generation;
    if (object.status?.conditions?.find((c) => c.type === ConditionTypes.Valid)?.message !== valid.message || object.status.observedGeneration !== generation) {
      await this.deps.events.record(target, 'Warning', valid.reason, `DynamicStorage ${name}: ${valid.message}`);
    }
    if (planned.sized) {
      log.warn('policy is partly invalid; the volumes are still sized with its valid parts', { reason: valid.reason, problems: valid.message });
      return;
    }
    log.warn('policy is invalid; nothing is resized', { reason: valid.reason, problems: valid.message });
    await this.writeStatus(object, { ...object.status, ...policyStatus });
  }

  /**
   * A reconcile failed (the worker retries it with backoff): say so where users look, a `DynamicStorageError` Warning on
   * the Cluster, at most once per `intervalMs` per DynamicStorage (a failure repeats on every retry).
   */
  async reportFailure(namespace: string, name: string, err: unknown, intervalMs = 5 * 60_000): Promise<void> {
    const key = `${namespace}/${name}`;
    const now = Date.now();
    if (now - (this.failureEvents.get(key) ?? Number.NEGATIVE_INFINITY) < intervalMs) return;
    this.failureEvents.set(key, now);
    if (this.failureEvents.size > 10_000) this.failureEvents.clear();
    try {
      const object = await this.getDynamicStorage(namespace, name);
      if (!object) return;
      const cluster = await this.getCluster(namespace, object.spec.cluster.name).catch(() => null);
      await this.deps.events.record(eventTarget(object, cluster), 'Warning', dynamicStorageErrorReason, `DynamicStorage ${name}: reconcile failed: ${errorMessage(err)}`);
    } catch (reportErr) {
      this.deps.log.warn('could not report a reconcile failure', { namespace, dynamicStorage: name, err: reportErr });
    }
  }

  private requeueFor(plan: VolumePlan, outcome: ActionOutcome | undefined, now: Date): number {
    const busy = this.deps.busyRequeueMs ?? 2_000;
    const state = plan.decision.state;
    if (outcome || state === VolumeStates.Resizing || state === VolumeStates.WaitingForDiskStatus) return busy;
    const wake = plan.decision.wakeAt?.getTime();
    return wake === undefined ? Number.POSITIVE_INFINITY : Math.max(0, wake - now.getTime()) + 50;
  }

  private async getDynamicStorage(namespace: string, name: string): Promise<DynamicStorage | undefined> {
    return await this.state.dynamicStorage(namespace, name);
  }

  private async siblings(namespace: string): Promise<DynamicStorage[]> {
    return await this.state.dynamicStorages(namespace);
  }

  private async getCluster(namespace: string, name: string): Promise<ClusterObject | null> {
    return (await this.state.cluster(namespace, name) ?? null);
  }

  /** The one way status is written here; what was stored is read back by the next reconcile, whatever the cache holds. */
  private async writeStatus(object: DynamicStorage, status: DynamicStorageStatus): Promise<DynamicStorage> {
    const stored = await this.deps.status.write(object, status);
    if (stored !== object) this.state.wrote('dynamicstorages', stored as unknown as k8s.KubernetesObject);
    return stored;
  }

  /**
   * Reads everything one reconcile decides from, once: the Cluster, the policy's problems, and when the volumes are
   * sized, per volume its PVCs, StorageClass, history and readings.
   */
  private async gather(namespace: string, object: DynamicStorage, now: Date, log: Logger): Promise<DynamicStorageSnapshot> {
    const cluster = await this.getCluster(namespace, object.spec.cluster.name);
    const problems = sortProblems([
      ...validateDynamicStorage(object, { cluster }),
      ...checkSingleManager(managerIdentity(object), (await this.siblings(namespace)).map(managerIdentity)),
    ]);
    const protection = protectionOf(problems, cluster !== null);
    const lastValid = readLastValidPolicy(object);
    if (lastValid.problem !== undefined) log.warn('last valid policy in status ignored', { problem: lastValid.problem });
    const volumes = cluster && protection !== 'None' ? await this.gatherVolumes(object, { namespace, cluster, log, now, problems, lastValid }) : [];
    return { object, cluster, problems, protection, lastValid, volumes };
  }

  private async gatherVolumes(object: DynamicStorage, context: GatherContext): Promise<VolumeSnapshot[]> {
    const { namespace, cluster, log, now, problems, lastValid } = context;
    const clusterName = object.spec.cluster.name;
    const clusterUid = cluster.metadata?.uid;
    // Policy fields (`spec.storage`, ...) whose maintenance window is invalid.
    const invalidWindows = new Set(problems.filter((p) => windowCodes.has(p.code)).map((p) => p.field.replace(/\.maintenanceWindow\..*$/, '')));
    const classes = new Map<string, Promise<k8s.V1StorageClass | undefined>>();
    const mountedOn = await this.mountNodes(namespace, clusterName, clusterUid);
    const gathered: Omit<VolumeSnapshot, 'readings'>[] = [];
    for (const slot of volumeSlots(object.spec, object.status?.storageSizing)) {
      const labelled = await this.pvcsOf(namespace, clusterName, slot);
      const pvcs = labelled.filter((pvc) => isOwnedByCluster(pvc, clusterUid));
      this.reportForeign(labelled.filter((pvc) => !pvcs.includes(pvc)), log);
      const className = pvcs.find((p) => p.spec?.storageClassName)?.spec?.storageClassName;
      let storageClass: Promise<k8s.V1StorageClass | undefined> | undefined;
      if (className !== undefined) {
        storageClass = classes.get(className) ?? this.state.storageClass(className).catch(() => undefined);
        classes.set(className, storageClass);
      }
      const history = mergeHistories(readStatusActions(slot.previous?.recentActions, now), pvcs.map((pvc) => readActionsAnnotation(pvc, now)));
      if (history.problems.length > 0) log.warn('action history entries ignored', { volume: slot.label, problems: history.problems });
      const windowInvalid = invalidWindows.has(slot.field);
      gathered.push({
        ...withoutSelector(slot), pvcs, clusterUid, storageClass: await storageClass, history: history.records, historyProblems: history.problems,
        windowInvalid, fallbackWindow: windowInvalid ? fallbackWindow(lastValid.policy, slot) : undefined,
      });
    }
    // The readings last, in one pass with no I/O in between: copies of what the store holds now, as planning would have
    // read it right after gathering.
    return gathered.map((volume) => ({ ...volume, readings: this.readingsOf(namespace, volume.pvcs, mountedOn) }));
  }

  /** Each PVC's readings, copied: a reading counts only when the agent that sent it runs on a node where the volume is mounted. */
  private readingsOf(namespace: string, pvcs: readonly k8s.V1PersistentVolumeClaim[], mountedOn: ReadonlyMap<string, ReadonlySet<string>>): ReadonlyMap<string, PvcReadings> {
    const readings = new Map<string, PvcReadings>();
    for (const pvc of pvcs) {
      const name = pvc.metadata?.name ?? '';
      const { latest, recent, longTerm } = this.deps.readings.forPvc(namespace, name, mountedOn.get(name) ?? new Set<string>());
      readings.set(name, { latest, recent, longTerm });
    }
    return readings;
  }

  /**
   * The nodes where each PVC is mounted: claim name -> nodes of the Cluster's own instance pods using it. An agent's
   * reading of a volume counts only when the agent runs on one of them.
   */
  private async mountNodes(namespace: string, cluster: string, clusterUid: string | undefined): Promise<Map<string, Set<string>>> {
    const pods = await this.state.clusterPods(namespace, cluster);
    const result = new Map<string, Set<string>>();
    for (const pod of pods) {
      const node = pod.spec?.nodeName;
      const owned = (pod.metadata?.ownerReferences ?? []).some((ref) => ref.controller === true && ref.kind === cnpgClusterKind && ref.uid === clusterUid);
      if (!node || !owned || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      for (const volume of pod.spec?.volumes ?? []) {
        const claim = volume.persistentVolumeClaim?.claimName;
        if (claim) result.set(claim, (result.get(claim) ?? new Set<string>()).add(node));
      }
    }
    return result;
  }

  /** PVCs with CloudNativePG's labels that the Cluster does not own: never sized from, never patched; logged once each. */
  private reportForeign(pvcs: readonly k8s.V1PersistentVolumeClaim[], log: Logger): void {
    for (const pvc of pvcs) {
      const key = `${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.uid ?? ''}`;
      if (this.foreignSeen.has(key)) continue;
      if (this.foreignSeen.size > 10_000) this.foreignSeen.clear();
      this.foreignSeen.add(key);
      log.warn('ignoring a PVC with CloudNativePG labels that the Cluster does not own', { pvc: pvc.metadata?.name });
    }
  }

  /**
   * The PVCs CNPG made for this logical volume, as the cache holds them, with the controller's own patches in them even
   * before the cache has them (see kube/cache.ts): a patch is never repeated on stale data.
   */
  private async pvcsOf(namespace: string, cluster: string, slot: VolumeSlotId): Promise<k8s.V1PersistentVolumeClaim[]> {
    const list = await this.state.pvcs(namespace, pvcSelector(cluster, slot));
    return list
      .filter((pvc) => !pvc.metadata?.deletionTimestamp && pvc.metadata?.annotations?.[cnpgAnnotations.pvcStatus] !== 'detached')
      .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  }

  /**
   * Patches every PVC the decision names, each at most once. When the API server refused every patch (403 or 422:
   * admission, a ResourceQuota) no disk was touched: the action is Rejected, outside the budget (see actionResultOf).
   * Any other failure fails the action, and it counts.
   */
  private async act(plan: VolumePlan, record: ActionRecord, target: EventTarget, log: Logger): Promise<ActionOutcome> {
    const namespace = target.namespace;
    const errors: string[] = [];
    const codes: (number | undefined)[] = [];
    // The action travels with the new size: the budget survives a re-created DynamicStorage (see history.ts).
    const annotations = { [actionsAnnotation]: encodeActionsAnnotation([...plan.history, record], record.timestamp) };
    for (const patch of plan.decision.patches) {
      const pvcLog = log.child({ pvc: patch.pvcName });
      try {
        const patched = await this.core.patchNamespacedPersistentVolumeClaim(
          { name: patch.pvcName, namespace, body: { metadata: { annotations }, spec: { resources: { requests: { storage: formatQuantity(patch.to) } } } } },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
        this.state.wrote('persistentvolumeclaims', patched);
        pvcLog.info('patched PVC', { kind: record.kind, from: formatQuantity(patch.from), to: formatQuantity(patch.to), reason: plan.decision.reason });
      } catch (err) {
        const message = err instanceof k8s.ApiException ? apiErrorMessage(err) : errorMessage(err);
        errors.push(`${patch.pvcName}: ${message}`);
        codes.push(err instanceof k8s.ApiException ? err.code : undefined);
        pvcLog.error('could not patch PVC', { err, kind: record.kind, code: codes.at(-1) });
      }
    }
    if (errors.length > 0) record.result = actionResultOf(plan.decision.patches.length, codes);
    return { record, error: errors.length > 0 ? errors.join('; ') : undefined, patched: plan.decision.patches.length - errors.length };
  }

  private async announce(plan: VolumePlan, status: VolumeSizingStatus, outcome: ActionOutcome | undefined, target: EventTarget): Promise<void> {
    const { decision, snapshot } = plan;
    const events = this.deps.events;
    for (const excluded of plan.excluded) {
      const before = Object.values(snapshot.previous?.instances ?? {}).find((i) => i.persistentVolumeClaim === excluded.pvcName);
      if (before?.diskStatus !== excluded.reason) await events.record(target, 'Warning', excludedReason(excluded.reason), `${snapshot.label}: ${excluded.message}`);
    }
    if (outcome) {
      const sizes = `${formatQuantity(outcome.record.from)} to ${formatQuantity(outcome.record.to)}`;
      if (outcome.error === undefined) {
        await events.record(target, 'Normal', outcome.record.kind, `${decision.message}; patched ${plan.decision.patches.map((p) => p.pvcName).join(', ')}`);
      } else {
        await events.record(target, 'Warning', EventReasons.ResizeFailed, `${snapshot.label}: could not grow from ${sizes}: ${outcome.error}${rejectedNote(outcome.record)}`);
      }
      return;
    }
    const settled = plan.settled;
    if (settled?.result === 'Success') {
      await events.record(target, 'Normal', EventReasons.ResizeCompleted, `${snapshot.label}: every volume reached ${formatQuantity(settled.to)}`);
    } else if (settled?.result === 'Failed') {
      await events.record(target, 'Warning', EventReasons.ResizeFailed, decision.message);
    }
    const changed = snapshot.previous?.state !== status.state || snapshot.previous?.reason !== status.reason;
    if (!changed || decision.action !== NoOp) return;
    if (decision.state === VolumeStates.Emergency || decision.state === VolumeStates.AtLimit) {
      await events.record(target, 'Warning', decision.reason, decision.message);
    } else if (decision.state === VolumeStates.PendingGrowth) {
      await events.record(target, 'Normal', decision.reason, decision.message);
    }
  }

  private forgetVolumes(object: DynamicStorage, plans: readonly VolumePlan[] | undefined): void {
    const report = this.deps.onVolumeStatus;
    if (!report) return;
    const kept = new Set((plans ?? []).map((p) => slotKey(p.snapshot)));
    for (const { slot } of slotEntries(object.status?.storageSizing)) {
      if (!kept.has(slotKey(slot))) report(volumeKey(object, slot), undefined);
    }
  }
}

function volumeKey(object: DynamicStorage, snapshot: VolumeSlotId): VolumeKey {
  return {
    namespace: object.metadata?.namespace ?? '', cluster: object.spec.cluster.name, dynamicStorage: object.metadata?.name ?? '',
    role: snapshot.role, tablespace: snapshot.tablespace,
  };
}

/** The slot without the PVC selector, which only gathering uses. */
function withoutSelector(slot: VolumeSlot): Omit<VolumeSlot, 'selector'> {
  const { selector: _selector, ...rest } = slot;
  return rest;
}

interface GatherContext {
  namespace: string;
  cluster: Readonly<ClusterObject>;
  log: Logger;
  now: Date;
  problems: readonly ValidationProblem[];
  /** The last valid policy recorded in status (checked), for the windows the current one cannot give. */
  lastValid: ReturnType<typeof readLastValidPolicy>;
}

interface AdmitContext {
  object: DynamicStorage;
  target: EventTarget;
  log: Logger;
  policyStatus: PolicyStatus;
}

/** Events go on the CNPG Cluster, where users look; on the DynamicStorage itself when the Cluster does not exist. */
function eventTarget(object: DynamicStorage, cluster: Readonly<ClusterObject> | null): EventTarget {
  const namespace = object.metadata?.namespace ?? '';
  if (cluster) {
    return { apiVersion: `${cnpgGroup}/${cnpgVersion}`, kind: cnpgClusterKind, namespace, name: object.spec.cluster.name, uid: cluster.metadata?.uid };
  }
  return { apiVersion: dynamicStorageApiVersion, kind: dynamicStorageKind, namespace, name: object.metadata?.name ?? '', uid: object.metadata?.uid };
}

const windowCodes = new Set<string>([ValidationCodes.InvalidSchedule, ValidationCodes.InvalidTimeZone]);

/**
 * The result of an action some of whose patches failed (`codes`: each failure's HTTP status, undefined when there was
 * no answer). Rejected when every patch was refused by admission or a quota (403, 422): nothing was changed, so it is
 * not counted in the budget. Failed otherwise: a disk may have been modified, or it is not known.
 */
export function actionResultOf(patches: number, codes: readonly (number | undefined)[]): 'Failed' | 'Rejected' {
  const refused = codes.length === patches && codes.every((code) => code === 403 || code === 422);
  return refused ? 'Rejected' : 'Failed';
}

function rejectedNote(record: ActionRecord): string {
  return record.result === 'Rejected' ? ' (rejected by the API server: no disk was touched, not counted in the daily budget)' : '';
}

/** Event reason of a reconcile that failed, or of a volume that could not be planned. */
export const dynamicStorageErrorReason = EventReasons.DynamicStorageError;

function excludedReason(reason: string): string {
  return reason === 'AboveLimit' ? EventReasons.VolumeAboveLimit : reason === 'InvalidSize' ? EventReasons.VolumeSizeInvalid : EventReasons.VolumeExcluded;
}

export type { Condition, ActionRecord };

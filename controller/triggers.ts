/**
 * Which watch events and agent readings wake a reconcile: only those that change something a reconcile reads. Each
 * object is reduced to the parts that matter (a fingerprint); an event whose fingerprint equals the last one seen for
 * that object is dropped. The periodic resync still looks at everything, from the caches.
 */
import type * as k8s from '@kubernetes/client-node';
import type { VolumeReading } from '../shared/readings.ts';
import { clusterConditionType, clusterStatusAnnotation } from './cluster-status.ts';

type Meta = k8s.V1ObjectMeta | undefined;

function identity(meta: Meta): unknown[] {
  return [meta?.uid, meta?.deletionTimestamp, meta?.labels, meta?.ownerReferences];
}

/**
 * A CNPG Cluster: its spec (sizes, instances, tablespaces) and generation, and the summary we write on it (an operator
 * write that drops our condition must wake us, see cluster-status-writer.ts). The operator's own status churn does not.
 */
export function clusterFingerprint(cluster: k8s.KubernetesObject & { spec?: unknown; status?: { conditions?: readonly { type?: string }[] } }): string {
  const ours = cluster.status?.conditions?.find((c) => c.type === clusterConditionType);
  return JSON.stringify([...identity(cluster.metadata), cluster.metadata?.generation, cluster.spec, cluster.metadata?.annotations?.[clusterStatusAnnotation], ours]);
}

/** A PVC: its size request, capacity, resize progress (allocated resources and their statuses, conditions), metadata. */
export function pvcFingerprint(pvc: k8s.V1PersistentVolumeClaim): string {
  const status = pvc.status;
  return JSON.stringify([
    ...identity(pvc.metadata), pvc.metadata?.annotations, pvc.spec?.resources?.requests, pvc.spec?.storageClassName, pvc.spec?.volumeName,
    status?.phase, status?.capacity, status?.allocatedResources, status?.allocatedResourceStatuses, status?.conditions,
  ]);
}

/** A CNPG pod: the node it runs on, whether it ended, the claims it mounts (which agent's readings count). */
export function podFingerprint(pod: k8s.V1Pod): string {
  const ended = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
  const claims = (pod.spec?.volumes ?? []).map((v) => v.persistentVolumeClaim?.claimName).filter((c) => c !== undefined);
  return JSON.stringify([...identity(pod.metadata), pod.spec?.nodeName, ended, claims]);
}

/** Remembers the last fingerprint of each object; says whether a new one differs. */
export class ChangeFilter {
  private readonly seen = new Map<string, string>();

  /** True when `fingerprint` differs from the last one of `key` (always for a key not seen yet). */
  changed(key: string, fingerprint: string): boolean {
    if (this.seen.get(key) === fingerprint) return false;
    this.seen.set(key, fingerprint);
    return true;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }
}

/**
 * Whether a reading changes what a reconcile would decide from: anything but the time it was taken, unless the reading
 * it replaces is old enough that its age starts to matter (a reading goes stale after minutes: see maxReadingAgeMs).
 */
export function readingChangesDecision(before: VolumeReading | undefined, after: VolumeReading, refreshAfterMs: number): boolean {
  if (!before) return true;
  const age = Date.parse(after.sampledAt) - Date.parse(before.sampledAt);
  if (!(age < refreshAfterMs)) return true;
  const { sampledAt: _a, changedAt: _b, ...was } = before;
  const { sampledAt: _c, changedAt: _d, ...is } = after;
  return JSON.stringify(was) !== JSON.stringify(is);
}

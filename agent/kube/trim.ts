/**
 * Copies of API objects with only the fields the agent reads (types.ts). A pod as the API server sends it is 5-20 KiB of
 * JSON, most of it managed fields and container specs; the trimmed copy is a few hundred bytes.
 */
import type { ObjectMeta, PersistentVolume, PersistentVolumeClaim, Pod, PodVolume } from './types.ts';

function meta(m: ObjectMeta | undefined, withTimestamps: boolean): ObjectMeta {
  const out: ObjectMeta = {};
  if (!m) return out;
  if (m.name !== undefined) out.name = m.name;
  if (m.namespace !== undefined) out.namespace = m.namespace;
  if (m.uid !== undefined) out.uid = m.uid;
  if (m.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  if (m.labels !== undefined) out.labels = m.labels;
  if (withTimestamps) {
    if (m.creationTimestamp !== undefined) out.creationTimestamp = m.creationTimestamp;
    if (m.deletionTimestamp !== undefined) out.deletionTimestamp = m.deletionTimestamp;
  }
  return out;
}

/** Keeps the pod's identity, node, phase and its PVC volumes (other volumes never hold a CNPG volume). */
export function trimPod(pod: Pod): Pod {
  const volumes: PodVolume[] = [];
  for (const v of pod.spec?.volumes ?? []) {
    const claimName = v.persistentVolumeClaim?.claimName;
    if (claimName !== undefined) volumes.push({ name: v.name, persistentVolumeClaim: { claimName } });
  }
  const out: Pod = { metadata: meta(pod.metadata, true), spec: { volumes } };
  if (pod.spec?.nodeName !== undefined && out.spec) out.spec.nodeName = pod.spec.nodeName;
  if (pod.status?.phase !== undefined) out.status = { phase: pod.status.phase };
  return out;
}

export function trimPvc(pvc: PersistentVolumeClaim): PersistentVolumeClaim {
  const spec: NonNullable<PersistentVolumeClaim['spec']> = {};
  if (pvc.spec?.volumeName !== undefined) spec.volumeName = pvc.spec.volumeName;
  if (pvc.spec?.volumeMode !== undefined) spec.volumeMode = pvc.spec.volumeMode;
  return { metadata: meta(pvc.metadata, false), spec };
}

/** Keeps the whole spec (which volume source it has matters, and a node needs only a few PVs); drops status. */
export function trimPv(pv: PersistentVolume): PersistentVolume {
  const out: PersistentVolume = { metadata: meta(pv.metadata, false) };
  if (pv.spec) out.spec = pv.spec;
  return out;
}

/**
 * Which PVCs make up a logical volume, decided purely from the PVCs and the Cluster. Labels alone prove nothing: anyone
 * who may create PVCs in the namespace can copy CloudNativePG's labels. A PVC is a member only when CloudNativePG owns it
 * (a controller ownerReference to the Cluster, by UID) as well as carrying the labels. A member whose size cannot be
 * read, lies above what the policy allows, or is an unbound claim larger than every bound one is reported and left out
 * of the sizing: the volume's size is never taken from it, so it is never copied to other PVCs or new replicas.
 */
import type * as k8s from '@kubernetes/client-node';
import { errorMessage } from '../shared/errors.ts';
import { formatQuantity, parseQuantity } from '../shared/quantity.ts';
import { cnpgGroup, instanceOfPvc } from '../shared/cnpg.ts';

/** Why a member PVC is left out of the sizing; shown as the instance's diskStatus and in a Warning event. */
export const ExclusionReasons = {
  /** Its requested size or capacity is not a quantity this product handles (unparsable, or above 8Pi). */
  InvalidSize: 'InvalidSize',
  /** Its requested size or capacity is above the largest size the policy allows. */
  AboveLimit: 'AboveLimit',
  /** Not bound yet and larger than every bound member: its size was set by neither CloudNativePG's volumes nor us. */
  UnboundAboveVolumeSize: 'UnboundAboveVolumeSize',
} as const;
export type ExclusionReason = (typeof ExclusionReasons)[keyof typeof ExclusionReasons];

export interface ExcludedMember {
  pvcName: string;
  instance: string;
  reason: ExclusionReason;
  message: string;
}

export interface Membership {
  /** The member PVCs the volume is sized from (and patched). */
  members: k8s.V1PersistentVolumeClaim[];
  /** Member PVCs reported and left alone. */
  excluded: ExcludedMember[];
}

/** True when the Cluster with `clusterUid` is the PVC's controller, as CloudNativePG sets it on every PVC it creates. */
export function isOwnedByCluster(pvc: k8s.V1PersistentVolumeClaim, clusterUid: string | undefined): boolean {
  if (!clusterUid) return false;
  return (pvc.metadata?.ownerReferences ?? []).some((ref) =>
    ref.controller === true && ref.kind === 'Cluster' && ref.uid === clusterUid && ref.apiVersion.split('/')[0] === cnpgGroup);
}

type Sizes = { requested: number; capacity: number | undefined } | { error: string };

function sizesOf(pvc: k8s.V1PersistentVolumeClaim): Sizes {
  try {
    const requestedText = pvc.spec?.resources?.requests?.storage;
    const capacityText = pvc.status?.phase === 'Bound' ? pvc.status.capacity?.storage : undefined;
    return {
      requested: requestedText === undefined ? 0 : parseQuantity(requestedText, 'spec.resources.requests.storage'),
      capacity: capacityText === undefined ? undefined : parseQuantity(capacityText, 'status.capacity.storage'),
    };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

/**
 * Sorts the owned PVCs of one logical volume into the members it is sized from and excluded members. `ceiling` is the
 * largest size the policy lets the volume reach (the limit, or the emergency overshoot above it when allowed).
 * Pure.
 */
export function classifyMembers(
  pvcs: readonly k8s.V1PersistentVolumeClaim[],
  ceiling: number,
  allocationUnit = 1,
): Membership {
  // The provider may round a disk up to its allocation unit: a capacity that far above the ceiling is still ours.
  const capacityCeiling = Math.ceil(ceiling / allocationUnit) * allocationUnit;
  const result: Membership = { members: [], excluded: [] };
  const sized: { pvc: k8s.V1PersistentVolumeClaim; requested: number; capacity: number | undefined }[] = [];
  for (const pvc of pvcs) {
    const pvcName = pvc.metadata?.name ?? '';
    const instance = instanceOfPvc(pvc);
    const sizes = sizesOf(pvc);
    if ('error' in sizes) {
      result.excluded.push({ pvcName, instance, reason: ExclusionReasons.InvalidSize, message: `PVC ${pvcName} is left alone: ${sizes.error}` });
      continue;
    }
    const largest = Math.max(sizes.requested, sizes.capacity ?? 0);
    if (sizes.requested > ceiling || (sizes.capacity ?? 0) > capacityCeiling) {
      result.excluded.push({
        pvcName, instance, reason: ExclusionReasons.AboveLimit,
        message: `PVC ${pvcName} is left alone: its size ${formatQuantity(largest)} is above the largest size the policy allows (${formatQuantity(ceiling)})`,
      });
      continue;
    }
    sized.push({ pvc, ...sizes });
  }
  const bound = sized.filter((s) => s.capacity !== undefined);
  const largestBound = Math.max(0, ...bound.map((s) => s.requested));
  for (const entry of sized) {
    const pvcName = entry.pvc.metadata?.name ?? '';
    if (bound.length > 0 && entry.capacity === undefined && entry.requested > largestBound) {
      result.excluded.push({
        pvcName, instance: instanceOfPvc(entry.pvc), reason: ExclusionReasons.UnboundAboveVolumeSize,
        message: `PVC ${pvcName} is left out until it is bound: it asks for ${formatQuantity(entry.requested)}, more than every bound volume (${formatQuantity(largestBound)})`,
      });
      continue;
    }
    result.members.push(entry.pvc);
  }
  return result;
}

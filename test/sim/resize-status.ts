/**
 * PVC resize status, written the way Kubernetes 1.34+ writes it (external-resizer `resize_status.go` for the controller
 * side, kubelet's `pkg/volume/util/resize_util.go` for the node side): `status.allocatedResources.storage`,
 * `status.allocatedResourceStatuses.storage` and the resize conditions. Pure functions computing a merge patch for the
 * status subresource, plus one function that sends it guarded by resourceVersion.
 */
import type * as k8s from '@kubernetes/client-node';
import { mergePatch, type Clients } from './kube.ts';

export const resizeStatus = {
  controllerInProgress: 'ControllerResizeInProgress',
  controllerInfeasible: 'ControllerResizeInfeasible',
  nodePending: 'NodeResizePending',
  nodeInProgress: 'NodeResizeInProgress',
  nodeInfeasible: 'NodeResizeInfeasible',
} as const;
export type ResizeStatus = (typeof resizeStatus)[keyof typeof resizeStatus];

export const conditionTypes = {
  resizing: 'Resizing',
  fileSystemResizePending: 'FileSystemResizePending',
  controllerResizeError: 'ControllerResizeError',
  nodeResizeError: 'NodeResizeError',
} as const;

const resizeConditionTypes = new Set<string>(Object.values(conditionTypes));

export const fileSystemResizePendingMessage = 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.';

export interface PvcCondition {
  type: string;
  status: string;
  lastTransitionTime?: string;
  lastProbeTime?: string | null;
  message?: string;
  reason?: string;
}

/** The status merge patch body: conditions are replaced whole, map keys set to null are removed. */
export interface StatusPatch {
  conditions?: PvcCondition[];
  allocatedResources?: Record<string, string | null>;
  allocatedResourceStatuses?: Record<string, string | null>;
  capacity?: Record<string, string>;
}

function conditionsOf(pvc: k8s.V1PersistentVolumeClaim): PvcCondition[] {
  return (pvc.status?.conditions ?? []).map((c) => {
    const condition: PvcCondition = { type: c.type, status: c.status };
    const transition: unknown = c.lastTransitionTime;
    if (transition instanceof Date) condition.lastTransitionTime = transition.toISOString().replace(/\.\d{3}Z$/, 'Z');
    else if (typeof transition === 'string') condition.lastTransitionTime = transition;
    if (c.message !== undefined) condition.message = c.message;
    if (c.reason !== undefined) condition.reason = c.reason;
    return condition;
  });
}

/**
 * Kubernetes' MergeResizeConditionOnPVC: non-resize conditions are kept; a resize condition that is also in `next` keeps
 * its old entry when the status did not change (so lastTransitionTime stays), else takes the new one; other resize
 * conditions survive only with keepOld; new ones are appended.
 */
export function mergeResizeConditions(old: PvcCondition[], next: PvcCondition[], keepOld: boolean): PvcCondition[] {
  const pending = new Map(next.map((c) => [c.type, c]));
  const result: PvcCondition[] = [];
  for (const condition of old) {
    if (!resizeConditionTypes.has(condition.type)) {
      result.push(condition);
      continue;
    }
    const replacement = pending.get(condition.type);
    if (replacement) {
      result.push(replacement.status !== condition.status || replacement.message !== condition.message ? replacement : condition);
      pending.delete(condition.type);
    } else if (keepOld) {
      result.push(condition);
    }
  }
  result.push(...pending.values());
  return result;
}

function condition(type: string, now: Date, message?: string): PvcCondition {
  const result: PvcCondition = { type, status: 'True', lastTransitionTime: now.toISOString().replace(/\.\d{3}Z$/, 'Z') };
  if (message !== undefined) result.message = message;
  return result;
}

/** external-resizer markControllerResizeInProgress. */
export function controllerResizeInProgress(pvc: k8s.V1PersistentVolumeClaim, newSize: string, now: Date): StatusPatch {
  return {
    conditions: mergeResizeConditions(conditionsOf(pvc), [condition(conditionTypes.resizing, now)], false),
    allocatedResources: { storage: newSize },
    allocatedResourceStatuses: { storage: resizeStatus.controllerInProgress },
  };
}

/** external-resizer markControllerExpansionInfeasible (a final, infeasible CSI error: InvalidArgument, OutOfRange). */
export function controllerResizeInfeasible(pvc: k8s.V1PersistentVolumeClaim, message: string, now: Date): StatusPatch {
  return {
    conditions: mergeResizeConditions(conditionsOf(pvc), [condition(conditionTypes.controllerResizeError, now, message)], false),
    allocatedResourceStatuses: { storage: resizeStatus.controllerInfeasible },
  };
}

/** external-resizer markControllerExpansionFailedCondition (any other error; the resize stays in progress and is retried). */
export function controllerResizeFailed(pvc: k8s.V1PersistentVolumeClaim, message: string, now: Date): StatusPatch {
  return { conditions: mergeResizeConditions(conditionsOf(pvc), [condition(conditionTypes.controllerResizeError, now, message)], true) };
}

/** external-resizer markForPendingNodeExpansion. */
export function nodeResizePending(pvc: k8s.V1PersistentVolumeClaim, now: Date): StatusPatch {
  return {
    conditions: mergeResizeConditions(conditionsOf(pvc), [condition(conditionTypes.fileSystemResizePending, now, fileSystemResizePendingMessage)], false),
    allocatedResourceStatuses: { storage: resizeStatus.nodePending },
  };
}

/** external-resizer markOverallExpansionAsFinished / kubelet MarkNodeExpansionFinishedWithRecovery. */
export function resizeFinished(pvc: k8s.V1PersistentVolumeClaim, capacity: string): StatusPatch {
  return {
    conditions: mergeResizeConditions(conditionsOf(pvc), [], false),
    allocatedResourceStatuses: { storage: null },
    capacity: { storage: capacity },
  };
}

/** kubelet MarkNodeExpansionInProgress. */
export function nodeResizeInProgress(): StatusPatch {
  return { allocatedResourceStatuses: { storage: resizeStatus.nodeInProgress } };
}

/** kubelet MarkNodeExpansionInfeasible: kubelet will not retry this size. */
export function nodeResizeInfeasible(pvc: k8s.V1PersistentVolumeClaim, error: string, now: Date): StatusPatch {
  return {
    conditions: mergeResizeConditions(conditionsOf(pvc), [condition(conditionTypes.nodeResizeError, now, `failed to expand pvc with ${error}`)], true),
    allocatedResourceStatuses: { storage: resizeStatus.nodeInfeasible },
  };
}

/** kubelet MarkNodeExpansionFailedCondition: a retriable node error. */
export function nodeResizeFailed(pvc: k8s.V1PersistentVolumeClaim, error: string, now: Date): StatusPatch {
  return { conditions: mergeResizeConditions(conditionsOf(pvc), [condition(conditionTypes.nodeResizeError, now, `failed to expand pvc with ${error}`)], true) };
}

/**
 * Sends a status patch through the status subresource. With `resourceVersion` the patch is a compare-and-swap (409 on a
 * stale read), as PatchPVCStatus does with addResourceVersionCheck.
 */
export async function patchPvcStatus(
  clients: Clients, pvc: k8s.V1PersistentVolumeClaim, patch: StatusPatch, checkResourceVersion = true,
): Promise<k8s.V1PersistentVolumeClaim> {
  const body: Record<string, unknown> = { status: patch };
  if (checkResourceVersion && pvc.metadata?.resourceVersion) body.metadata = { resourceVersion: pvc.metadata.resourceVersion };
  return clients.core.patchNamespacedPersistentVolumeClaimStatus({
    name: pvc.metadata?.name ?? '', namespace: pvc.metadata?.namespace ?? '', body,
  }, mergePatch);
}

export function storageRequest(pvc: k8s.V1PersistentVolumeClaim): string | undefined {
  return pvc.spec?.resources?.requests?.storage;
}

export function storageCapacity(pvc: k8s.V1PersistentVolumeClaim): string | undefined {
  return pvc.status?.capacity?.storage;
}

export function allocatedStorage(pvc: k8s.V1PersistentVolumeClaim): string | undefined {
  return pvc.status?.allocatedResources?.storage;
}

export function storageResizeStatus(pvc: k8s.V1PersistentVolumeClaim): string | undefined {
  return pvc.status?.allocatedResourceStatuses?.storage;
}

export function hasCondition(pvc: k8s.V1PersistentVolumeClaim, type: string): boolean {
  return (pvc.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
}

/**
 * Kubernetes Events from the stand-ins, with the reasons and components the real ones use (external-provisioner,
 * external-resizer, kubelet, default-scheduler, cloudnative-pg), so that what a user would see in `kubectl describe` is
 * there too. Recording is best effort: a failed event never fails the caller.
 */
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Clients } from './kube.ts';

export interface EventSource {
  component: string;
  host?: string;
}

/** What an event is about: kind, apiVersion and the object's metadata. */
export interface ObjectRef {
  kind: string;
  apiVersion: string;
  metadata?: k8s.V1ObjectMeta;
}

export const refTo = (kind: string, apiVersion: string, metadata: k8s.V1ObjectMeta | undefined): ObjectRef => ({ kind, apiVersion, metadata });

export function recordEvent(
  clients: Clients, source: EventSource, object: ObjectRef,
  event: { type: 'Normal' | 'Warning'; reason: string; message: string },
): void {
  const namespace = object.metadata?.namespace ?? 'default';
  const name = object.metadata?.name ?? 'unknown';
  const now = new Date();
  const involvedObject: k8s.V1ObjectReference = {
    kind: object.kind, name, namespace: object.metadata?.namespace, uid: object.metadata?.uid,
    apiVersion: object.apiVersion, resourceVersion: object.metadata?.resourceVersion,
  };
  const body: k8s.CoreV1Event = {
    metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
    involvedObject, type: event.type, reason: event.reason, message: event.message,
    source: source.host ? { component: source.component, host: source.host } : { component: source.component },
    firstTimestamp: now, lastTimestamp: now, count: 1, reportingComponent: source.component, reportingInstance: source.host ?? '',
  };
  clients.core.createNamespacedEvent({ namespace, body }).catch(() => undefined);
}

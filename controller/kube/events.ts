/**
 * Kubernetes Events on the objects users look at (the CNPG Cluster). Best effort: a failure to record an event is logged,
 * never fails a reconcile. Repeats of the same event within `aggregateWindowMs` bump the count of the existing Event,
 * as client-go's recorder does, instead of flooding the namespace.
 */
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../shared/log.ts';
import { maxMessageLength, truncate } from '../../shared/text.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string | undefined;
}

export type EventType = 'Normal' | 'Warning';

/**
 * The event reasons of the controller's own. Events also carry the sizing decision's reason (policy/types.ts `Reasons`),
 * the action's kind (`ActionKinds`) and the Valid condition's reason, as they are.
 */
export const EventReasons = {
  ResizeCompleted: 'ResizeCompleted',
  ResizeFailed: 'ResizeFailed',
  VolumeExcluded: 'VolumeExcluded',
  VolumeAboveLimit: 'VolumeAboveLimit',
  VolumeSizeInvalid: 'VolumeSizeInvalid',
  /** A reconcile that failed, or a volume that could not be planned. */
  DynamicStorageError: 'DynamicStorageError',
} as const;

export interface EventSink {
  record(target: EventTarget, type: EventType, reason: string, message: string): Promise<void>;
}

interface Recent {
  name: string;
  count: number;
  firstSeen: Date;
}

export class EventRecorder implements EventSink {
  private readonly api: k8s.CoreV1Api;
  private readonly recent = new Map<string, Recent>();
  private readonly component: string;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly aggregateWindowMs: number;

  constructor(kubeConfig: k8s.KubeConfig, options: { component: string; instance: string; log: Logger; aggregateWindowMs?: number }) {
    this.api = kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.component = options.component;
    this.instance = options.instance;
    this.log = options.log;
    this.aggregateWindowMs = options.aggregateWindowMs ?? 10 * 60_000;
  }

  async record(target: EventTarget, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date();
    const key = [target.namespace, target.kind, target.name, type, reason, message].join('\u0000');
    const seen = this.recent.get(key);
    try {
      if (seen && now.getTime() - seen.firstSeen.getTime() < this.aggregateWindowMs) {
        seen.count += 1;
        await this.api.patchNamespacedEvent(
          { name: seen.name, namespace: target.namespace, body: { count: seen.count, lastTimestamp: now.toISOString() } },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
        return;
      }
      const created = await this.api.createNamespacedEvent({ namespace: target.namespace, body: {
        metadata: { generateName: `${target.name}.`, namespace: target.namespace },
        involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, namespace: target.namespace, uid: target.uid },
        type, reason, message: truncate(message, maxMessageLength),
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.instance,
        firstTimestamp: now, lastTimestamp: now, count: 1,
      } });
      this.recent.set(key, { name: created.metadata.name ?? '', count: 1, firstSeen: now });
      this.prune(now);
    } catch (err) {
      this.recent.delete(key);
      this.log.warn('could not record event', { err, namespace: target.namespace, reason });
    }
  }

  private prune(now: Date): void {
    for (const [key, value] of this.recent) {
      if (now.getTime() - value.firstSeen.getTime() >= this.aggregateWindowMs) this.recent.delete(key);
    }
  }
}

/**
 * The one place that writes to the CloudNativePG Cluster: the `DynamicStorageReady` condition (status subresource, a
 * JSON patch that touches our list element only) and the `dynamicstorage.cnpg.io/status` annotation (a merge patch of
 * that key only). Both only when their content changes; both from the DynamicStorage status the reconcile just wrote.
 *
 * The operator rewrites `status.conditions` as a whole (its CRD keeps the list atomic): a status write of its own that
 * started from a copy without our condition drops it. The next reconcile (the Cluster watch wakes it) writes it again;
 * the annotation is never touched by the operator and always holds the same summary.
 */
import * as k8s from '@kubernetes/client-node';
import { ConflictError, isApiCode } from '../shared/errors.ts';
import { cnpgClusterPlural, cnpgGroup, cnpgVersion } from '../shared/cnpg.ts';
import { annotationPatch, clusterSummary, conditionPatch, type ClusterLike } from './cluster-status.ts';
import type { DynamicStorageStatus } from '../shared/api/dynamicstorage.generated.ts';

export interface ClusterStatusOptions {
  /** Write the condition on `status.conditions` (default true). */
  condition: boolean;
  /** Write the annotation (default true). */
  annotation: boolean;
}

export interface ClusterStatusSink {
  /** Writes what changed; returns what was written. Throws ClusterStatusConflict when the Cluster changed meanwhile. */
  publish(cluster: ClusterLike & { metadata?: { name?: string; namespace?: string; generation?: number } }, dynamicStorage: string, status: DynamicStorageStatus, now: Date): Promise<{ condition: boolean; annotation: boolean }>;
}

/** The Cluster changed between our read and our patch: retried on the next reconcile. */
export class ClusterStatusConflict extends ConflictError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, 'ClusterStatusConflict');
  }
}

export class ClusterStatusWriter implements ClusterStatusSink {
  private readonly api: k8s.CustomObjectsApi;
  private readonly options: ClusterStatusOptions;
  private readonly onWritten: ((cluster: k8s.KubernetesObject) => void) | undefined;

  /** `onWritten` is told of the Cluster as each write returned it (the caches read it back before their watch does). */
  constructor(kubeConfig: k8s.KubeConfig, options: ClusterStatusOptions = { condition: true, annotation: true }, onWritten?: (cluster: k8s.KubernetesObject) => void) {
    this.api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.options = options;
    this.onWritten = onWritten;
  }

  async publish(cluster: ClusterLike & { metadata?: { name?: string; namespace?: string; generation?: number } }, dynamicStorage: string, status: DynamicStorageStatus, now: Date): Promise<{ condition: boolean; annotation: boolean }> {
    const name = cluster.metadata?.name ?? '';
    const namespace = cluster.metadata?.namespace ?? '';
    const base = { group: cnpgGroup, version: cnpgVersion, plural: cnpgClusterPlural, namespace, name };
    const summary = clusterSummary(dynamicStorage, status);
    const written = { condition: false, annotation: false };
    // The condition first: its guard is the resourceVersion just read, which our own annotation write would change.
    let conflict: ClusterStatusConflict | undefined;
    const patch = this.options.condition ? conditionPatch(cluster, summary, cluster.metadata?.generation, now) : undefined;
    if (patch) {
      try {
        this.onWritten?.(await this.api.patchNamespacedCustomObjectStatus({ ...base, body: patch }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch)) as k8s.KubernetesObject);
        written.condition = true;
      } catch (err) {
        // 422: a `test` failed (the Cluster changed since it was read); 409: a conflicting write.
        if (!isApiCode(err, 409, 422)) throw err;
        conflict = new ClusterStatusConflict(`Cluster ${namespace}/${name} changed while its condition was written`, { cause: err });
      }
    }
    const annotation = this.options.annotation ? annotationPatch(cluster, summary) : undefined;
    if (annotation) {
      this.onWritten?.(await this.api.patchNamespacedCustomObject({ ...base, body: annotation }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)) as k8s.KubernetesObject);
      written.annotation = true;
    }
    if (conflict) throw conflict;
    return written;
  }
}

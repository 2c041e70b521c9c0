/**
 * Quota-style rejection of PVC patches, enforced by the real API server: a ResourceQuota on `requests.storage` (or on
 * `<class>.storageclass.storage.k8s.io/requests.storage`). kube-controller-manager's resourcequota controller is not
 * running here, so this stand-in keeps the quota's status (hard and used) the way it would: used is the sum over the
 * namespace's PVCs of max(spec request, status.allocatedResources). The API server's quota admission then refuses a
 * PVC create or resize beyond the limit with 403 `exceeded quota: ...`, exactly as on AKS.
 */
import type * as k8s from '@kubernetes/client-node';
import { formatQuantity, parseQuantity } from '../../shared/quantity.ts';
import { ignoreNotFound, sleep, waitUntil, WorkQueue, type Clients, type InformerHub } from './kube.ts';

export const quotaName = 'cnpg-ds-sim-storage';

export class StorageQuotas {
  private readonly clients: Clients;
  private readonly limits = new Map<string, { resource: string; storageClass?: string }>();
  private readonly queue: WorkQueue;
  private pvcs!: k8s.ObjectCache<k8s.V1PersistentVolumeClaim>;

  constructor(clients: Clients) {
    this.clients = clients;
    this.queue = new WorkQueue({ name: 'quota', sync: (ns) => this.sync(ns) });
  }

  register(hub: InformerHub): void {
    const touch = (pvc: k8s.V1PersistentVolumeClaim): void => {
      const namespace = pvc.metadata?.namespace ?? '';
      if (this.limits.has(namespace)) this.queue.add(namespace);
    };
    this.pvcs = hub.watch<k8s.V1PersistentVolumeClaim>('/api/v1/persistentvolumeclaims',
      () => this.clients.core.listPersistentVolumeClaimForAllNamespaces(), { add: touch, update: touch, delete: touch });
  }

  /**
   * Limits the total storage requested in a namespace (optionally for one StorageClass) and waits until the API server
   * enforces it.
   */
  async limit(namespace: string, hard: string, options: { storageClass?: string } = {}): Promise<void> {
    const resource = options.storageClass ? `${options.storageClass}.storageclass.storage.k8s.io/requests.storage` : 'requests.storage';
    this.limits.set(namespace, { resource, storageClass: options.storageClass });
    await ignoreNotFound(this.clients.core.deleteNamespacedResourceQuota({ name: quotaName, namespace }));
    await this.clients.core.createNamespacedResourceQuota({ namespace, body: { metadata: { name: quotaName, namespace }, spec: { hard: { [resource]: hard } } } });
    await this.sync(namespace);
    await waitUntil(`quota in ${namespace} to have a status`, async () => {
      const quota = await this.clients.core.readNamespacedResourceQuota({ name: quotaName, namespace });
      return quota.status?.hard?.[resource] !== undefined;
    }, 10_000);
    // Quota admission reads quotas from an informer: give it a moment to see the status.
    await sleep(300);
  }

  async remove(namespace: string): Promise<void> {
    this.limits.delete(namespace);
    await ignoreNotFound(this.clients.core.deleteNamespacedResourceQuota({ name: quotaName, namespace }));
  }

  /** The usage the resourcequota controller would compute. */
  used(namespace: string, storageClass?: string): number {
    return this.pvcs.list(namespace)
      .filter((pvc) => !storageClass || pvc.spec?.storageClassName === storageClass)
      .reduce((sum, pvc) => {
        const request = parseQuantity(pvc.spec?.resources?.requests?.storage ?? '0');
        const allocated = parseQuantity(pvc.status?.allocatedResources?.storage ?? '0');
        return sum + Math.max(request, allocated);
      }, 0);
  }

  private async sync(namespace: string): Promise<void> {
    const limit = this.limits.get(namespace);
    if (!limit) return;
    const quota = await ignoreNotFound(this.clients.core.readNamespacedResourceQuota({ name: quotaName, namespace }));
    if (!quota) return;
    const hard = quota.spec?.hard ?? {};
    const used = formatQuantity(this.used(namespace, limit.storageClass));
    if (quota.status?.used?.[limit.resource] === used && JSON.stringify(quota.status.hard) === JSON.stringify(hard)) return;
    await this.clients.core.replaceNamespacedResourceQuotaStatus({
      name: quotaName, namespace, body: { metadata: quota.metadata, spec: quota.spec, status: { hard, used: { [limit.resource]: used } } },
    });
  }

  async stop(): Promise<void> {
    await this.queue.stop();
  }
}

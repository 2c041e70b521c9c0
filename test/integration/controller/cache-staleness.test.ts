/**
 * Reconciles read from informer caches, which lag behind the controller's own writes. A reconcile run right after a
 * PVC patch, before the watch delivered it, must not decide the same growth again (the budget spent twice). Here the
 * caches are frozen after their first list (watches stopped), the worst lag there is, and the volume is nearly full.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { applyCrds } from '../../harness/crds.ts';
import { ClusterCache } from '../../../controller/kube/cache.ts';
import { reuseConnections } from '../../../controller/kube/connections.ts';
import { ReadingsStore } from '../../../controller/readings.ts';
import { Reconciler } from '../../../controller/reconcile.ts';
import { StatusWriter } from '../../../controller/status.ts';
import type { EventSink } from '../../../controller/kube/events.ts';
import { ConflictError } from '../../../shared/errors.ts';
import { silentLogger } from '../../harness/log.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const namespace = 'default';
const ds = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace };
const GiB = 1024 ** 3;

describe('reconciles on lagging caches', function () {
  let plane: ControlPlane;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;
  const caches: ClusterCache[] = [];

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    reuseConnections(plane.kubeConfig);
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    // No kube-controller-manager here: the ServiceAccount admission wants the namespace's default account to exist.
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
    await plane.kubeConfig.makeApiClient(k8s.StorageV1Api).createStorageClass({ body: {
      metadata: { name: 'expandable' }, provisioner: 'example.com/none', allowVolumeExpansion: true,
    } });
  });

  after(async function () {
    this.timeout(60_000);
    for (const cache of caches) await cache.stop();
    await plane.stop();
  });

  /** A one-instance Cluster `name` with its data PVC (1Gi, bound) mounted on node-1, and a DynamicStorage for it. */
  async function cluster(name: string): Promise<void> {
    const created = await custom.createNamespacedCustomObject({
      group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace,
      body: { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name }, spec: { instances: 1, storage: { size: '1Gi' } } },
    }) as k8s.KubernetesObject;
    const owner: k8s.V1OwnerReference = { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name, uid: created.metadata?.uid ?? '', controller: true };
    const instance = `${name}-1`;
    await core.createNamespacedPersistentVolumeClaim({ namespace, body: {
      metadata: { name: instance, labels: { 'cnpg.io/cluster': name, 'cnpg.io/instanceName': instance, 'cnpg.io/pvcRole': 'PG_DATA' }, ownerReferences: [owner] },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'expandable', resources: { requests: { storage: '1Gi' } } },
    } });
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: instance, namespace });
    await core.replaceNamespacedPersistentVolumeClaimStatus({ name: instance, namespace, body: { metadata: pvc.metadata, spec: pvc.spec, status: { phase: 'Bound', capacity: { storage: '1Gi' } } } });
    await core.createNamespacedPod({ namespace, body: {
      metadata: { name: instance, labels: { 'cnpg.io/cluster': name, 'cnpg.io/instanceName': instance }, ownerReferences: [owner] },
      spec: { nodeName: 'node-1', containers: [{ name: 'postgres', image: 'postgres' }], volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: instance } }] },
    } });
    await custom.createNamespacedCustomObject({ ...ds, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
      spec: { cluster: { name }, storage: { request: '1Gi', limit: '10Gi' } },
    } });
  }

  /** The agent of node-1 says the volume is 97% full. */
  function nearlyFull(name: string): ReadingsStore {
    const readings = new ReadingsStore();
    const now = new Date().toISOString();
    const total = 0.97 * GiB;
    readings.update({
      key: `${namespace}/${name}-1`, namespace, cluster: name, instance: `${name}-1`, role: 'data', pvc: `${name}-1`, pv: 'pv', podName: `${name}-1`, podUid: 'u',
      node: 'node-1', path: '/data', status: 'ok', sampledAt: now, changedAt: now,
      usage: { totalBytes: total, usedBytes: 0.97 * total, availableBytes: 0.03 * total, freeBytes: 0.03 * total, percentUsed: 97, inodesTotal: 1000, inodesUsed: 10, inodesFree: 990, inodesPercentUsed: 1 },
    });
    return readings;
  }

  /** A cache that listed once and then hears nothing more: every write of ours is missing from it. */
  async function frozenCache(): Promise<ClusterCache> {
    const cache = new ClusterCache(plane.kubeConfig, namespace);
    caches.push(cache);
    await cache.start(silentLogger);
    await cache.stop();
    return cache;
  }

  function reconcilerOn(state: ClusterCache | undefined, readings: ReadingsStore, recorded: string[]): Reconciler {
    const events: EventSink = { record: (_target, type, reason) => { recorded.push(`${type}/${reason}`); return Promise.resolve(); } };
    return new Reconciler({ kubeConfig: plane.kubeConfig, state, readings, events, status: new StatusWriter(plane.kubeConfig), log: silentLogger, clock: () => new Date() });
  }

  async function actionsOf(name: string): Promise<number> {
    const object = await custom.getNamespacedCustomObject({ ...ds, name }) as DynamicStorage;
    return object.status?.storageSizing?.data?.recentActions?.length ?? 0;
  }

  it('grows once: a second reconcile on the stale cache reads back its own patch and status', async () => {
    await cluster('once');
    const cache = await frozenCache();
    const recorded: string[] = [];
    const reconciler = reconcilerOn(cache, nearlyFull('once'), recorded);
    await reconciler.reconcile(namespace, 'once');
    const grown = (await core.readNamespacedPersistentVolumeClaim({ name: 'once-1', namespace })).spec?.resources?.requests?.storage;
    assert.notEqual(grown, '1Gi', 'the nearly full volume was grown');
    assert.equal(await actionsOf('once'), 1);
    const afterFirst = (await core.readNamespacedPersistentVolumeClaim({ name: 'once-1', namespace })).metadata?.resourceVersion;

    await reconciler.reconcile(namespace, 'once');
    await reconciler.reconcile(namespace, 'once');
    assert.equal(await actionsOf('once'), 1, 'one action in the budget');
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: 'once-1', namespace });
    assert.equal(pvc.spec?.resources?.requests?.storage, grown);
    assert.equal(pvc.metadata?.resourceVersion, afterFirst, 'the PVC was not patched again');
    assert.equal(recorded.filter((e) => e.startsWith('Normal/Emergency') || e.startsWith('Normal/Planned')).length, 1, recorded.join(', '));
  });

  it('without reading back its own writes, the second reconcile would decide on the stale objects (control)', async () => {
    await cluster('control');
    const cache = await frozenCache();
    // The same frozen cache, deaf to what the reconcile wrote.
    const deaf = Object.assign(Object.create(cache) as ClusterCache, { wrote: () => undefined });
    const reconciler = reconcilerOn(deaf, nearlyFull('control'), []);
    await reconciler.reconcile(namespace, 'control');
    assert.equal(await actionsOf('control'), 1);
    // The status write is guarded by the stale resourceVersion: refused, and only that stops a second grow here.
    await assert.rejects(reconciler.reconcile(namespace, 'control'), (err: unknown) => err instanceof ConflictError && err.cause instanceof k8s.ApiException && err.cause.code === 409);
  });
});

import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { ClusterIndex, FreshObjects, olderVersion, slimCluster, slimPod } from '../../../controller/kube/cache.ts';
import { ChangeFilter, clusterFingerprint, podFingerprint, pvcFingerprint, readingChangesDecision } from '../../../controller/triggers.ts';
import type { VolumeReading } from '../../../shared/readings.ts';

function pvc(resourceVersion: string, size: string, annotations: Record<string, string> = {}): k8s.V1PersistentVolumeClaim {
  return {
    metadata: { namespace: 'db', name: 'pg-1', resourceVersion, uid: 'u1', labels: { 'cnpg.io/cluster': 'pg' }, annotations },
    spec: { resources: { requests: { storage: size } }, storageClassName: 'managed-csi' },
    status: { phase: 'Bound', capacity: { storage: '10Gi' } },
  };
}

describe('FreshObjects (reading back our own writes through a lagging cache)', () => {
  it('serves the written PVC while the cache still holds the version before the patch', () => {
    const fresh = new FreshObjects();
    const before = pvc('100', '10Gi');
    const patched = pvc('105', '12Gi', { 'dynamicstorage.cnpg.io/actions': '[...]' });
    fresh.remember('persistentvolumeclaims', patched, '100');
    assert.equal(fresh.pick('persistentvolumeclaims', before, 'db', 'pg-1'), patched, 'stale cache: the written object');
    // Another writer's change that the watch delivers before ours is older than our patch too.
    const intermediate = pvc('103', '10Gi');
    assert.equal(fresh.pick('persistentvolumeclaims', intermediate, 'db', 'pg-1'), patched);
    assert.equal(fresh.size, 1);
  });

  it('gives the cache back its word once it caught up (or went past), and forgets the written copy', () => {
    const fresh = new FreshObjects();
    const patched = pvc('105', '12Gi');
    fresh.remember('persistentvolumeclaims', patched, '100');
    const caughtUp = pvc('105', '12Gi');
    assert.equal(fresh.pick('persistentvolumeclaims', caughtUp, 'db', 'pg-1'), caughtUp);
    assert.equal(fresh.size, 0);
    fresh.remember('persistentvolumeclaims', patched, '100');
    const newer = pvc('110', '12Gi');
    assert.equal(fresh.pick('persistentvolumeclaims', newer, 'db', 'pg-1'), newer);
    fresh.remember('persistentvolumeclaims', patched, '100');
    assert.equal(fresh.pick('persistentvolumeclaims', undefined, 'db', 'pg-1'), undefined, 'deleted since: gone');
    assert.equal(fresh.size, 0);
  });

  it('falls back to the version the write started from when versions are not numbers', () => {
    const fresh = new FreshObjects();
    const patched = pvc('b', '12Gi');
    fresh.remember('persistentvolumeclaims', patched, 'a');
    assert.equal(fresh.pick('persistentvolumeclaims', pvc('a', '10Gi'), 'db', 'pg-1'), patched);
    assert.equal(fresh.pick('persistentvolumeclaims', pvc('c', '12Gi'), 'db', 'pg-1')?.metadata?.resourceVersion, 'c');
  });

  it('stops serving the written copy after its time to live', () => {
    let now = 0;
    const fresh = new FreshObjects({ ttlMs: 1_000, now: () => now });
    fresh.remember('persistentvolumeclaims', pvc('105', '12Gi'), '100');
    now = 1_000;
    assert.equal(fresh.pick('persistentvolumeclaims', pvc('100', '10Gi'), 'db', 'pg-1')?.metadata?.resourceVersion, '100');
  });

  it('compares resource versions as integers only', () => {
    assert.equal(olderVersion('99', '100'), true);
    assert.equal(olderVersion('100', '99'), false);
    assert.equal(olderVersion('x', 'y'), false);
    assert.equal(olderVersion(undefined, '1'), false);
  });
});

describe('what the caches keep', () => {
  it('keeps of a CNPG pod where it runs, the claims it mounts and its phase, and its fingerprint is unchanged', () => {
    const pod: k8s.V1Pod = {
      metadata: { namespace: 'db', name: 'pg-1', uid: 'p1', labels: { 'cnpg.io/cluster': 'pg' }, managedFields: [{ manager: 'kubelet' }] },
      spec: {
        nodeName: 'node-a',
        containers: [{ name: 'postgres', image: 'postgres:15', env: [{ name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' }] }],
        volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: 'pg-1' } }, { name: 'scratch', emptyDir: {} }, { name: 'pg-wal', persistentVolumeClaim: { claimName: 'pg-1-wal' } }],
      },
      status: { phase: 'Running', containerStatuses: [{ name: 'postgres', ready: true, restartCount: 0, image: 'postgres:15', imageID: 'x' }] },
    };
    const fingerprint = podFingerprint(pod);
    slimPod(pod);
    assert.deepEqual(pod.spec, { nodeName: 'node-a', containers: [], volumes: [
      { name: 'pgdata', persistentVolumeClaim: { claimName: 'pg-1' } }, { name: 'pg-wal', persistentVolumeClaim: { claimName: 'pg-1-wal' } },
    ] });
    assert.deepEqual(pod.status, { phase: 'Running' });
    assert.equal(pod.metadata?.managedFields, undefined);
    assert.equal(pod.metadata?.uid, 'p1');
    assert.equal(podFingerprint(pod), fingerprint);
  });

  it('keeps of a Cluster its metadata, the storage part of its spec and every condition', () => {
    const conditions = [{ type: 'Ready', status: 'True' }, { type: 'DynamicStorageReady', status: 'True', reason: 'Balanced' }];
    const cluster = {
      metadata: { namespace: 'db', name: 'pg', uid: 'c1', generation: 3, annotations: { 'dynamicstorage.cnpg.io/status': '{}' } },
      spec: { instances: 3, imageName: 'postgres:15', postgresql: { parameters: { max_connections: '100' } }, storage: { size: '10Gi' }, walStorage: { size: '2Gi' }, tablespaces: [{ name: 'app', storage: { size: '1Gi' } }] },
      status: { conditions, phase: 'Cluster in healthy state', instancesStatus: { healthy: ['pg-1'] }, certificates: { expirations: {} } },
    };
    slimCluster(cluster);
    assert.deepEqual(cluster.spec, { instances: 3, storage: { size: '10Gi' }, walStorage: { size: '2Gi' }, tablespaces: [{ name: 'app', storage: { size: '1Gi' } }] });
    assert.deepEqual(cluster.status, { conditions });
    assert.equal(cluster.metadata.annotations['dynamicstorage.cnpg.io/status'], '{}');
    assert.equal(cluster.metadata.generation, 3);
  });

  it('indexes PVCs and pods by their cluster, and follows a relabel and a delete', () => {
    const index = new ClusterIndex();
    const object = (name: string, cluster: string | undefined, namespace = 'db'): k8s.KubernetesObject => ({ metadata: { namespace, name, labels: cluster === undefined ? {} : { 'cnpg.io/cluster': cluster } } });
    index.upsert(object('pg-1', 'pg'));
    index.upsert(object('pg-2', 'pg'));
    index.upsert(object('other-1', 'other'));
    index.upsert(object('pg-1', 'pg', 'elsewhere'));
    assert.deepEqual([...index.names('db', 'pg')].sort(), ['pg-1', 'pg-2']);
    assert.deepEqual(index.names('elsewhere', 'pg'), ['pg-1']);
    index.upsert(object('pg-2', 'other'));
    assert.deepEqual(index.names('db', 'pg'), ['pg-1']);
    assert.deepEqual([...index.names('db', 'other')].sort(), ['other-1', 'pg-2']);
    index.upsert(object('pg-1', undefined));
    assert.deepEqual(index.names('db', 'pg'), []);
    index.remove(object('other-1', 'other'));
    assert.deepEqual(index.names('db', 'other'), ['pg-2']);
  });
});

describe('triggers', () => {
  it('a PVC event wakes a reconcile when its size, resize progress or metadata changes, not for a resync of the same', () => {
    const filter = new ChangeFilter();
    const base = pvc('1', '10Gi');
    assert.equal(filter.changed('p', pvcFingerprint(base)), true, 'first sight');
    assert.equal(filter.changed('p', pvcFingerprint({ spec: base.spec, status: base.status, metadata: { uid: 'u1', labels: base.metadata?.labels, annotations: {}, resourceVersion: '2', managedFields: [{}] } })), false);
    assert.equal(filter.changed('p', pvcFingerprint(pvc('3', '12Gi'))), true, 'request');
    const resizing = pvc('4', '12Gi');
    resizing.status = { phase: 'Bound', capacity: { storage: '10Gi' }, allocatedResourceStatuses: { storage: 'ControllerResizeInProgress' } };
    assert.equal(filter.changed('p', pvcFingerprint(resizing)), true, 'allocatedResourceStatuses');
    filter.forget('p');
    assert.equal(filter.changed('p', pvcFingerprint(resizing)), true, 'seen again after a delete');
  });

  it('a Cluster event wakes a reconcile for its spec or our summary on it, not for the operator\'s status churn', () => {
    const cluster = (extra: Record<string, unknown>): k8s.KubernetesObject & { spec?: unknown; status?: { conditions?: { type?: string }[] } } => ({
      metadata: { name: 'pg', namespace: 'db', uid: 'c', generation: 1 }, spec: { instances: 3 }, status: { conditions: [{ type: 'Ready' }] }, ...extra,
    });
    const a = clusterFingerprint(cluster({}));
    assert.equal(clusterFingerprint(cluster({ status: { conditions: [{ type: 'Ready', status: 'False' }], phase: 'x' } })), a);
    assert.notEqual(clusterFingerprint(cluster({ spec: { instances: 4 } })), a);
    assert.notEqual(clusterFingerprint(cluster({ status: { conditions: [{ type: 'Ready' }, { type: 'DynamicStorageReady' }] } })), a);
  });

  it('a pod event matters for its node, its end and its claims', () => {
    const pod = (nodeName: string, phase: string): k8s.V1Pod => ({
      metadata: { name: 'pg-1', namespace: 'db', uid: 'p' }, spec: { nodeName, containers: [], volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: 'pg-1' } }] }, status: { phase },
    });
    assert.equal(podFingerprint(pod('n1', 'Running')), podFingerprint(pod('n1', 'Pending')));
    assert.notEqual(podFingerprint(pod('n1', 'Running')), podFingerprint(pod('n2', 'Running')));
    assert.notEqual(podFingerprint(pod('n1', 'Running')), podFingerprint(pod('n1', 'Failed')));
  });

  it('a reading that repeats the previous one changes no decision, unless the previous one is getting old', () => {
    const reading = (sampledAt: string, availableBytes: number): VolumeReading => ({
      key: 'db/pg-1', namespace: 'db', cluster: 'pg', instance: 'pg-1', role: 'data', pvc: 'pg-1', pv: 'pv', podName: 'pg-1', podUid: 'u', node: 'n1',
      path: '/x', status: 'ok', sampledAt, changedAt: sampledAt,
      usage: { totalBytes: 100, usedBytes: 100 - availableBytes, availableBytes, freeBytes: availableBytes, percentUsed: 100 - availableBytes, inodesTotal: 10, inodesUsed: 1, inodesFree: 9, inodesPercentUsed: 10 },
    });
    const first = reading('2026-01-01T00:00:00.000Z', 50);
    assert.equal(readingChangesDecision(undefined, first, 60_000), true);
    assert.equal(readingChangesDecision(first, reading('2026-01-01T00:00:30.000Z', 50), 60_000), false);
    assert.equal(readingChangesDecision(first, reading('2026-01-01T00:00:30.000Z', 49), 60_000), true);
    assert.equal(readingChangesDecision(first, reading('2026-01-01T00:01:00.000Z', 50), 60_000), true, 'refreshed before it goes stale');
  });
});

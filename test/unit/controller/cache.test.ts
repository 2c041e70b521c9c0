import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { FreshObjects, olderVersion } from '../../../controller/kube/cache.ts';
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

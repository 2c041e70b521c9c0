import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { phases, type ClusterSpec } from '../../sim/index.ts';
import { apiMessage, apiStatus, mergePatch, waitUntil } from '../../sim/kube.ts';
import { useSimulation } from './helpers.ts';

const sc = 'managed-csi-mib';
const spec = (instances: number): ClusterSpec => ({
  instances,
  storage: { size: '64Mi', storageClass: sc },
  walStorage: { size: '48Mi', storageClass: sc },
  tablespaces: [
    { name: 'analytics', storage: { size: '32Mi', storageClass: sc } },
    { name: 'Big_Data', storage: { size: '40Mi', storageClass: sc } },
  ],
});

// assert.equal narrows its argument's type (asserts actual is T); these do not, so optional chains stay honest.
const eq = (actual: unknown, expected: unknown, message?: string): void => { assert.equal(actual, expected, message); };
const deq = (actual: unknown, expected: unknown, message?: string): void => { assert.deepEqual(actual, expected, message); };
const labelsOf = (o: k8s.KubernetesObject | undefined): Record<string, string> => o?.metadata?.labels ?? {};
const annotationsOf = (o: k8s.KubernetesObject | undefined): Record<string, string> => o?.metadata?.annotations ?? {};
const requestOf = (pvc: k8s.V1PersistentVolumeClaim | undefined): string | undefined => pvc?.spec?.resources?.requests?.storage;
const capacityOf = (pvc: k8s.V1PersistentVolumeClaim | undefined): string | undefined => pvc?.status?.capacity?.storage;

function assertInstancePods(list: k8s.V1Pod[]): void {
  const pods = new Map(list.map((p) => [p.metadata?.name, p]));
  deq([...pods.keys()].sort(), ['pg-1', 'pg-2']);
  const primary = labelsOf(pods.get('pg-1'));
  eq(primary['cnpg.io/instanceRole'], 'primary');
  eq(primary.role, 'primary');
  eq(primary['cnpg.io/podRole'], 'instance');
  eq(labelsOf(pods.get('pg-2'))['cnpg.io/instanceRole'], 'replica');
  deq((pods.get('pg-1')?.spec?.volumes ?? []).filter((v) => v.persistentVolumeClaim).map((v) => [v.name, v.persistentVolumeClaim?.claimName]), [
    // CNPG's order: data, WAL, then tablespaces sorted by name (Go's byte order: upper case first)
    ['pgdata', 'pg-1'], ['pg-wal', 'pg-1-wal'], ['tbs-big-data', 'pg-1-tbs-big-data'], ['tbs-analytics', 'pg-1-tbs-analytics'],
  ]);
  assert.notEqual(pods.get('pg-1')?.spec?.nodeName, pods.get('pg-2')?.spec?.nodeName, 'preferred anti-affinity spreads instances');
}

const byName = (items: k8s.V1PersistentVolumeClaim[]): Map<string, k8s.V1PersistentVolumeClaim> =>
  new Map(items.map((p) => [p.metadata?.name ?? '', p]));

describe('simulation: CloudNativePG stand-in', function () {
  const t = useSimulation({ nodes: 2 });

  it('creates CNPG names, labels and annotations for a cluster with WAL and two tablespaces', async () => {
    const ns = t.namespace;
    const created = await t.sim.cnpg.createCluster(ns, 'pg', spec(2), { labels: { team: 'payments' } });
    const cluster = await t.sim.cnpg.waitForReady(ns, 'pg');
    const pvcs = byName(t.sim.cnpg.clusterPvcs(ns, 'pg'));
    deq([...pvcs.keys()].sort(), [
      'pg-1', 'pg-1-tbs-analytics', 'pg-1-tbs-big-data', 'pg-1-wal',
      'pg-2', 'pg-2-tbs-analytics', 'pg-2-tbs-big-data', 'pg-2-wal',
    ]);
    const common = { 'cnpg.io/cluster': 'pg', 'app.kubernetes.io/managed-by': 'cloudnative-pg', 'app.kubernetes.io/name': 'postgresql', 'app.kubernetes.io/component': 'database' };
    deq(labelsOf(pvcs.get('pg-2')), { ...common, 'cnpg.io/instanceName': 'pg-2', 'cnpg.io/pvcRole': 'PG_DATA' });
    deq(labelsOf(pvcs.get('pg-1-wal')), { ...common, 'cnpg.io/instanceName': 'pg-1', 'cnpg.io/pvcRole': 'PG_WAL' });
    deq(labelsOf(pvcs.get('pg-1-tbs-big-data')), { ...common, 'cnpg.io/instanceName': 'pg-1', 'cnpg.io/pvcRole': 'PG_TABLESPACE', 'cnpg.io/tablespaceName': 'Big_Data' });
    for (const [name, pvc] of pvcs) {
      const annotations = annotationsOf(pvc);
      eq(annotations['cnpg.io/pvcStatus'], 'ready', name);
      eq(annotations['cnpg.io/nodeSerial'], labelsOf(pvc)['cnpg.io/instanceName']?.split('-')[1], name);
      deq((pvc.metadata?.ownerReferences ?? []).map((o) => [o.kind, o.name, o.uid, o.controller]), [['Cluster', 'pg', created.metadata.uid, true]]);
    }
    eq(requestOf(pvcs.get('pg-1-wal')), '48Mi');
    eq(capacityOf(pvcs.get('pg-2-tbs-big-data')), '40Mi');
    assertInstancePods(t.sim.cnpg.instancePods(ns, 'pg'));
    const status = cluster.status ?? {};
    eq(status.currentPrimary, 'pg-1');
    deq(status.instanceNames, ['pg-1', 'pg-2']);
    eq(status.readyInstances, 2);
    eq(status.phase, phases.healthy);
    eq((status.conditions ?? []).find((c) => c.type === 'Ready')?.status, 'True');
    // every volume is really mounted on the node of its pod
    for (const name of pvcs.keys()) assert.ok(t.sim.volumePath(ns, name)?.includes('/volumes/kubernetes.io~csi/pvc-'), name);
  });

  it('sizes new replicas from spec.storage.size on scale-up, whatever the existing PVCs became', async () => {
    const ns = t.namespace;
    await t.sim.cnpg.createCluster(ns, 'pg', { instances: 1, storage: { size: '64Mi', storageClass: sc }, walStorage: { size: '48Mi', storageClass: sc } });
    await t.sim.cnpg.waitForReady(ns, 'pg');
    // someone (the product) grew pg-1's data volume directly
    await t.sim.clients.core.patchNamespacedPersistentVolumeClaim({ name: 'pg-1', namespace: ns, body: { spec: { resources: { requests: { storage: '96Mi' } } } } }, mergePatch);
    await t.sim.cnpg.scale(ns, 'pg', 3);
    const cluster = await t.sim.cnpg.waitForReady(ns, 'pg');
    deq(cluster.status?.instanceNames, ['pg-1', 'pg-2', 'pg-3']);
    eq(cluster.status?.latestGeneratedNode, 3);
    const pvcs = byName(t.sim.cnpg.clusterPvcs(ns, 'pg'));
    eq(requestOf(pvcs.get('pg-1')), '96Mi', 'CNPG leaves the larger PVC alone');
    for (const name of ['pg-2', 'pg-3']) eq(requestOf(pvcs.get(name)), '64Mi', name);
    for (const name of ['pg-2-wal', 'pg-3-wal']) eq(requestOf(pvcs.get(name)), '48Mi', name);
    eq(annotationsOf(pvcs.get('pg-3'))['cnpg.io/nodeSerial'], '3');

    await t.sim.cnpg.scale(ns, 'pg', 2);
    await waitUntil('pg-3 to be removed with its PVCs', () => !t.sim.cnpg.clusterPvcs(ns, 'pg').some((p) => p.metadata?.name?.startsWith('pg-3')) && !t.sim.cnpg.instancePods(ns, 'pg').some((p) => p.metadata?.name === 'pg-3'));
    await t.sim.cnpg.scale(ns, 'pg', 3);
    const again = await t.sim.cnpg.waitForReady(ns, 'pg');
    deq(again.status?.instanceNames, ['pg-1', 'pg-2', 'pg-4'], 'serials are never reused');
  });

  it('grows smaller PVCs when spec sizes rise, leaves larger ones alone, and refuses to shrink', async () => {
    const ns = t.namespace;
    await t.sim.cnpg.createCluster(ns, 'pg', spec(2));
    await t.sim.cnpg.waitForReady(ns, 'pg');
    await t.sim.clients.core.patchNamespacedPersistentVolumeClaim({ name: 'pg-2', namespace: ns, body: { spec: { resources: { requests: { storage: '128Mi' } } } } }, mergePatch);
    await t.sim.cnpg.setStorageSize(ns, 'pg', 'data', '80Mi');
    await t.sim.cnpg.setStorageSize(ns, 'pg', { tablespace: 'Big_Data' }, '56Mi');
    await waitUntil('pg-1 and the Big_Data tablespaces to reach their new sizes', () => {
      const pvcs = byName(t.sim.cnpg.clusterPvcs(ns, 'pg'));
      return pvcs.get('pg-1')?.status?.capacity?.storage === '80Mi'
        && pvcs.get('pg-1-tbs-big-data')?.status?.capacity?.storage === '56Mi' && pvcs.get('pg-2-tbs-big-data')?.status?.capacity?.storage === '56Mi';
    }, 30_000);
    const pvcs = byName(t.sim.cnpg.clusterPvcs(ns, 'pg'));
    eq(pvcs.get('pg-2')?.spec?.resources?.requests?.storage, '128Mi');
    eq(pvcs.get('pg-1-tbs-analytics')?.spec?.resources?.requests?.storage, '32Mi');
    eq(pvcs.get('pg-1-wal')?.spec?.resources?.requests?.storage, '48Mi');

    // CNPG's webhook: size cannot be decreased (the simulation enforces it with an admission policy)
    const shrink = await waitUntil('the no-shrink policy to be enforced', async () => {
      try {
        await t.sim.cnpg.setStorageSize(ns, 'pg', 'data', '64Mi');
        await t.sim.cnpg.setStorageSize(ns, 'pg', 'data', '80Mi');
        return undefined;
      } catch (err) {
        return err;
      }
    }, 15_000, 250);
    eq(apiStatus(shrink), 422);
    assert.match(apiMessage(shrink), /spec\.storage\.size: Invalid value: "64Mi": can't shrink existing storage from 80Mi to 64Mi/);
  });

  it('moves the primary role on failover and when the primary pod is deleted', async () => {
    const ns = t.namespace;
    await t.sim.cnpg.createCluster(ns, 'pg', { instances: 3, storage: { size: '64Mi', storageClass: sc } });
    await t.sim.cnpg.waitForReady(ns, 'pg');
    const promoted = await t.sim.cnpg.failover(ns, 'pg', 'pg-3');
    eq(promoted, 'pg-3');
    const roles = (): Record<string, string | undefined> => Object.fromEntries(t.sim.cnpg.instancePods(ns, 'pg').map((p) => [p.metadata?.name ?? '', labelsOf(p)['cnpg.io/instanceRole']]));
    await waitUntil('only pg-3 to be primary', () => {
      const r = roles();
      return r['pg-3'] === 'primary' && r['pg-1'] === 'replica' && r['pg-2'] === 'replica';
    });
    const afterPromotion = await t.sim.cnpg.getCluster(ns, 'pg');
    eq(afterPromotion.status?.currentPrimary, 'pg-3');
    eq(afterPromotion.status?.timelineID, 2);

    const oldUid = t.sim.cnpg.instancePods(ns, 'pg').find((p) => p.metadata?.name === 'pg-3')?.metadata?.uid;
    await t.sim.clients.core.deleteNamespacedPod({ name: 'pg-3', namespace: ns });
    const failedOver = await waitUntil('a failover away from the deleted primary', async () => {
      const c = await t.sim.cnpg.getCluster(ns, 'pg');
      return c.status?.currentPrimary !== 'pg-3' ? c : undefined;
    }, 30_000);
    eq(failedOver.status?.currentPrimary, 'pg-1', 'the ready replica with the lowest serial is promoted');
    const healthy = await t.sim.cnpg.waitForReady(ns, 'pg');
    deq(healthy.status?.instanceNames, ['pg-1', 'pg-2', 'pg-3']);
    const recreated = t.sim.cnpg.instancePods(ns, 'pg').find((p) => p.metadata?.name === 'pg-3');
    assert.notEqual(recreated?.metadata?.uid, oldUid, 'pg-3 was recreated on its PVCs');
    eq(recreated?.metadata?.labels?.['cnpg.io/instanceRole'], 'replica');
  });

  it('reports ContinuousArchiving when archiving is configured', async () => {
    const ns = t.namespace;
    await t.sim.cnpg.createCluster(ns, 'pg', {
      instances: 1, storage: { size: '64Mi', storageClass: sc },
      plugins: [{ name: 'barman-cloud.cloudnative-pg.io', isWALArchiver: true, parameters: { barmanObjectName: 'store' } }],
    });
    const ready = await t.sim.cnpg.waitForReady(ns, 'pg');
    const archiving = ready.status?.conditions?.find((c) => c.type === 'ContinuousArchiving');
    eq(archiving?.status, 'True');
    eq(archiving?.reason, 'ContinuousArchivingSuccess');
    t.sim.cnpg.setArchiving(ns, 'pg', false);
    const failing = await waitUntil('ContinuousArchiving to fail', async () => {
      const c = await t.sim.cnpg.getCluster(ns, 'pg');
      const condition = c.status?.conditions?.find((x) => x.type === 'ContinuousArchiving');
      return condition?.status === 'False' ? condition : undefined;
    });
    eq(failing.reason, 'ContinuousArchivingFailing');
  });

  it('honours cnpg.io/reconciliationLoop: disabled', async () => {
    const ns = t.namespace;
    await t.sim.cnpg.createCluster(ns, 'pg', { instances: 1, storage: { size: '64Mi', storageClass: sc } });
    await t.sim.cnpg.waitForReady(ns, 'pg');
    await t.sim.cnpg.patchCluster(ns, 'pg', { metadata: { annotations: { 'cnpg.io/reconciliationLoop': 'disabled' } }, spec: { instances: 2 } });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    deq(t.sim.cnpg.instancePods(ns, 'pg').map((p) => p.metadata?.name), ['pg-1']);
    await t.sim.cnpg.patchCluster(ns, 'pg', { metadata: { annotations: { 'cnpg.io/reconciliationLoop': null } } });
    const ready = await t.sim.cnpg.waitForReady(ns, 'pg');
    deq(ready.status?.instanceNames, ['pg-1', 'pg-2']);
  });

  it('prunes fields the CRD does not declare and applies its defaults, like CNPG', async () => {
    const ns = t.namespace;
    await t.sim.cnpg.createCluster(ns, 'pg', { instances: 1, storage: { size: '64Mi', storageClass: sc } });
    await t.sim.cnpg.patchCluster(ns, 'pg', { spec: { storage: { request: '64Mi', limit: '1Gi' } } });
    const cluster = await t.sim.cnpg.getCluster(ns, 'pg');
    deq(cluster.spec.storage, { size: '64Mi', storageClass: sc, resizeInUseVolumes: true });
  });
});

/**
 * A tenant who may create and edit objects in a database's namespace tries to turn the product against the disks: PVCs
 * that copy CloudNativePG's labels, absurd sizes, a hand-edited status, a re-created DynamicStorage. Each attack runs
 * against the whole product on the local stand-in (real control plane, agents and controller) and must change nothing
 * the policy did not allow.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { eventually } from '../../harness/eventually.ts';
import { startLocalStack, type LocalStack } from '../../stack/index.ts';
import type { DynamicStorage, VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';

const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' };
const closedWindow = { schedule: new Date().getUTCMonth() === 0 && new Date().getUTCDate() === 1 ? '0 3 2 1 *' : '0 3 1 1 *', duration: '1h', timezone: 'UTC' };
const limit = '256Mi';

describe('hostile tenant: PVCs, status and budget', function () {
  let stack: LocalStack;
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;

  before(async function () {
    this.timeout(240_000);
    stack = await startLocalStack({ nodes: 2 });
    custom = stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    core = stack.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
  });

  after(async function () {
    this.timeout(120_000);
    await stack.stop();
  });

  function policy(name: string, emergencyGrow: Record<string, unknown> = {}): object {
    return {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
      spec: {
        cluster: { name },
        storage: {
          request: '64Mi', limit, targetBuffer: 20, maintenanceWindow: closedWindow,
          emergencyGrow: { criticalMinimumFree: '4Mi', ...emergencyGrow }, growth: { minimumStep: '8Mi' },
        },
      },
    };
  }

  async function clusterWithPolicy(name: string, instances: number, emergencyGrow: Record<string, unknown> = {}): Promise<string> {
    const namespace = await stack.sim.createNamespace('hostile');
    await stack.sim.cnpg.createCluster(namespace, name, { instances, storage: { size: '64Mi', storageClass: 'managed-csi-mib' } });
    await stack.sim.cnpg.waitForReady(namespace, name, 90_000);
    await custom.createNamespacedCustomObject({ ...dsApi, namespace, body: policy(name, emergencyGrow) });
    await eventually(async () => { assert.equal((await dataStatus(namespace, name)).state, 'Balanced'); }, { timeoutMs: 30_000 });
    return namespace;
  }

  async function dataStatus(namespace: string, name: string): Promise<VolumeSizingStatus> {
    const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name }) as DynamicStorage;
    const status = object.status?.storageSizing?.data;
    assert.ok(status, 'data status written');
    return status;
  }

  async function requested(namespace: string, pvc: string): Promise<number> {
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: pvc, namespace });
    return parseQuantity(claim.spec?.resources?.requests?.storage ?? '0');
  }

  async function clusterUid(namespace: string, name: string): Promise<string> {
    const cluster = await custom.getNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace, name }) as k8s.KubernetesObject;
    return cluster.metadata?.uid ?? '';
  }

  function forgedPvc(name: string, cluster: string, size: string, owner?: { uid: string }): k8s.V1PersistentVolumeClaim {
    return {
      metadata: {
        name,
        labels: { 'cnpg.io/cluster': cluster, 'cnpg.io/pvcRole': 'PG_DATA', 'cnpg.io/instanceName': name },
        ...(owner ? { ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: cluster, uid: owner.uid, controller: true }] } : {}),
      },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'managed-csi-mib', resources: { requests: { storage: size } } },
    };
  }

  /** Fills pg-1's data volume to 97%, waits for the emergency grow to succeed, returns the size it grew to. */
  async function emergencyGrow(namespace: string, name: string): Promise<number> {
    await stack.sim.workload.fill({ namespace, instance: `${name}-1`, volume: 'data' }, { percent: 97 });
    const status = await eventually(async () => {
      const current = await dataStatus(namespace, name);
      assert.equal(current.lastAction?.result, 'Success', `state ${current.state}: ${current.message ?? ''}`);
      return current;
    }, { timeoutMs: 60_000 });
    return parseQuantity(status.lastAction?.to ?? '0');
  }

  it('ignores a PVC that copies the Cluster\'s labels without being owned by it (64Ti asked for)', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg', 2);
    await core.createNamespacedPersistentVolumeClaim({ namespace, body: forgedPvc('pg-9', 'pg', '64Ti') });
    const grownTo = await emergencyGrow(namespace, 'pg');
    assert.ok(grownTo > 64 * MiB && grownTo <= parseQuantity(limit), `grew within the limit: ${grownTo}`);
    const status = await dataStatus(namespace, 'pg');
    assert.equal(status.effectiveSize, status.lastAction?.to, 'the effective size comes from the Cluster\'s own PVCs');
    assert.equal(await requested(namespace, 'pg-2'), grownTo, 'the replica grew with the volume, not to the forged size');
    assert.equal(await requested(namespace, 'pg-9'), parseQuantity('64Ti'), 'the foreign PVC is left alone');
    assert.ok(!Object.values(status.instances ?? {}).some((i) => i.persistentVolumeClaim === 'pg-9'), 'the foreign PVC is not part of the volume');
  });

  it('reports an owned PVC with an absurd size (9Pi) or one above the limit, and keeps sizing the rest', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg-big', 1);
    const owner = { uid: await clusterUid(namespace, 'pg-big') };
    await core.createNamespacedPersistentVolumeClaim({ namespace, body: forgedPvc('pg-big-8', 'pg-big', '9Pi', owner) });
    await core.createNamespacedPersistentVolumeClaim({ namespace, body: forgedPvc('pg-big-9', 'pg-big', '64Ti', owner) });
    const status = await eventually(async () => {
      const current = await dataStatus(namespace, 'pg-big');
      assert.equal(current.instances?.['pg-big-8']?.diskStatus, 'InvalidSize', JSON.stringify(current.instances));
      assert.equal(current.instances['pg-big-9']?.diskStatus, 'AboveLimit');
      return current;
    }, { timeoutMs: 30_000 });
    assert.equal(status.effectiveSize, '64Mi');
    assert.match(status.message ?? '', /PVC pg-big-9 is left alone: its size 64Ti is above the largest size the policy allows \(256Mi\)/);
    const events = await core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.kind=Cluster,involvedObject.name=pg-big,type=Warning' });
    const messages = events.items.map((e) => `${e.reason ?? ''}: ${e.message ?? ''}`);
    assert.ok(messages.some((m) => m.startsWith('VolumeAboveLimit: ') && m.includes('pg-big-9')), messages.join('\n'));
    assert.ok(messages.some((m) => m.startsWith('VolumeSizeInvalid: ') && m.includes('pg-big-8')), messages.join('\n'));

    const grownTo = await emergencyGrow(namespace, 'pg-big');
    assert.ok(grownTo > 64 * MiB && grownTo <= parseQuantity(limit), `the real volume still grows within the limit: ${grownTo}`);
    assert.equal(await requested(namespace, 'pg-big-9'), parseQuantity('64Ti'), 'the oversized PVC is not touched');
  });

  it('does not let a hand-edited status block growth (future and unparsable actions) or inflate a new replica (forged effectiveSize)', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg-status', 1);
    const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name: 'pg-status' }) as DynamicStorage;
    const data = object.status?.storageSizing?.data;
    assert.ok(data);
    const future = Array.from({ length: 4 }, (_, i) => ({ kind: 'EmergencyGrow' as const, from: '64Mi', to: '80Mi', timestamp: `2099-01-0${i + 1}T00:00:00Z`, result: 'Success' as const }));
    const forged = {
      ...object,
      status: {
        ...object.status,
        storageSizing: { data: { ...data, effectiveSize: '64Ti', recentActions: [{ kind: 'ScheduledGrow' as const, from: 'lots', to: 'more', timestamp: '2026-01-01T00:00:00Z', result: 'Pending' as const }, ...future] } },
      },
    };
    await custom.replaceNamespacedCustomObjectStatus({ ...dsApi, namespace, name: 'pg-status', body: forged });
    // At once, before the next reconcile rewrites the status: a new CNPG-labelled PVC goes through the webhook.
    await core.createNamespacedPersistentVolumeClaim({ namespace, body: forgedPvc('pg-status-7', 'pg-status', '64Mi') });
    const created = await requested(namespace, 'pg-status-7');
    assert.ok(created <= parseQuantity(limit), `the webhook never creates a PVC above the limit (created at ${created})`);
    await core.deleteNamespacedPersistentVolumeClaim({ name: 'pg-status-7', namespace });

    const grownTo = await emergencyGrow(namespace, 'pg-status');
    assert.ok(grownTo > 64 * MiB && grownTo <= parseQuantity(limit), `the emergency grow happened: ${grownTo}`);
    const status = await dataStatus(namespace, 'pg-status');
    assert.equal(status.effectiveSize, status.lastAction?.to);
    assert.ok((status.recentActions ?? []).every((a) => !a.timestamp.startsWith('2099') && a.from !== 'lots'), 'forged actions are dropped');
  });

  it('still grows in an emergency when one part of the policy is invalid (an unknown time zone), and says so', async function () {
    this.timeout(180_000);
    const namespace = await stack.sim.createNamespace('hostile');
    await stack.sim.cnpg.createCluster(namespace, 'pg-zone', { instances: 1, storage: { size: '64Mi', storageClass: 'managed-csi-mib' } });
    await stack.sim.cnpg.waitForReady(namespace, 'pg-zone', 90_000);
    const body = policy('pg-zone') as { spec: { storage: { maintenanceWindow: Record<string, string> } } };
    body.spec.storage.maintenanceWindow = { ...closedWindow, timezone: 'Mars/Olympus_Mons' };
    await custom.createNamespacedCustomObject({ ...dsApi, namespace, body });
    const grownTo = await emergencyGrow(namespace, 'pg-zone');
    assert.ok(grownTo > 64 * MiB && grownTo <= parseQuantity(limit), `the emergency grow happened: ${grownTo}`);
    const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name: 'pg-zone' }) as DynamicStorage;
    const valid = object.status?.conditions?.find((c) => c.type === 'Valid');
    assert.equal(valid?.status, 'False');
    assert.equal(valid.reason, 'InvalidTimeZone');
    const events = await core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=pg-zone,reason=InvalidTimeZone' });
    assert.equal(events.items[0]?.type, 'Warning');
  });

  it('keeps counting the budget when the DynamicStorage is deleted and created again', async function () {
    this.timeout(240_000);
    const namespace = await clusterWithPolicy('pg-budget', 1, { maxActionsPerDay: 1, reservedActionsForEmergency: 1 });
    const first = await emergencyGrow(namespace, 'pg-budget');

    await custom.deleteNamespacedCustomObject({ ...dsApi, namespace, name: 'pg-budget' });
    await eventually(async () => {
      await assert.rejects(custom.getNamespacedCustomObject({ ...dsApi, namespace, name: 'pg-budget' }));
    }, { timeoutMs: 15_000 });
    await custom.createNamespacedCustomObject({ ...dsApi, namespace, body: policy('pg-budget', { maxActionsPerDay: 1, reservedActionsForEmergency: 1 }) });
    await stack.sim.workload.fill({ namespace, instance: 'pg-budget-1', volume: 'data' }, { percent: 97 });
    const status = await eventually(async () => {
      const current = await dataStatus(namespace, 'pg-budget');
      assert.equal(current.reason, 'EmergencyBudgetExhausted', `${current.state}: ${current.message ?? ''}`);
      return current;
    }, { timeoutMs: 60_000 });
    assert.equal(status.budget?.actionsLast24h, 1, 'the earlier action still counts');
    assert.equal(await requested(namespace, 'pg-budget-1'), first, 'no second grow');
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'pg-budget-1', namespace });
    assert.ok(claim.metadata?.annotations?.['dynamicstorage.cnpg.io/actions'], 'the action is recorded on the PVC');
  });

  it('does not let a patch the API server rejects (a ResourceQuota) spend the emergency reserve', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg-quota', 1, { maxActionsPerDay: 1, reservedActionsForEmergency: 1 });
    await stack.sim.quota.limit(namespace, '70Mi');
    try {
      await stack.sim.workload.fill({ namespace, instance: 'pg-quota-1', volume: 'data' }, { percent: 97 });
      const status = await eventually(async () => {
        const current = await dataStatus(namespace, 'pg-quota');
        assert.equal(current.lastAction?.result, 'Rejected', `${current.state}/${current.reason}: ${current.message ?? ''}`);
        assert.equal(current.reason, 'EmergencyResizeBlocked');
        return current;
      }, { timeoutMs: 60_000 });
      assert.match(status.lastAction?.message ?? '', /exceeded quota/);
      assert.deepEqual([status.budget?.actionsLast24h, status.budget?.availableForEmergency], [0, 1], 'the reserve is intact');
      assert.match(status.message ?? '', /was rejected; next attempt at/);
      assert.equal(await requested(namespace, 'pg-quota-1'), 64 * MiB, 'nothing resized');
    } finally {
      await stack.sim.quota.remove(namespace);
    }
  });
});

/**
 * The product end to end on the local stand-in: real agents probe real tmpfs volumes, the controller decides and patches
 * PVCs, the CSI stand-in expands them, and the status, events and metrics tell the story.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { eventually } from '../../harness/eventually.ts';
import { startLocalStack, type LocalStack } from '../../stack/index.ts';
import type { DynamicStorage, VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';

const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' };
/** A window that is never open during the test (1 January, 03:00 UTC, or today's date if that is 1 January). */
const closedWindow = { schedule: new Date().getUTCMonth() === 0 && new Date().getUTCDate() === 1 ? '0 3 2 1 *' : '0 3 1 1 *', duration: '1h', timezone: 'UTC' };

describe('dynamic storage end to end', function () {
  let stack: LocalStack;
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;

  before(async function () {
    this.timeout(240_000);
    const started = Date.now();
    stack = await startLocalStack({ nodes: 2 });
    console.log(`      local stack up in ${Date.now() - started} ms`);
    custom = stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    core = stack.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
  });

  after(async function () {
    this.timeout(120_000);
    const stopping = Date.now();
    await stack.stop();
    console.log(`      local stack down in ${Date.now() - stopping} ms`);
  });

  async function clusterWithPolicy(name: string, instances: number): Promise<string> {
    const namespace = await stack.sim.createNamespace('e2e');
    await stack.sim.cnpg.createCluster(namespace, name, { instances, storage: { size: '64Mi', storageClass: 'managed-csi-mib' } });
    await stack.sim.cnpg.waitForReady(namespace, name, 90_000);
    await custom.createNamespacedCustomObject({ ...dsApi, namespace, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
      spec: {
        cluster: { name },
        storage: {
          request: '64Mi', limit: '256Mi', targetBuffer: 20, maintenanceWindow: closedWindow,
          emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' },
        },
      },
    } });
    return namespace;
  }

  async function dataStatus(namespace: string, name: string): Promise<VolumeSizingStatus> {
    const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name }) as DynamicStorage;
    const status = object.status?.storageSizing?.data;
    assert.ok(status, 'data status written');
    return status;
  }

  async function pvcSizes(namespace: string, cluster: string): Promise<{ requested: number; capacity: number }[]> {
    const list = await core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_DATA` });
    return list.items.map((p) => ({
      requested: parseQuantity(p.spec?.resources?.requests?.storage ?? '0'),
      capacity: parseQuantity(p.status?.capacity?.storage ?? '0'),
    }));
  }

  it('grows every data volume at once when one instance nears full, outside the maintenance window, losing nothing', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg', 2);
    const target = { namespace, instance: 'pg-1', volume: 'data' as const };
    await eventually(async () => { assert.equal((await dataStatus(namespace, 'pg')).state, 'Balanced'); }, { timeoutMs: 30_000 });
    const sentinel = await stack.sim.workload.writeSentinel(target);
    assert.ok(sentinel);

    const filledAt = Date.now();
    await stack.sim.workload.fill(target, { percent: 97 });
    const patchedAfterMs = await eventually(async () => {
      const sizes = await pvcSizes(namespace, 'pg');
      assert.ok(sizes.every((s) => s.requested > 64 * MiB), 'every data PVC patched');
      return Date.now() - filledAt;
    }, { timeoutMs: 30_000, intervalMs: 50 });
    console.log(`      fill to 97% -> both PVCs patched in ${patchedAfterMs} ms`);

    const status = await eventually(async () => {
      const current = await dataStatus(namespace, 'pg');
      assert.equal(current.lastAction?.result, 'Success');
      return current;
    }, { timeoutMs: 60_000 });
    assert.equal(status.lastAction?.kind, 'EmergencyGrow');
    assert.equal(status.lastAction.from, '64Mi');
    const grownTo = parseQuantity(status.lastAction.to ?? '0');
    assert.ok(grownTo >= 80 * MiB && grownTo <= 256 * MiB, `grew within [request, limit]: ${status.lastAction.to}`);
    assert.equal(status.effectiveSize, status.lastAction.to);
    assert.deepEqual(status.budget?.actionsLast24h, 1);
    const sizes = await pvcSizes(namespace, 'pg');
    assert.ok(sizes.every((s) => s.capacity === grownTo && s.requested === grownTo), 'all PVCs of the volume have the same size');
    const usage = await stack.sim.workload.usage(target);
    assert.ok(usage.sizeBytes > 64 * MiB, `the filesystem grew online to ${usage.sizeBytes}`);
    assert.deepEqual((await stack.sim.workload.verifySentinel(target)).ok, true, 'no data lost');

    const events = await core.listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.kind=Cluster,involvedObject.name=pg' });
    const reasons = events.items.map((e) => e.reason);
    assert.ok(reasons.includes('EmergencyGrow'), `EmergencyGrow event on the Cluster (${reasons.join(', ')})`);
    assert.ok(reasons.includes('ResizeCompleted'), `ResizeCompleted event on the Cluster (${reasons.join(', ')})`);

    const address = stack.controller.address;
    assert.ok(address);
    const metrics = await (await fetch(`http://${address.host}:${address.port}/metrics`, { headers: { authorization: `Bearer ${await stack.metricsToken()}` } })).text();
    assert.match(metrics, new RegExp(`cnpg_dynamic_storage_effective_size_bytes\\{namespace="${namespace}",cluster="pg",volume_type="data",tablespace=""\\} ${grownTo}\\n`));
    assert.match(metrics, new RegExp(`cnpg_dynamic_storage_budget_remaining\\{namespace="${namespace}",cluster="pg",volume_type="data",tablespace="",budget="emergency"\\} 3\\n`));
  });

  it('waits for the maintenance window when free space is below the buffer but not critical', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg-pending', 1);
    const target = { namespace, instance: 'pg-pending-1', volume: 'data' as const };
    await eventually(async () => { assert.equal((await dataStatus(namespace, 'pg-pending')).state, 'Balanced'); }, { timeoutMs: 30_000 });
    await stack.sim.workload.fill(target, { percent: 92 });
    const status = await eventually(async () => {
      const current = await dataStatus(namespace, 'pg-pending');
      assert.equal(current.state, 'PendingGrowth');
      return current;
    }, { timeoutMs: 30_000 });
    assert.equal(status.reason, 'OutsideMaintenanceWindow');
    assert.match(status.message ?? '', /waits for the maintenance window \(0 3 [12] 1 \* UTC for 1h\)/);
    assert.ok(status.nextMaintenanceWindow, 'the next window is reported');
    assert.equal(status.lastAction, undefined);
    assert.ok((await pvcSizes(namespace, 'pg-pending')).every((s) => s.requested === 64 * MiB), 'nothing resized');
  });

  it('creates a new replica at the grown size, not at the Cluster\'s spec.storage.size', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg-scale', 1);
    await eventually(async () => { assert.equal((await dataStatus(namespace, 'pg-scale')).state, 'Balanced'); }, { timeoutMs: 30_000 });
    await stack.sim.workload.fill({ namespace, instance: 'pg-scale-1', volume: 'data' }, { percent: 97 });
    const grown = await eventually(async () => {
      const current = await dataStatus(namespace, 'pg-scale');
      assert.equal(current.lastAction?.result, 'Success');
      return current.effectiveSize ?? '';
    }, { timeoutMs: 60_000 });
    await stack.sim.cnpg.scale(namespace, 'pg-scale', 2);
    const claim = await eventually(() => core.readNamespacedPersistentVolumeClaim({ name: 'pg-scale-2', namespace }), { timeoutMs: 30_000 });
    assert.equal(claim.spec?.resources?.requests?.storage, grown, 'created at the effective size');
    assert.equal(claim.metadata?.annotations?.['dynamicstorage.cnpg.io/requested-size'], '64Mi', 'what CloudNativePG asked for is kept');
    await stack.sim.cnpg.waitForReady(namespace, 'pg-scale', 90_000);
    const bound = await core.readNamespacedPersistentVolumeClaim({ name: 'pg-scale-2', namespace });
    assert.equal(bound.status?.capacity?.storage, grown, 'provisioned at the effective size');
    await eventually(async () => {
      const current = await dataStatus(namespace, 'pg-scale');
      assert.equal(current.state, 'Balanced');
      assert.equal(current.recentActions?.length, 1, 'no resize was needed for the new replica');
    }, { timeoutMs: 30_000 });
  });
});

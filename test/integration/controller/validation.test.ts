/**
 * What CEL cannot check is checked by the controller: an invalid cron schedule or an unknown time zone ends as
 * Valid=False with the exact message and a Warning event on the Cluster, and nothing is resized under it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { applyCrds } from '../../harness/crds.ts';
import { eventually } from '../../harness/eventually.ts';
import { startController, type RunningController } from '../../../controller/controller.ts';
import { silentLogger } from '../../harness/log.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ds = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace: 'default' };

describe('controller validation of what CEL cannot check', function () {
  let plane: ControlPlane;
  let controller: RunningController;
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    for (const name of ['pg', 'pg-zone', 'pg-last']) {
      await custom.createNamespacedCustomObject({
        group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace: 'default',
        body: { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name }, spec: { instances: 1, storage: { size: '2Gi' } } },
      });
    }
    controller = await startController(plane.kubeConfig, {
      identity: 'test', leaderElection: { enabled: false, namespace: 'default', name: 'unused', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      watchNamespace: '', workers: 1, resyncMs: 30_000, busyRequeueMs: 500, readingIntervalMs: 5_000,
      agents: { namespace: 'default', labelSelector: 'app=none', port: 1, scheme: 'http', token: () => '' },
    }, silentLogger);
  });

  after(async function () {
    this.timeout(60_000);
    await controller.stop();
    await plane.stop();
  });

  async function apply(name: string, maintenanceWindow: Record<string, string>, cluster = 'pg'): Promise<void> {
    const body = {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
      spec: { cluster: { name: cluster }, storage: { request: '2Gi', limit: '10Gi', maintenanceWindow } },
    };
    try {
      const existing = await custom.getNamespacedCustomObject({ ...ds, name }) as DynamicStorage;
      await custom.replaceNamespacedCustomObject({ ...ds, name, body: { ...body, metadata: { name, resourceVersion: existing.metadata?.resourceVersion } } });
    } catch (err) {
      if (!(err instanceof k8s.ApiException) || err.code !== 404) throw err;
      await custom.createNamespacedCustomObject({ ...ds, body });
    }
  }

  async function validCondition(name: string, generation?: number): Promise<{ status: string; reason: string; message: string }> {
    return eventually(async () => {
      const object = await custom.getNamespacedCustomObject({ ...ds, name }) as DynamicStorage;
      const condition = object.status?.conditions?.find((c) => c.type === 'Valid');
      assert.ok(condition, 'Valid condition written');
      if (generation !== undefined) assert.equal(condition.observedGeneration, generation);
      return condition;
    }, { timeoutMs: 15_000 });
  }

  async function warningEvents(reason: string): Promise<k8s.CoreV1Event[]> {
    const events = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=pg,reason=${reason}` });
    return events.items;
  }

  it('reports an invalid cron schedule as Valid=False with the message, and a Warning event on the Cluster', async () => {
    await apply('bad-cron', { schedule: '0 25 * * *' });
    const condition = await validCondition('bad-cron');
    assert.equal(condition.status, 'False');
    assert.equal(condition.reason, 'InvalidSchedule');
    assert.equal(condition.message, 'spec.storage.maintenanceWindow.schedule: Invalid value: "0 25 * * *": Constraint error, got value 25 expected range 0-23');
    const events = await eventually(async () => {
      const found = await warningEvents('InvalidSchedule');
      assert.equal(found.length, 1);
      return found;
    });
    const [event] = events;
    assert.ok(event);
    assert.equal(event.type, 'Warning');
    assert.equal(event.involvedObject.kind, 'Cluster');
    assert.equal(event.message, `DynamicStorage bad-cron: ${condition.message}`);
  });

  it('reports an unknown time zone as Valid=False with the message', async () => {
    await apply('bad-zone', { timezone: 'Mars/Olympus_Mons' }, 'pg-zone');
    const condition = await validCondition('bad-zone');
    assert.equal(condition.status, 'False');
    assert.equal(condition.reason, 'InvalidTimeZone');
    assert.equal(condition.message, 'spec.storage.maintenanceWindow.timezone: Invalid value: "Mars/Olympus_Mons" is not an IANA time zone (examples: UTC, Europe/Berlin, America/New_York)');
  });

  it('turns Valid=True once the policy is fixed, and keeps looking after the volumes while only the window is invalid', async () => {
    const before = await eventually(async () => {
      const object = await custom.getNamespacedCustomObject({ ...ds, name: 'bad-zone' }) as DynamicStorage;
      assert.ok(object.status?.storageSizing?.data, 'the volume is still sized (in emergencies only) under an invalid window');
      return object;
    }, { timeoutMs: 15_000 });
    assert.equal(before.status?.storageSizing?.data?.reason, 'NoVolumes');
    await apply('bad-zone', { timezone: 'Europe/Berlin' }, 'pg-zone');
    const generation = (await custom.getNamespacedCustomObject({ ...ds, name: 'bad-zone' }) as DynamicStorage).metadata?.generation;
    const condition = await validCondition('bad-zone', generation);
    assert.equal(condition.status, 'True');
    assert.equal(condition.reason, 'Valid');
  });

  it('remembers the last valid policy in status and uses its window while the current one is invalid; says so in a metric', async () => {
    await apply('last', { schedule: '0 3 * * *', timezone: 'UTC' }, 'pg-last');
    assert.equal((await validCondition('last', 1)).status, 'True');
    const remembered = await eventually(async () => {
      const object = await custom.getNamespacedCustomObject({ ...ds, name: 'last' }) as DynamicStorage;
      assert.equal(object.status?.lastValidPolicy?.generation, 1);
      assert.equal(object.status.protection, 'Full');
      return object.status.lastValidPolicy;
    }, { timeoutMs: 15_000 });
    assert.deepEqual((remembered.spec.storage as { maintenanceWindow?: unknown }).maintenanceWindow, { schedule: '0 3 * * *', timezone: 'UTC', duration: '2h' });
    assert.match(await controller.metrics.expose(), /^cnpg_dynamic_storage_policy_valid\{namespace="default",cluster="pg-last",dynamicstorage="last"\} 1$/m);

    await apply('last', { schedule: '0 3 * *', timezone: 'UTC' }, 'pg-last');
    const condition = await validCondition('last', 2);
    assert.equal(condition.status, 'False');
    assert.equal(condition.reason, 'InvalidSchedule');
    const object = await eventually(async () => {
      const current = await custom.getNamespacedCustomObject({ ...ds, name: 'last' }) as DynamicStorage;
      assert.match(current.status?.storageSizing?.data?.message ?? '', /the window of the last valid policy \(generation 1\) is used/);
      return current;
    }, { timeoutMs: 15_000 });
    assert.equal(object.status?.protection, 'Partial', 'partly invalid: the volumes are still sized');
    assert.equal(object.status.lastValidPolicy?.generation, 1, 'the last valid policy is kept');
    assert.equal(object.status.lastValidPolicy.observedAt, remembered.observedAt);
    const metrics = await controller.metrics.expose();
    assert.match(metrics, /^cnpg_dynamic_storage_policy_valid\{namespace="default",cluster="pg-last",dynamicstorage="last"\} 0$/m);
    assert.match(metrics, /^cnpg_dynamic_storage_policy_protection\{namespace="default",cluster="pg-last",dynamicstorage="last",protection="Partial"\} 1$/m);
    await eventually(async () => {
      const events = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=pg-last,reason=InvalidSchedule' });
      assert.equal(events.items.length, 1, 'a Warning on the Cluster');
    });
  });

  it('refuses a second DynamicStorage for a Cluster that already has one', async () => {
    await apply('second', {}, 'pg-zone');
    const condition = await validCondition('second');
    assert.equal(condition.status, 'False');
    assert.equal(condition.reason, 'ClusterAlreadyManaged');
    assert.equal(condition.message, 'spec.cluster.name: Duplicate value: "pg-zone": the Cluster is already managed by DynamicStorage "bad-zone"; only one DynamicStorage may manage a Cluster');
    const first = await validCondition('bad-zone');
    assert.equal(first.status, 'True', 'the first one keeps the Cluster');
  });
});

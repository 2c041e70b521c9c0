/**
 * Resizes that fail: the storage refuses the size (infeasible), a ResourceQuota rejects the patch, the provider cannot
 * grow an attached disk past a boundary. The controller says so in the status and with a Warning, records the action's
 * outcome, and does not patch again and again.
 */
import assert from 'node:assert/strict';
import { MiB, TiB } from '../../shared/quantity.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  afterScenario, closedWindow, clusterEvents, clusterWithPolicy, instanceTarget, policy, pvcSizes, sleep, storageClass, useStack, volumeStatus,
  waitForActions, waitForEvent, waitForState, type E2E, type ScenarioCluster,
} from '../support.ts';

/** Every PVC of the scenario's namespace. */
function inNamespace(c: ScenarioCluster): RegExp {
  return new RegExp(`^${c.namespace}/`);
}

async function assertNoFurtherPatches(e2e: E2E, c: ScenarioCluster, waitMs: number): Promise<void> {
  const before = await pvcSizes(e2e, c);
  const actions = (await volumeStatus(e2e, c)).recentActions?.length;
  await sleep(waitMs);
  assert.deepEqual(await pvcSizes(e2e, c), before, 'not patched again');
  assert.equal((await volumeStatus(e2e, c)).recentActions?.length, actions, 'no further action');
}

describe('e2e: resize faults', function () {
  // An infeasible size is tried again by the CSI stand-in after 2 s (external-resizer's slow set is 30 s+).
  const e2e = useStack({ nodes: 2, sim: { csi: { infeasibleRetryMs: 2_000 } } });

  it('infeasible resize: Resizing/ResizeInfeasible, action Failed, a Warning, no repeated patching', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2 });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const fault = e2e().stack.sim.csi.injectFault({ kind: 'controllerInfeasible', pvc: inNamespace(c) });
    afterScenario(() => { fault.clear(); });

    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 92 });
    const status = await waitForState(e2e(), c, 'Resizing', { reason: 'ResizeInfeasible' });
    assert.match(status.message ?? '', /infeasible/);
    const failed = await waitForActions(e2e(), c, 1, { result: 'Failed' });
    assert.equal(failed.lastAction?.kind, 'ScheduledGrow');
    assert.equal(failed.budget?.actionsLast24h, 1, 'the attempt counts');
    const event = await waitForEvent(e2e(), c, 'ResizeFailed', 'Warning');
    assert.match(event.message, /infeasible/);
    await assertNoFurtherPatches(e2e(), c, 3_000);

    // Critical now: still nothing is patched, the state says why.
    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 97 });
    const blocked = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyResizeBlocked' });
    assert.match(blocked.message ?? '', /not patching again because/);
    await assertNoFurtherPatches(e2e(), c, 2_000);
    assert.ok(Object.values(scenario.recorder.changes()).every((n) => n === 1), `each PVC patched once: ${JSON.stringify(scenario.recorder.changes())}`);

    // The storage accepts the size again (a person fixed it): the pending expansion completes.
    fault.clear();
    await assertInvariants(e2e(), c, scenario);
  });

  it('quota rejects the patch: ResizeFailed event, action Rejected, not counted in the budget', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage: policy({ maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await e2e().stack.sim.quota.limit(c.namespace, '70Mi');
    afterScenario(() => e2e().stack.sim.quota.remove(c.namespace));

    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 97 });
    const failed = await waitForActions(e2e(), c, 1, { result: 'Rejected' });
    assert.equal(failed.lastAction?.kind, 'EmergencyGrow');
    assert.match(failed.lastAction.message ?? '', /exceeded quota/);
    assert.deepEqual([failed.budget?.actionsLast24h, failed.budget?.availableForEmergency], [0, 4], 'the rejected attempt does not count');
    const event = await waitForEvent(e2e(), c, 'ResizeFailed', 'Warning');
    assert.match(event.message, /exceeded quota/);
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === 64 * MiB), 'nothing resized');
    // Still critical, but the same patch would be rejected again: it waits (5 minutes, doubling; at most 6 a day).
    const blocked = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyResizeBlocked' });
    assert.match(blocked.message ?? '', /was rejected; next attempt at/);
    await assertNoFurtherPatches(e2e(), c, 3_000);

    await e2e().stack.sim.quota.remove(c.namespace);
    await assertInvariants(e2e(), c, scenario);
  });

  it('a provider growth boundary below the target: the resize reports the provider error and is not repeated', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2 });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    // The stand-in refuses to grow attached disks of this class past 70Mi (as Azure does at 4 TiB).
    e2e().stack.sim.csi.setGrowthBoundary(70 * MiB, storageClass);
    afterScenario(() => { e2e().stack.sim.csi.setGrowthBoundary(undefined, storageClass); });

    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 92 });
    const status = await waitForState(e2e(), c, 'Resizing', { reason: 'ResizeFailed' });
    assert.match(status.message ?? '', /OperationNotAllowed/);
    await assertNoFurtherPatches(e2e(), c, 3_000);
    assert.ok(Object.values(scenario.recorder.changes()).every((n) => n === 1), `each PVC patched once: ${JSON.stringify(scenario.recorder.changes())}`);

    e2e().stack.sim.csi.setGrowthBoundary(undefined, storageClass);
    await waitForActions(e2e(), c, 1, { result: 'Success' });
    await assertInvariants(e2e(), c, scenario);
  });

  it('at Azure\'s 4 TiB online-growth boundary: no patch, EmergencyAtLimit with the provider\'s reason', async function () {
    // A 4Ti disk on the GiB class (a tmpfs only uses memory for what is written). criticalMinimumFree above the disk
    // size makes it an emergency without writing terabytes.
    const storage = { request: '4Ti', limit: '8Ti', maintenanceWindow: closedWindow(), emergencyGrow: { criticalMinimumFree: '5Ti' } };
    const namespace = await e2e().stack.sim.createNamespace('e2e');
    await e2e().stack.sim.cnpg.createCluster(namespace, 'pg', { instances: 1, storage: { size: '4Ti', storageClass: 'managed-csi' } });
    await e2e().stack.sim.cnpg.waitForReady(namespace, 'pg', 120_000);
    const c = { namespace, name: 'pg' };
    await e2e().custom.createNamespacedCustomObject({ group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' }, spec: { cluster: { name: 'pg' }, storage },
    } });
    const scenario = await beginScenario(e2e(), c);

    const status = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyAtLimit' });
    assert.match(status.message ?? '', /the largest size the provider can grow this disk to while attached/);
    await waitForEvent(e2e(), c, 'EmergencyAtLimit', 'Warning');
    await assertNoFurtherPatches(e2e(), c, 2_000);
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === 4 * TiB));
    assert.equal((await clusterEvents(e2e(), c)).filter((e) => e.reason === 'EmergencyGrow').length, 0);
    await assertInvariants(e2e(), c, scenario);
  });
});

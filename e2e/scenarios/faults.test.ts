/**
 * Resizes that fail: the storage refuses the size (infeasible), a ResourceQuota rejects the patch, the provider cannot
 * grow an attached disk past a boundary. The controller says so in the status and with a Warning, records the action's
 * outcome, and does not patch again and again.
 */
import assert from 'node:assert/strict';
import { TiB } from '../../shared/quantity.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  afterScenario, closedWindow, clusterEvents, clusterWithPolicy, instanceTarget, need, policy, pvcSizes, quiet, u, ub, useTarget, volumeStatus,
  waitForActions, waitForEvent, waitForState, type E2E, type ScenarioCluster,
} from '../support.ts';

/** Watches for `seconds` (scaled to the target) that neither the PVCs nor the recorded actions change. */
async function assertNoFurtherPatches(e2e: E2E, c: ScenarioCluster, seconds: number): Promise<void> {
  const before = await pvcSizes(e2e, c);
  const actions = (await volumeStatus(e2e, c)).recentActions?.length;
  await quiet(e2e, seconds);
  assert.deepEqual(await pvcSizes(e2e, c), before, 'not patched again');
  assert.equal((await volumeStatus(e2e, c)).recentActions?.length, actions, 'no further action');
}

describe('e2e: resize faults', function () {
  // An infeasible size is tried again by the CSI stand-in after 2 s (external-resizer's slow set is 30 s+).
  const e2e = useTarget({ nodes: 2, infeasibleRetryMs: 2_000 });

  it('infeasible resize: Resizing/ResizeInfeasible, action Failed, a Warning, no repeated patching', async function () {
    const infeasible = need(this, e2e(), e2e().faults.infeasible, 'an infeasible resize');
    const c = await clusterWithPolicy(e2e(), { instances: 2 });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const clearFault = await infeasible(c.namespace);
    afterScenario(clearFault);

    // 90%: past the buffer, clear of the critical threshold and of the critical minimum free space (4 units) on every
    // target, including a real instance whose filesystem is a few percent smaller than its disk.
    await e2e().fill(instanceTarget(c, 1), 90);
    const status = await waitForState(e2e(), c, 'Resizing', { reason: 'ResizeInfeasible' });
    assert.match(status.message ?? '', /infeasible/);
    const failed = await waitForActions(e2e(), c, 1, { result: 'Failed' });
    assert.equal(failed.lastAction?.kind, 'ScheduledGrow');
    assert.equal(failed.budget?.actionsLast24h, 1, 'the attempt counts');
    const event = await waitForEvent(e2e(), c, 'ResizeFailed', 'Warning');
    assert.match(event.message, /infeasible/);
    await assertNoFurtherPatches(e2e(), c, 3);

    // Critical now: still nothing is patched, the state says why.
    await e2e().fill(instanceTarget(c, 1), 97);
    const blocked = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyResizeBlocked' });
    assert.match(blocked.message ?? '', /not patching again because/);
    await assertNoFurtherPatches(e2e(), c, 2);
    const changes = scenario.recorder.changes();
    assert.ok((await pvcSizes(e2e(), c)).every((p) => changes[p.name] === 1), `each data PVC patched once: ${JSON.stringify(changes)}`);

    // The storage accepts the size again (a person fixed it): the pending expansion completes.
    await clearFault();
    await assertInvariants(e2e(), c, scenario);
  });

  it('quota rejects the patch: ResizeFailed event, action Rejected, not counted in the budget', async function () {
    const quota = need(this, e2e(), e2e().faults.quota, 'a ResourceQuota on requests.storage');
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const removeQuota = await quota(c.namespace, u(e2e(), 70));
    afterScenario(removeQuota);

    await e2e().fill(instanceTarget(c, 1), 97);
    const failed = await waitForActions(e2e(), c, 1, { result: 'Rejected' });
    assert.equal(failed.lastAction?.kind, 'EmergencyGrow');
    assert.match(failed.lastAction.message ?? '', /exceeded quota/);
    assert.deepEqual([failed.budget?.actionsLast24h, failed.budget?.availableForEmergency], [0, 4], 'the rejected attempt does not count');
    const event = await waitForEvent(e2e(), c, 'ResizeFailed', 'Warning');
    assert.match(event.message, /exceeded quota/);
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === ub(e2e(), 64)), 'nothing resized');
    // Still critical, but the same patch would be rejected again: it waits (5 minutes, doubling; at most 6 a day).
    const blocked = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyResizeBlocked' });
    assert.match(blocked.message ?? '', /was rejected; next attempt at/);
    await assertNoFurtherPatches(e2e(), c, 3);

    await removeQuota();
    await assertInvariants(e2e(), c, scenario);
  });

  it('a provider growth boundary below the target: the resize reports the provider error and is not repeated', async function () {
    const growthBoundary = need(this, e2e(), e2e().faults.growthBoundary, 'a provider growth boundary at a chosen size');
    const c = await clusterWithPolicy(e2e(), { instances: 2 });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    // The stand-in refuses to grow attached disks of this class past 70 units (as Azure does at 4 TiB).
    const removeBoundary = await growthBoundary(ub(e2e(), 70));
    afterScenario(removeBoundary);

    await e2e().fill(instanceTarget(c, 1), 90);
    const status = await waitForState(e2e(), c, 'Resizing', { reason: 'ResizeFailed' });
    assert.match(status.message ?? '', /OperationNotAllowed/);
    await assertNoFurtherPatches(e2e(), c, 3);
    const changes = scenario.recorder.changes();
    assert.ok((await pvcSizes(e2e(), c)).every((p) => changes[p.name] === 1), `each data PVC patched once: ${JSON.stringify(changes)}`);

    await removeBoundary();
    await waitForActions(e2e(), c, 1, { result: 'Success' });
    await assertInvariants(e2e(), c, scenario);
  });

  it('at Azure\'s 4 TiB online-growth boundary: no patch, EmergencyAtLimit with the provider\'s reason', async function () {
    // A 4Ti disk on a GiB class of Standard or Premium SSD v1 (on the stand-in a tmpfs only uses memory for what is
    // written; on AKS a real 4Ti disk, billed by the hour). criticalMinimumFree above the disk size makes it an
    // emergency without writing terabytes.
    const storage = { request: '4Ti', limit: '8Ti', maintenanceWindow: closedWindow(), emergencyGrow: { criticalMinimumFree: '5Ti' } };
    const storageClass = need(this, e2e(), e2e().sizes.boundaryStorageClass, "a StorageClass of Azure Disk's provisioner with the 4 TiB boundary");
    const c = await clusterWithPolicy(e2e(), { instances: 1, size: '4Ti', storageClass, storage });
    const scenario = await beginScenario(e2e(), c);

    const status = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyAtLimit' });
    assert.match(status.message ?? '', /the largest size the provider can grow this disk to while attached/);
    await waitForEvent(e2e(), c, 'EmergencyAtLimit', 'Warning');
    await assertNoFurtherPatches(e2e(), c, 2);
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === 4 * TiB));
    assert.equal((await clusterEvents(e2e(), c)).filter((e) => e.reason === 'EmergencyGrow').length, 0);
    await assertInvariants(e2e(), c, scenario);
  });
});

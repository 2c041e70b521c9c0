/**
 * Growth on the local AKS stand-in: planned growth without a window on 1, 2 and 3 instances, emergency growth outside
 * the window, and the limit (with and without the emergency overshoot).
 */
import assert from 'node:assert/strict';
import { MiB, parseQuantity } from '../../shared/quantity.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  closedWindow, clusterEvents, clusterWithPolicy, instanceTarget, policy, pvcSizes, useStack, waitForActions, waitForEvent, waitForGrowth, waitForState,
} from '../support.ts';

describe('e2e: growth', function () {
  const e2e = useStack();

  // The core growth scenario on each topology. A 64Mi volume with an 8Mi minimum step needs about 91% used before the
  // target (used / 0.8) is a full step above the current size, so the fill is 92%: above the 80% the buffer allows,
  // below the 95% critical threshold. The fullest instance is the last one (a replica when there are several): the
  // target follows the highest usage across instances, and every instance's PVC grows to the same size.
  for (const instances of [1, 2, 3]) {
    it(`grows every data PVC when usage passes the buffer, without a maintenance window (${instances} instance${instances > 1 ? 's' : ''})`, async function () {
      const c = await clusterWithPolicy(e2e(), { instances, name: `pg${instances}` });
      await waitForState(e2e(), c, 'Balanced');
      const scenario = await beginScenario(e2e(), c);

      await e2e().stack.sim.workload.fill(instanceTarget(c, instances), { percent: 92 });
      const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
      assert.equal(status.lastAction?.kind, 'ScheduledGrow');
      assert.equal(status.lastAction.from, '64Mi');
      const grownTo = parseQuantity(status.lastAction.to ?? '0');
      assert.ok(grownTo >= 72 * MiB && grownTo <= 96 * MiB, `a planned step to about used / 0.8: ${status.lastAction.to}`);
      assert.equal(status.effectiveSize, status.lastAction.to);
      const sizes = await pvcSizes(e2e(), c);
      assert.equal(sizes.length, instances);
      assert.ok(sizes.every((s) => s.requested === grownTo && s.capacity === grownTo), `every PVC at ${grownTo}: ${JSON.stringify(sizes)}`);
      const fs = await e2e().stack.sim.workload.usage(instanceTarget(c, 1));
      assert.ok(fs.sizeBytes > 64 * MiB, 'the filesystem grew online');
      await waitForEvent(e2e(), c, 'ScheduledGrow', 'Normal');
      await waitForEvent(e2e(), c, 'ResizeCompleted', 'Normal');
      await waitForState(e2e(), c, 'Balanced');
      await assertInvariants(e2e(), c, scenario);
    });
  }

  it('grows at once when an instance reaches the critical threshold, outside the maintenance window', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy({ maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    const filledAt = Date.now();
    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 97 });
    await waitForGrowth(e2e(), c, 64 * MiB);
    const tookMs = Date.now() - filledAt;
    assert.ok(tookMs < 20_000, `grown within seconds, not at the next window (${tookMs} ms)`);
    const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
    assert.equal(status.lastAction?.kind, 'EmergencyGrow');
    assert.ok(status.nextMaintenanceWindow, 'a window exists and is closed');
    assert.equal(status.budget?.availableForEmergency, 3);
    const event = await waitForEvent(e2e(), c, 'EmergencyGrow', 'Normal');
    assert.match(event.message, /critical threshold 95%/);
    await assertInvariants(e2e(), c, scenario);
  });

  it('never grows a PVC above the limit, however often it fills (AtLimit, EmergencyAtLimit)', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy({ limit: '96Mi', maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const target = instanceTarget(c, 1);

    // 64Mi -> 80Mi (one emergency step) -> 96Mi (the next step, capped at the limit) -> nothing more.
    for (let actions = 1; actions <= 2; actions += 1) {
      await e2e().stack.sim.workload.fill(target, { percent: 97 });
      await waitForActions(e2e(), c, actions, { result: 'Success' });
    }
    await e2e().stack.sim.workload.fill(target, { percent: 97 });
    const atLimit = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyAtLimit' });
    assert.match(atLimit.message ?? '', /already at the limit 96Mi/);
    assert.equal(atLimit.effectiveSize, '96Mi');
    assert.equal(atLimit.recentActions?.length, 2, 'no action at the limit');
    await waitForEvent(e2e(), c, 'EmergencyAtLimit', 'Warning');

    await e2e().stack.sim.workload.fill(target, { percent: 90 });
    await waitForState(e2e(), c, 'AtLimit', { reason: 'LimitReached' });
    await waitForEvent(e2e(), c, 'LimitReached', 'Warning');
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === 96 * MiB));
    await assertInvariants(e2e(), c, scenario);
  });

  it('with exceedLimitOnEmergency, goes past the limit by the documented overshoot and no further', async function () {
    const storage = policy({ limit: '96Mi', maintenanceWindow: closedWindow(), emergencyGrow: { criticalMinimumFree: '4Mi', exceedLimitOnEmergency: true } });
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const target = instanceTarget(c, 1);

    // Overshoot: max(10% of 96Mi, min(1Gi, minimumStep 8Mi)) = 9.6Mi, rounded up to 10Mi: the ceiling is 106Mi.
    for (let actions = 1; actions <= 3; actions += 1) {
      await e2e().stack.sim.workload.fill(target, { percent: 97 });
      await waitForActions(e2e(), c, actions, { result: 'Success' });
    }
    await e2e().stack.sim.workload.fill(target, { percent: 97 });
    const atCeiling = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyAtLimit' });
    assert.match(atCeiling.message ?? '', /emergency ceiling 106Mi/);
    assert.equal(atCeiling.effectiveSize, '106Mi');
    await e2e().stack.sim.workload.fill(target, { percent: 50 });
    await waitForState(e2e(), c, 'AtLimit', { reason: 'OverLimitAfterEmergency' });
    assert.ok((await clusterEvents(e2e(), c)).some((e) => e.reason === 'EmergencyAtLimit'));
    await assertInvariants(e2e(), c, scenario);
  });
});

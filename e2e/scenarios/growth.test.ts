/**
 * Growth on the local AKS stand-in: planned growth without a window on 1, 2 and 3 instances, emergency growth outside
 * the window, and the limit (with and without the emergency overshoot).
 */
import assert from 'node:assert/strict';
import type { VolumeSizingStatus } from '../../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity } from '../../shared/quantity.ts';
import { eventually } from '../../test/harness/eventually.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  closedWindow, clusterEvents, clusterWithPolicy, instanceTarget, policy, pvcSizes, useStack, volumeStatus, waitForActions, waitForEvent, waitForGrowth,
  waitForState, type E2E, type ScenarioCluster,
} from '../support.ts';

/**
 * Fills the volume to 97% again after every emergency grow until the controller says it is at its ceiling; returns that
 * status. Every action must succeed, and there may be at most `maxActions`.
 */
async function fillUntilAtCeiling(e2e: E2E, c: ScenarioCluster, target: ReturnType<typeof instanceTarget>, maxActions: number): Promise<VolumeSizingStatus> {
  for (let done = 0; done <= maxActions; done += 1) {
    await e2e.stack.sim.workload.fill(target, { percent: 97 });
    const status = await eventually(async () => {
      const current = await volumeStatus(e2e, c);
      const grown = (current.recentActions?.length ?? 0) > done && current.lastAction?.result !== 'Pending';
      assert.ok(current.reason === 'EmergencyAtLimit' || grown, `grown or at the ceiling (${current.state ?? ''}/${current.reason ?? ''})`);
      return current;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    const actions = status.recentActions ?? [];
    assert.ok(actions.every((a) => a.result === 'Success'), `every action succeeded: ${JSON.stringify(actions)}`);
    if (status.reason === 'EmergencyAtLimit') return status;
  }
  throw new Error(`not at the ceiling after ${maxActions} actions`);
}

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
    const atLimit = await fillUntilAtCeiling(e2e(), c, target, 2);
    assert.match(atLimit.message ?? '', /already at the limit 96Mi/);
    assert.equal(atLimit.effectiveSize, '96Mi');
    assert.equal(atLimit.lastAction?.to, '96Mi', 'the last step is capped at the limit');
    assert.ok(atLimit.recentActions?.every((a) => a.kind === 'EmergencyGrow'));
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
    // From 80Mi the next emergency asks for 100Mi or more (the step, or the usage with its buffer): 106Mi in two or three.
    const atCeiling = await fillUntilAtCeiling(e2e(), c, target, 3);
    assert.match(atCeiling.message ?? '', /emergency ceiling 106Mi/);
    assert.equal(atCeiling.effectiveSize, '106Mi');
    assert.equal(atCeiling.lastAction?.to, '106Mi');
    await e2e().stack.sim.workload.fill(target, { percent: 50 });
    await waitForState(e2e(), c, 'AtLimit', { reason: 'OverLimitAfterEmergency' });
    assert.ok((await clusterEvents(e2e(), c)).some((e) => e.reason === 'EmergencyAtLimit'));
    await assertInvariants(e2e(), c, scenario);
  });
});

/**
 * Growth: planned growth without a window on 1, 2 and 3 instances, emergency growth outside
 * the window, and the limit (with and without the emergency overshoot).
 */
import assert from 'node:assert/strict';
import type { VolumeSizingStatus } from '../../shared/api/dynamicstorage.generated.ts';
import { formatQuantity, parseQuantity } from '../../shared/quantity.ts';
import { eventually } from '../../test/harness/eventually.ts';
import { assertInvariants, beginScenario, ceilingOf } from '../invariants.ts';
import {
  closedWindow, clusterEvents, clusterWithPolicy, instanceTarget, policy, pvcSizes, u, ub, useTarget, volumeStatus, waitForActions, waitForEvent,
  waitForGrowth, waitForState, type E2E, type ScenarioCluster,
} from '../support.ts';

/**
 * Fills the volume to 97% again after every emergency grow until the controller says it is at its ceiling; returns that
 * status. Every action must succeed, and there may be at most `maxActions`.
 */
async function fillUntilAtCeiling(e2e: E2E, c: ScenarioCluster, target: ReturnType<typeof instanceTarget>, maxActions: number): Promise<VolumeSizingStatus> {
  for (let done = 0; done <= maxActions; done += 1) {
    await e2e.fill(target, 97);
    const status = await eventually(async () => {
      const current = await volumeStatus(e2e, c);
      const grown = (current.recentActions?.length ?? 0) > done && current.lastAction?.result !== 'Pending';
      assert.ok(current.reason === 'EmergencyAtLimit' || grown, `grown or at the ceiling (${current.state ?? ''}/${current.reason ?? ''})`);
      return current;
    }, { timeoutMs: e2e.timeouts.resizeMs, intervalMs: 100 });
    const actions = status.recentActions ?? [];
    assert.ok(actions.every((a) => a.result === 'Success'), `every action succeeded: ${JSON.stringify(actions)}`);
    if (status.reason === 'EmergencyAtLimit') return status;
  }
  throw new Error(`not at the ceiling after ${maxActions} actions`);
}

describe('e2e: growth', function () {
  const e2e = useTarget();

  // The core growth scenario on each topology: a 64-unit volume (64Mi on the stand-in) with an 8-unit minimum step filled
  // to 92%, above the 80% the buffer allows, below the 95% critical threshold; the step is the target (used / 0.8). The fullest instance is the last one (a replica when there are several): the
  // target follows the highest usage across instances, and every instance's PVC grows to the same size.
  for (const instances of [1, 2, 3]) {
    it(`grows every data PVC when usage passes the buffer, without a maintenance window (${instances} instance${instances > 1 ? 's' : ''})`, async function () {
      const c = await clusterWithPolicy(e2e(), { instances, name: `pg${instances}` });
      await waitForState(e2e(), c, 'Balanced');
      const scenario = await beginScenario(e2e(), c);

      await e2e().fill(instanceTarget(c, instances), 92);
      const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
      // The stand-in's fill is one write, a completed step; through PostgreSQL it takes rounds, fast enough on MiB-scale
      // volumes for the engine to see a burst heading for the critical threshold and grow it as an emergency, which
      // without a window is as immediate (seen on the real node with 3 instances).
      const kind = status.lastAction?.kind;
      if (e2e().name === 'standin') assert.equal(kind, 'ScheduledGrow');
      else assert.ok(kind === 'ScheduledGrow' || kind === 'EmergencyGrow', `grown at once (${kind ?? 'no action'})`);
      assert.ok(status.lastAction && kind);
      assert.equal(status.lastAction.from, u(e2e(), 64));
      const grownTo = parseQuantity(status.lastAction.to ?? '0');
      if (kind === 'ScheduledGrow') {
        assert.ok(grownTo >= ub(e2e(), 72) && grownTo <= ub(e2e(), 96), `a planned step to about used / 0.8: ${status.lastAction.to}`);
      } else {
        // An emergency also buys the fill it saw for as long as a resize takes, at most twice the size while actions remain.
        assert.ok(grownTo >= ub(e2e(), 72) && grownTo <= ub(e2e(), 128), `an emergency step, at most doubled: ${status.lastAction.to}`);
      }
      assert.equal(status.effectiveSize, status.lastAction.to);
      const sizes = await pvcSizes(e2e(), c);
      assert.equal(sizes.length, instances);
      assert.ok(sizes.every((s) => s.requested === grownTo && s.capacity === grownTo), `every PVC at ${grownTo}: ${JSON.stringify(sizes)}`);
      const fs = await e2e().usage(instanceTarget(c, 1));
      assert.ok(fs.sizeBytes > ub(e2e(), 64), 'the filesystem grew online');
      await waitForEvent(e2e(), c, kind, 'Normal');
      await waitForEvent(e2e(), c, 'ResizeCompleted', 'Normal');
      await waitForState(e2e(), c, 'Balanced');
      await assertInvariants(e2e(), c, scenario);
    });
  }

  it('grows at once when an instance reaches the critical threshold, outside the maintenance window', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    const filledAt = Date.now();
    await e2e().fill(instanceTarget(c, 1), 97);
    await waitForGrowth(e2e(), c, ub(e2e(), 64));
    const tookMs = Date.now() - filledAt;
    assert.ok(tookMs < e2e().timeouts.emergencyGrowMs, `grown at once, not at the next window (${tookMs} ms)`);
    const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
    assert.equal(status.lastAction?.kind, 'EmergencyGrow');
    assert.ok(status.nextMaintenanceWindow, 'a window exists and is closed');
    assert.equal(status.budget?.availableForEmergency, 3);
    const event = await waitForEvent(e2e(), c, 'EmergencyGrow', 'Normal');
    // The stand-in's fill jumps to 97%: past the threshold. A fill through PostgreSQL passes 4Mi free (94%) first.
    assert.match(event.message, e2e().name === 'standin' ? /critical threshold 95%/ : /critical threshold 95%|critical minimum/);
    await assertInvariants(e2e(), c, scenario);
  });

  it('never grows a PVC above the limit, however often it fills (AtLimit, EmergencyAtLimit)', async function () {
    const limit = u(e2e(), 96);
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { limit, maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const target = instanceTarget(c, 1);

    // 64 -> 80 units (one emergency step) -> 96 (the next step, capped at the limit) -> nothing more.
    const atLimit = await fillUntilAtCeiling(e2e(), c, target, 2);
    assert.match(atLimit.message ?? '', new RegExp(`already at the limit ${limit}`));
    assert.equal(atLimit.effectiveSize, limit);
    assert.equal(atLimit.lastAction?.to, limit, 'the last step is capped at the limit');
    assert.ok(atLimit.recentActions?.every((a) => a.kind === 'EmergencyGrow'));
    await waitForEvent(e2e(), c, 'EmergencyAtLimit', 'Warning');

    await e2e().fill(target, 90);
    await waitForState(e2e(), c, 'AtLimit', { reason: 'LimitReached' });
    await waitForEvent(e2e(), c, 'LimitReached', 'Warning');
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === ub(e2e(), 96)));
    await assertInvariants(e2e(), c, scenario);
  });

  it('with exceedLimitOnEmergency, goes past the limit by the documented overshoot and no further', async function () {
    const storage = policy(e2e(), { limit: u(e2e(), 96), maintenanceWindow: closedWindow(), emergencyGrow: { criticalMinimumFree: u(e2e(), 4), exceedLimitOnEmergency: true } });
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const target = instanceTarget(c, 1);

    // Overshoot: max(10% of the limit, min(1Gi, minimumStep)) rounded up to the allocation unit. On the stand-in:
    // max(9.6Mi, 8Mi) -> 10Mi, the ceiling is 106Mi; on AKS: max(1.2Gi, 1Gi) -> 2Gi, the ceiling is 14Gi. From 80 units
    // the next emergency asks for 100 or more (the step, or the usage with its buffer): the ceiling in two or three.
    const ceiling = formatQuantity(ceilingOf(storage, e2e().sizes.allocationUnit));
    const atCeiling = await fillUntilAtCeiling(e2e(), c, target, 3);
    assert.match(atCeiling.message ?? '', new RegExp(`emergency ceiling ${ceiling}`));
    assert.equal(atCeiling.effectiveSize, ceiling);
    assert.equal(atCeiling.lastAction?.to, ceiling);
    await e2e().fill(target, 50);
    await waitForState(e2e(), c, 'AtLimit', { reason: 'OverLimitAfterEmergency' });
    assert.ok((await clusterEvents(e2e(), c)).some((e) => e.reason === 'EmergencyAtLimit'));
    await assertInvariants(e2e(), c, scenario);
  });
});

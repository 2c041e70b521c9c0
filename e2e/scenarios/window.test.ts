/**
 * Maintenance windows: planned growth waits outside the window and runs once it opens; an open window lets it run at
 * once.
 *
 * Where the target can move the controller's clock (the stand-in), time is shifted rather than waited for: the
 * controller of this file decides at `Date.now() + offset`, and a test moves `offset` forward into the window. The shift
 * stays under a minute or two on purpose: the agents stamp their readings with the real time, and the engine refuses
 * readings older than 2 minutes by its own clock, so a controller moved hours ahead would only see stale disks
 * (WaitingForDiskStatus). The window is therefore scheduled at the next minute boundary at least 45 s away, and the
 * clock is moved to just past it. Where the clock cannot move (a real cluster), the window is scheduled the target's
 * lead time ahead (long enough to fill the volume) and the test waits for it in real time.
 *
 * Fills go to 90%: above the 80% the buffer allows, and on a real filesystem (a few percent smaller than its disk) still
 * more than the 4-unit critical minimum free away from an emergency (92% left less than that on the real node).
 */
import assert from 'node:assert/strict';
import { parseQuantity } from '../../shared/quantity.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  afterScenario, closedWindow, clusterWithPolicy, instanceTarget, policy, pvcSizes, sleep, ub, useTarget, waitForActions, waitForEvent, waitForState,
} from '../support.ts';

describe('e2e: maintenance window', function () {
  const e2e = useTarget({ nodes: 2, shiftableClock: true, resyncMs: 2_000 });

  it('queues planned growth outside the window: PendingGrowth, OutsideMaintenanceWindow, nextMaintenanceWindow', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 2), 90);
    const status = await waitForState(e2e(), c, 'PendingGrowth', { reason: 'OutsideMaintenanceWindow' });
    assert.match(status.message ?? '', /waits for the maintenance window \(0 3 [12] 1 \* UTC for 1h\)/);
    const next = new Date(status.nextMaintenanceWindow ?? '');
    assert.equal(next.getUTCMonth(), 0, `the next window is in January: ${status.nextMaintenanceWindow ?? ''}`);
    assert.equal(next.getUTCHours(), 3);
    assert.ok(parseQuantity(status.targetSize ?? '0') > ub(e2e(), 64), 'the target is known');
    assert.equal(status.lastAction, undefined, 'no action');
    await waitForEvent(e2e(), c, 'OutsideMaintenanceWindow', 'Normal');
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === ub(e2e(), 64)), 'nothing resized');
    await assertInvariants(e2e(), c, scenario);
  });

  it('runs the queued growth when the window opens', async function () {
    const now = Date.now();
    const opens = new Date(Math.ceil((now + e2e().timeouts.windowLeadMs) / 60_000) * 60_000);
    const window = { schedule: `${opens.getUTCMinutes()} ${opens.getUTCHours()} * * *`, duration: '1h', timezone: 'UTC' };
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage: policy(e2e(), { maintenanceWindow: window }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 1), 90);
    const pending = await waitForState(e2e(), c, 'PendingGrowth', { reason: 'OutsideMaintenanceWindow' });
    assert.equal(pending.nextMaintenanceWindow, opens.toISOString().replace('.000Z', 'Z'));
    assert.ok(Date.now() < opens.getTime(), 'still before the window in real time');

    const clock = e2e().clock;
    if (clock.supported) {
      // Move the controller's clock to one second after the window opened.
      afterScenario(() => { clock.use.shift(0); });
      clock.use.shift(opens.getTime() - Date.now() + 1_000);
    } else {
      console.log(`      waiting for the window in real time on ${e2e().name} (${clock.reason})`);
      await sleep(opens.getTime() - Date.now() + 1_000);
    }
    const status = await waitForActions(e2e(), c, 1, { result: 'Success', timeoutMs: e2e().timeouts.resizeMs });
    assert.equal(status.lastAction?.kind, 'ScheduledGrow', `the action taken: ${JSON.stringify(status.recentActions)}; state ${status.state ?? ''}: ${status.message ?? ''}`);
    assert.ok(new Date(status.lastAction.timestamp).getTime() >= opens.getTime(), 'the action is dated inside the window');
    assert.ok(parseQuantity(status.effectiveSize ?? '0') > ub(e2e(), 64));
    await waitForEvent(e2e(), c, 'ScheduledGrow', 'Normal');
    await assertInvariants(e2e(), c, scenario);
  });

  it('grows at once inside an open window', async function () {
    // Starts every hour and lasts two: always open.
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: { schedule: '0 * * * *', duration: '2h', timezone: 'UTC' } }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 1), 90);
    const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
    assert.equal(status.lastAction?.kind, 'ScheduledGrow');
    assert.equal(status.effectiveSize, status.lastAction.to);
    await assertInvariants(e2e(), c, scenario);
  });
});

/**
 * Maintenance windows: planned growth waits outside the window and runs once it opens; an open window lets it run at
 * once.
 *
 * Time is shifted rather than waited for: the controller of this file decides at `Date.now() + offset`, and a test moves
 * `offset` forward into the window. The shift stays under a minute or two on purpose: the agents stamp their readings
 * with the real time, and the engine refuses readings older than 2 minutes by its own clock, so a controller moved hours
 * ahead would only see stale disks (WaitingForDiskStatus). The window is therefore scheduled at the next minute
 * boundary at least 45 s away, and the clock is moved to just past it.
 */
import assert from 'node:assert/strict';
import { MiB, parseQuantity } from '../../shared/quantity.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  afterScenario, closedWindow, clusterWithPolicy, instanceTarget, policy, pvcSizes, useStack, waitForActions, waitForEvent, waitForState,
} from '../support.ts';

let offsetMs = 0;

describe('e2e: maintenance window', function () {
  const e2e = useStack({ nodes: 2, controller: { clock: () => new Date(Date.now() + offsetMs), resyncMs: 2_000 } });

  it('queues planned growth outside the window: PendingGrowth, OutsideMaintenanceWindow, nextMaintenanceWindow', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy({ maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    await e2e().stack.sim.workload.fill(instanceTarget(c, 2), { percent: 92 });
    const status = await waitForState(e2e(), c, 'PendingGrowth', { reason: 'OutsideMaintenanceWindow' });
    assert.match(status.message ?? '', /waits for the maintenance window \(0 3 [12] 1 \* UTC for 1h\)/);
    const next = new Date(status.nextMaintenanceWindow ?? '');
    assert.equal(next.getUTCMonth(), 0, `the next window is in January: ${status.nextMaintenanceWindow ?? ''}`);
    assert.equal(next.getUTCHours(), 3);
    assert.ok(parseQuantity(status.targetSize ?? '0') > 64 * MiB, 'the target is known');
    assert.equal(status.lastAction, undefined, 'no action');
    await waitForEvent(e2e(), c, 'OutsideMaintenanceWindow', 'Normal');
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === 64 * MiB), 'nothing resized');
    await assertInvariants(e2e(), c, scenario);
  });

  it('runs the queued growth when the window opens', async function () {
    const now = Date.now();
    const opens = new Date(Math.ceil((now + 45_000) / 60_000) * 60_000);
    const window = { schedule: `${opens.getUTCMinutes()} ${opens.getUTCHours()} * * *`, duration: '1h', timezone: 'UTC' };
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage: policy({ maintenanceWindow: window }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    afterScenario(() => { offsetMs = 0; });

    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 92 });
    const pending = await waitForState(e2e(), c, 'PendingGrowth', { reason: 'OutsideMaintenanceWindow' });
    assert.equal(pending.nextMaintenanceWindow, opens.toISOString().replace('.000Z', 'Z'));
    assert.ok(Date.now() < opens.getTime(), 'still before the window in real time');

    // Move the controller's clock to one second after the window opened.
    offsetMs = opens.getTime() - Date.now() + 1_000;
    const status = await waitForActions(e2e(), c, 1, { result: 'Success', timeoutMs: 30_000 });
    assert.equal(status.lastAction?.kind, 'ScheduledGrow');
    assert.ok(new Date(status.lastAction.timestamp).getTime() >= opens.getTime(), 'the action is dated inside the window');
    assert.ok(parseQuantity(status.effectiveSize ?? '0') > 64 * MiB);
    await waitForEvent(e2e(), c, 'ScheduledGrow', 'Normal');
    await assertInvariants(e2e(), c, scenario);
  });

  it('grows at once inside an open window', async function () {
    // Starts every hour and lasts two: always open.
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy({ maintenanceWindow: { schedule: '0 * * * *', duration: '2h', timezone: 'UTC' } }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    await e2e().stack.sim.workload.fill(instanceTarget(c, 1), { percent: 92 });
    const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
    assert.equal(status.lastAction?.kind, 'ScheduledGrow');
    assert.equal(status.effectiveSize, status.lastAction.to);
    await assertInvariants(e2e(), c, scenario);
  });
});

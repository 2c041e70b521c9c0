/**
 * The rolling 24 h budget: exactly maxActionsPerDay resizes, then nothing; the action reserved for emergencies stays
 * available while planned growth is blocked; the numbers are in the status and the metrics, and a Warning says why.
 */
import assert from 'node:assert/strict';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  closedWindow, clusterWithPolicy, instanceTarget, policy, pvcSizes, quiet, sample, u, useTarget, waitForActions, waitForEvent, waitForState,
} from '../support.ts';

describe('e2e: daily budget', function () {
  const e2e = useTarget({ nodes: 2 });

  it('with maxActionsPerDay 2, resizes twice and blocks the third (EmergencyBudgetExhausted)', async function () {
    const storage = policy(e2e(), { maintenanceWindow: closedWindow(), emergencyGrow: { criticalMinimumFree: u(e2e(), 4), maxActionsPerDay: 2, reservedActionsForEmergency: 0 } });
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const target = instanceTarget(c, 1);

    for (let actions = 1; actions <= 2; actions += 1) {
      await e2e().fill(target, 97);
      await waitForActions(e2e(), c, actions, { result: 'Success' });
    }
    const grown = await pvcSizes(e2e(), c);
    await e2e().fill(target, 97);
    const blocked = await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyBudgetExhausted' });
    const first = blocked.recentActions?.[0];
    assert.ok(first);
    assert.deepEqual(blocked.budget, {
      actionsLast24h: 2, availableForPlanned: 0, availableForEmergency: 0,
      budgetResetsAt: new Date(new Date(first.timestamp).getTime() + 24 * 3600_000).toISOString().replace('.000Z', 'Z'),
    });
    assert.match(blocked.message ?? '', /no emergency budget left/);
    const event = await waitForEvent(e2e(), c, 'EmergencyBudgetExhausted', 'Warning');
    assert.match(event.message, /no emergency budget left/);
    await quiet(e2e(), 2);
    assert.deepEqual(await pvcSizes(e2e(), c), grown, 'no third resize');
    assert.equal((await waitForState(e2e(), c, 'Emergency')).recentActions?.length, 2);

    const metrics = await e2e().controllerMetrics();
    const labels = { namespace: c.namespace, cluster: c.name, volume_type: 'data' };
    assert.equal(sample(metrics, 'cnpg_dynamic_storage_budget_remaining', { ...labels, budget: 'emergency' }), 0);
    assert.equal(sample(metrics, 'cnpg_dynamic_storage_budget_remaining', { ...labels, budget: 'planned' }), 0);
    assert.equal(sample(metrics, 'cnpg_dynamic_storage_actions_last_24h', labels), 2);
    assert.ok(Object.values(scenario.recorder.changes()).every((n) => n <= 2), `no disk modified more than twice: ${JSON.stringify(scenario.recorder.changes())}`);
    await assertInvariants(e2e(), c, scenario);
  });

  it('keeps the reserved action for an emergency once planned growth is out of budget (PlannedBudgetExhausted)', async function () {
    // maxActionsPerDay 2 with 1 reserved: one planned action, then only an emergency may use the last one.
    const storage = policy(e2e(), { emergencyGrow: { criticalMinimumFree: u(e2e(), 4), maxActionsPerDay: 2, reservedActionsForEmergency: 1 } });
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    const target = instanceTarget(c, 2);

    // 90%: past the buffer, clear of the critical threshold and of the critical minimum free space (4 units) on every
    // target, including a real instance whose filesystem is a few percent smaller than its disk.
    await e2e().fill(target, 90);
    const planned = await waitForActions(e2e(), c, 1, { result: 'Success' });
    assert.equal(planned.lastAction?.kind, 'ScheduledGrow');
    assert.deepEqual([planned.budget?.availableForPlanned, planned.budget?.availableForEmergency], [0, 1]);

    await e2e().fill(target, 90);
    const pending = await waitForState(e2e(), c, 'PendingGrowth', { reason: 'PlannedBudgetExhausted' });
    assert.equal(pending.recentActions?.length, 1);
    await waitForEvent(e2e(), c, 'PlannedBudgetExhausted', 'Normal');

    await e2e().fill(target, 97);
    const emergency = await waitForActions(e2e(), c, 2, { result: 'Success' });
    assert.equal(emergency.lastAction?.kind, 'EmergencyGrow', 'the reserved action served the emergency');
    assert.deepEqual([emergency.budget?.actionsLast24h, emergency.budget?.availableForPlanned, emergency.budget?.availableForEmergency], [2, 0, 0]);

    await e2e().fill(target, 97);
    await waitForState(e2e(), c, 'Emergency', { reason: 'EmergencyBudgetExhausted' });
    await waitForEvent(e2e(), c, 'EmergencyBudgetExhausted', 'Warning');
    assert.ok(Object.values(scenario.recorder.changes()).every((n) => n <= 2), `no disk modified more than twice: ${JSON.stringify(scenario.recorder.changes())}`);
    await assertInvariants(e2e(), c, scenario);
  });
});

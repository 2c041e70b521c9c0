/**
 * Every kind of volume of a Cluster (data, WAL, tablespaces) is sized on its own; new replicas are created at the grown
 * size; the controller and the agents report the grown volume in their metrics.
 */
import assert from 'node:assert/strict';
import { MiB, parseQuantity } from '../../shared/quantity.ts';
import { eventually } from '../../test/harness/eventually.ts';
import { assertInvariants, beginScenario } from '../invariants.ts';
import {
  closedWindow, clusterWithPolicy, instanceTarget, policy, pvcSizes, sample, ub, useTarget, waitForActions, waitForGrowth, waitForState, type E2E,
  type ScenarioCluster,
} from '../support.ts';

const tablespace = 'analytics';

/** A Cluster with WAL storage and two tablespaces; every volume managed by the same policy. */
async function fullCluster(e2e: E2E, instances: number): Promise<ScenarioCluster> {
  const managed = policy(e2e, { maintenanceWindow: closedWindow() });
  return clusterWithPolicy(e2e, {
    instances, walStorage: true, tablespaces: [tablespace, 'archive'],
    storage: managed, wal: managed, tablespacePolicies: [{ name: tablespace, storage: managed }, { name: 'archive', storage: managed }],
  });
}

describe('e2e: volumes', function () {
  const e2e = useTarget({ nodes: 2 });

  it('grows only the PVCs of the tablespace that fills', async function () {
    const c = await fullCluster(e2e(), 2);
    await waitForState(e2e(), c, 'Balanced', { role: { tablespace } });
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 1, { tablespace }), 97);
    const grown = await waitForGrowth(e2e(), c, ub(e2e(), 64), { tablespace });
    assert.deepEqual(grown.map((s) => s.name), ['pg-1-tbs-analytics', 'pg-2-tbs-analytics']);
    const status = await waitForActions(e2e(), c, 1, { role: { tablespace }, result: 'Success' });
    assert.equal(status.lastAction?.kind, 'EmergencyGrow');
    for (const other of ['data', 'wal', { tablespace: 'archive' }] as const) {
      assert.ok((await pvcSizes(e2e(), c, other)).every((s) => s.requested === ub(e2e(), 64)), `${JSON.stringify(other)} untouched`);
      const untouched = await waitForState(e2e(), c, 'Balanced', { role: other });
      assert.equal(untouched.recentActions?.length ?? 0, 0);
    }
    await assertInvariants(e2e(), c, scenario);
  });

  it('grows the WAL volumes when WAL fills, and only them', async function () {
    const c = await fullCluster(e2e(), 2);
    await waitForState(e2e(), c, 'Balanced', { role: 'wal' });
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 1, 'wal'), 97);
    const grown = await waitForGrowth(e2e(), c, ub(e2e(), 64), 'wal');
    assert.deepEqual(grown.map((s) => s.name), ['pg-1-wal', 'pg-2-wal']);
    const status = await waitForActions(e2e(), c, 1, { role: 'wal', result: 'Success' });
    assert.equal(status.effectiveSize, status.lastAction?.to);
    assert.ok((await pvcSizes(e2e(), c, 'data')).every((s) => s.requested === ub(e2e(), 64)), 'data untouched');
    await assertInvariants(e2e(), c, scenario);
  });

  it('creates a new replica at the effective size after growth (scale-up), for every volume kind', async function () {
    const c = await fullCluster(e2e(), 1);
    await waitForState(e2e(), c, 'Balanced', { role: 'wal' });
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 1), 97);
    await e2e().fill(instanceTarget(c, 1, 'wal'), 97);
    const data = await waitForActions(e2e(), c, 1, { result: 'Success' });
    const wal = await waitForActions(e2e(), c, 1, { role: 'wal', result: 'Success' });

    await e2e().scale(c.namespace, c.name, 3);
    await e2e().waitForReady(c.namespace, c.name);
    for (const [role, status] of [['data', data], ['wal', wal]] as const) {
      const sizes = await pvcSizes(e2e(), c, role);
      assert.equal(sizes.length, 3);
      assert.ok(sizes.every((s) => s.requested === parseQuantity(status.effectiveSize ?? '') && s.capacity === s.requested),
        `new ${role} PVCs created at ${status.effectiveSize ?? ''}: ${JSON.stringify(sizes)}`);
    }
    const tablespaceSizes = await pvcSizes(e2e(), c, { tablespace });
    assert.ok(tablespaceSizes.every((s) => s.requested === ub(e2e(), 64)), 'a volume that never grew is created at the Cluster size');
    const after = await waitForState(e2e(), c, 'Balanced');
    assert.equal(after.recentActions?.length, 1, 'no resize needed for the new replicas');
    await assertInvariants(e2e(), c, scenario);
  });

  it('reports the grown volume in the controller and agent metrics', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);

    await e2e().fill(instanceTarget(c, 1), 97);
    const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
    const grownTo = parseQuantity(status.effectiveSize ?? '');
    const labels = { namespace: c.namespace, cluster: c.name, volume_type: 'data', tablespace: '' };
    const controller = await e2e().controllerMetrics();
    assert.equal(sample(controller, 'cnpg_dynamic_storage_effective_size_bytes', labels), grownTo);
    assert.equal(sample(controller, 'cnpg_dynamic_storage_budget_remaining', { ...labels, budget: 'emergency' }), 3);
    assert.equal(sample(controller, 'cnpg_dynamic_storage_budget_remaining', { ...labels, budget: 'planned' }), 2);
    assert.equal(sample(controller, 'cnpg_dynamic_storage_actions_last_24h', labels), 1);

    // The agents report what the filesystem of the grown disk is, once they probed it after the resize.
    for (const instance of [1, 2]) {
      const pvc = `${c.name}-${instance}`;
      const usage = await e2e().usage(instanceTarget(c, instance));
      const filesystem = usage.sizeBytes;
      const expected = e2e().filesystemRange(grownTo);
      assert.ok(filesystem >= expected.min && filesystem <= expected.max, `${pvc} filesystem of the grown disk: ${filesystem} in ${JSON.stringify(expected)}`);
      const text = await waitForAgentSample(e2e(), 'cnpg_disk_total_bytes', { persistentvolumeclaim: pvc, namespace: c.namespace }, filesystem);
      assert.equal(sample(text, 'cnpg_disk_total_bytes', { namespace: c.namespace, persistentvolumeclaim: pvc, instance: pvc, volume_type: 'data', cluster: c.name }), filesystem);
      const used = sample(text, 'cnpg_disk_used_bytes', { persistentvolumeclaim: pvc, namespace: c.namespace }) ?? -1;
      const available = sample(text, 'cnpg_disk_available_bytes', { persistentvolumeclaim: pvc, namespace: c.namespace }) ?? -1;
      // A real PostgreSQL keeps writing a little between the two readings.
      assert.ok(Math.abs(used - usage.usedBytes) <= Math.max(MiB, e2e().sizes.unit), `${pvc} used ${used} ~ ${usage.usedBytes}`);
      if (e2e().filesystemWithoutReserve) assert.equal(used + available, filesystem, 'tmpfs: used + available = total');
      else assert.ok(used + available <= filesystem, 'used + available <= total (reserved blocks)');
      const percent = sample(text, 'cnpg_disk_percent_used', { persistentvolumeclaim: pvc, namespace: c.namespace }) ?? -1;
      assert.equal(percent, Math.ceil((used * 100) / (used + available)));
    }
    await assertInvariants(e2e(), c, scenario);
  });
});

async function waitForAgentSample(e2e: E2E, name: string, labels: Record<string, string>, value: number): Promise<string> {
  return eventually(async () => {
    const text = await e2e.agentMetrics();
    assert.equal(sample(text, name, labels), value, `${name}${JSON.stringify(labels)}`);
    return text;
  }, { timeoutMs: Math.max(15_000, e2e.timeouts.stateMs), intervalMs: 250 });
}

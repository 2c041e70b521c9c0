/**
 * Interruptions while a resize is in flight (the brief's P0 scenarios): the controller restarts, the primary fails over,
 * the primary pod restarts, the Cluster's own storage size changes. Each time the resize completes once, nothing is
 * patched twice, no PVC shrinks and the data is intact.
 *
 * The resize is held in flight by a slow expansion: a slow ControllerExpandVolume in the Azure Disk CSI stand-in, Azure's
 * own latency (tens of seconds) on AKS; the interruption happens while the PVC asks for more than it has.
 */
import assert from 'node:assert/strict';
import { formatQuantity, parseQuantity } from '../../shared/quantity.ts';
import { eventually } from '../../test/harness/eventually.ts';
import { assertInvariants, beginScenario, type SizeRecorder } from '../invariants.ts';
import {
  afterScenario, closedWindow, clusterEvents, clusterWithPolicy, instanceTarget, need, policy, pvcSizes, quiet, u, ub, useTarget, volumeStatus,
  waitForActions, waitForState, type E2E, type PvcSize, type ScenarioCluster,
} from '../support.ts';

/** Slows the controller side of every expansion down for the current test (skips it when the target cannot). */
async function slowResizes(test: Mocha.Context, e2e: E2E, controllerMs: number): Promise<void> {
  const latency = need(test, e2e, e2e.faults.latency, 'a resize held in flight');
  afterScenario(await latency(controllerMs));
}

/** Fills the first instance to 97% and waits until the emergency grow is patched but not finished. */
async function resizeInFlight(e2e: E2E, c: ScenarioCluster): Promise<PvcSize[]> {
  await e2e.fill(instanceTarget(c, 1), 97);
  const base = ub(e2e, 64);
  return eventually(async () => {
    const sizes = await pvcSizes(e2e, c);
    assert.ok(sizes.every((s) => s.requested > base && s.capacity === base), `patched, not grown yet: ${JSON.stringify(sizes)}`);
    assert.equal((await volumeStatus(e2e, c)).lastAction?.result, 'Pending');
    return sizes;
  }, { timeoutMs: e2e.timeouts.emergencyGrowMs, intervalMs: 50 });
}

/** The action completed once: one recorded action, one EmergencyGrow event, every PVC modified once. */
async function completedOnce(e2e: E2E, c: ScenarioCluster, recorder: SizeRecorder, patched: PvcSize[]): Promise<void> {
  const status = await waitForActions(e2e, c, 1, { result: 'Success' });
  assert.equal(status.lastAction?.to, formatQuantity(patched[0]?.requested ?? 0));
  await quiet(e2e, 1.5);
  assert.equal((await volumeStatus(e2e, c)).recentActions?.length, 1, 'no second action');
  const grows = (await clusterEvents(e2e, c)).filter((e) => e.reason === 'EmergencyGrow');
  assert.equal(grows.reduce((n, e) => n + e.count, 0), 1, 'one EmergencyGrow event');
  await recorder.poll();
  const changes = recorder.changes();
  for (const p of patched) assert.equal(changes[p.name], 1, `${p.name} patched once (${JSON.stringify(changes)})`);
}

describe('e2e: resilience during growth', function () {
  const e2e = useTarget({ nodes: 2 });

  it('controller restart while a resize is in flight: the resize completes once, no second action', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await slowResizes(this, e2e(), 4_000);

    const patched = await resizeInFlight(e2e(), c);
    await e2e().restartController();
    const resizing = await waitForState(e2e(), c, 'Resizing', { reason: 'ResizeInProgress' });
    assert.equal(resizing.recentActions?.length, 1, 'the restarted controller knows the action from the status');
    await completedOnce(e2e(), c, scenario.recorder, patched);
    await assertInvariants(e2e(), c, scenario);
  });

  it('failover while a resize is in flight', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await slowResizes(this, e2e(), 3_000);

    const patched = await resizeInFlight(e2e(), c);
    const promoted = await e2e().failover(c.namespace, c.name);
    assert.equal(promoted, `${c.name}-2`);
    await completedOnce(e2e(), c, scenario.recorder, patched);
    assert.equal(await e2e().currentPrimary(c.namespace, c.name), `${c.name}-2`);
    await assertInvariants(e2e(), c, scenario);
  });

  it('primary pod restart while a resize is in flight: the filesystem grows once the pod is back', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 1, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await slowResizes(this, e2e(), 2_000);

    const patched = await resizeInFlight(e2e(), c);
    const pod = `${c.name}-1`;
    const before = await e2e().core.readNamespacedPod({ name: pod, namespace: c.namespace });
    await e2e().core.deleteNamespacedPod({ name: pod, namespace: c.namespace });
    await eventually(async () => {
      const after = await e2e().core.readNamespacedPod({ name: pod, namespace: c.namespace });
      assert.notEqual(after.metadata?.uid, before.metadata?.uid, 'a new pod');
      assert.equal(after.status?.phase, 'Running');
    }, { timeoutMs: e2e().timeouts.podMs });
    await completedOnce(e2e(), c, scenario.recorder, patched);
    const usage = await e2e().usage(instanceTarget(c, 1));
    assert.ok(usage.sizeBytes > ub(e2e(), 64), 'the filesystem grew on the new pod');
    await assertInvariants(e2e(), c, scenario);
  });

  it('node drain while a resize is in flight: the instance waits for its zonal disk\'s node, then the resize completes', async function () {
    const drainInstance = need(this, e2e(), e2e().drain, 'node drain');
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await slowResizes(this, e2e(), 2_000);
    const drain = (pod: string): Promise<() => Promise<void>> => drainInstance(c.namespace, pod);

    const patched = await resizeInFlight(e2e(), c);
    // The replica's node: a drain of the primary's node is first a switchover (CloudNativePG moves the primary off a
    // cordoned node, and its PodDisruptionBudget holds the eviction until then: the switchover scenario), and on a
    // target of one node the primary has nowhere to go. The replica's disk keeps it to its node.
    const primary = await e2e().currentPrimary(c.namespace, c.name);
    const pod = primary === `${c.name}-1` ? `${c.name}-2` : `${c.name}-1`;
    const evicted = (await e2e().core.readNamespacedPod({ name: pod, namespace: c.namespace })).metadata?.uid;
    // A drain as it touches this Cluster: cordon the instance's node, evict the instance.
    const undrain = await drain(pod);
    afterScenario(undrain);
    await eventually(async () => {
      const recreated = await e2e().core.readNamespacedPod({ name: pod, namespace: c.namespace });
      assert.notEqual(recreated.metadata?.uid, evicted, 'the instance is recreated');
      assert.equal(recreated.status?.phase, 'Pending', 'the disk is zonal: the instance cannot run elsewhere');
    }, { timeoutMs: e2e().timeouts.podMs });
    // While its node is cordoned the instance stays where its disk is, and its PVC is not grown twice.
    await quiet(e2e(), 1);
    assert.equal((await e2e().core.readNamespacedPod({ name: pod, namespace: c.namespace })).status?.phase, 'Pending', 'still waiting for its node');
    assert.equal((await volumeStatus(e2e(), c)).recentActions?.length, 1, 'one action while the instance is away');
    await undrain();
    await completedOnce(e2e(), c, scenario.recorder, patched);
    await assertInvariants(e2e(), c, scenario);
  });

  it('the Cluster\'s storage size raised past ours mid-resize: CNPG and the controller do not fight, PVCs only grow', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await slowResizes(this, e2e(), 3_000);

    const patched = await resizeInFlight(e2e(), c);
    const raised = ub(e2e(), 128);
    assert.ok((patched[0]?.requested ?? 0) < raised);
    await e2e().setStorageSize(c.namespace, c.name, 'data', u(e2e(), 128));
    await eventually(async () => {
      const sizes = await pvcSizes(e2e(), c);
      assert.ok(sizes.every((s) => s.requested === raised && s.capacity === raised), `CNPG's size reached: ${JSON.stringify(sizes)}`);
    }, { timeoutMs: e2e().timeouts.resizeMs });
    const status = await waitForActions(e2e(), c, 1, { result: 'Success' });
    assert.equal(status.effectiveSize, u(e2e(), 128), 'the effective size follows what the PVCs have');
    await quiet(e2e(), 1.5);
    assert.equal((await volumeStatus(e2e(), c)).recentActions?.length, 1, 'no action of ours in answer to CNPG\'s');
    await assertInvariants(e2e(), c, scenario);
  });

  it('the Cluster\'s storage size raised below ours mid-resize: CNPG leaves the larger PVCs alone', async function () {
    const c = await clusterWithPolicy(e2e(), { instances: 2, storage: policy(e2e(), { maintenanceWindow: closedWindow() }) });
    await waitForState(e2e(), c, 'Balanced');
    const scenario = await beginScenario(e2e(), c);
    await slowResizes(this, e2e(), 3_000);

    const patched = await resizeInFlight(e2e(), c);
    const ours = patched[0]?.requested ?? 0;
    await e2e().setStorageSize(c.namespace, c.name, 'data', u(e2e(), 72));
    assert.ok(ours > ub(e2e(), 72));
    await completedOnce(e2e(), c, scenario.recorder, patched);
    assert.ok((await pvcSizes(e2e(), c)).every((s) => s.requested === ours), 'still at our size');
    assert.equal(parseQuantity((await volumeStatus(e2e(), c)).effectiveSize ?? ''), ours);
    await assertInvariants(e2e(), c, scenario);
  });
});

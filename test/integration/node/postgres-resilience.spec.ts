/**
 * What the real CloudNativePG operator does while the product's resize is in flight: a failover, a switchover, a rolling
 * update, and the Cluster's own `spec.storage.size` raised during and after our growth. The test CSI driver holds
 * ControllerExpandVolume (a `stuck` fault) as a slow cloud disk would, so that each event lands inside the resize; then it
 * lets go. Each time: the resize completes, the product took exactly one action for it, the Cluster is healthy again and
 * the sentinel rows read back on every instance.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';
import { eventually } from '../../harness/eventually.ts';
import { clearCsiFaults, setCsiFaults } from '../../node/csi-faults.ts';
import { removeTestStorageClass, testStorageClass } from '../../node/fixtures.ts';
import {
  clusterManifest, clusterStatus, fillWithRows, operatorDiagnostics, primaryOf, productDiagnostics, pvcSizes, verifySentinel, volumeStatus, waitForGrowth,
  waitForHealthy, writeSentinel, type ClusterRef, type PvcSize, type Sentinel,
} from '../../node/postgres.ts';
import { dsApi, installProduct, waitForProduct, type InstalledProduct } from '../../node/product.ts';
import { createNamespace, useRealStack, type RealStack } from '../../node/stack.ts';

const cluster = 'pg';
const instances = 2;
const dataSize = 96 * MiB;
/** The DynamicStorage's growth.minimumStep and the share of the volume its targetBuffer (20%) allows in use. */
const minimumStep = 16 * MiB;
const allowedShare = 0.8;
/** The fill's statement size. */
const stepMiB = 4;

/**
 * Holds every resize of the Cluster's data PVCs, fills the data volume past its buffer, and resolves once the product
 * patched every data PVC (the resize is then in flight); returns the sizes before.
 */
async function growAndHold(stack: RealStack, ref: ClusterRef): Promise<PvcSize[]> {
  const before = await pvcSizes(stack, ref.namespace, ref.cluster, 'data');
  await setCsiFaults(stack, [{ id: 'hold', kind: 'stuck', pvcRegexp: `^${ref.namespace}/${ref.cluster}-[0-9]+$` }]);
  // Past the buffer, short of the critical threshold, and no further than one minimum step restores: rows written after
  // the product's decision (the fill learns of the patch seconds later) would otherwise call for a second grow once this
  // one is done. The test driver's disks are tmpfs: the filesystem is the PVC's size.
  const size = before[0]!.capacity;
  const usedShare = Math.min(0.93, (allowedShare * (size + minimumStep) - stepMiB * MiB) / size);
  const patched = async (): Promise<boolean> => (await pvcSizes(stack, ref.namespace, ref.cluster, 'data')).every((p, i) => p.requested > (before[i]?.requested ?? 0));
  await fillWithRows(stack, ref.namespace, await primaryOf(stack, ref.namespace, ref.cluster), { usedShare, stepMiB, until: patched });
  await eventually(async () => {
    const pvcs = await pvcSizes(stack, ref.namespace, ref.cluster, 'data');
    assert.ok(pvcs.every((p, i) => p.requested > (before[i]?.requested ?? 0)), `every data PVC patched: ${JSON.stringify(pvcs)}`);
    assert.ok(pvcs.every((p, i) => p.capacity === before[i]?.capacity), 'and still in flight');
  }, { timeoutMs: 180_000, intervalMs: 500 });
  const status = await volumeStatus(stack, ref.namespace, ref.cluster, 'data');
  assert.equal(status?.lastAction?.result, 'Pending', `the action is in flight (${status?.state ?? ''}/${status?.reason ?? ''})`);
  return before;
}

/**
 * Lets the held resize go and checks it completed with one action of ours, on a healthy Cluster: one action from the
 * size before, and none begun while it was in flight. A later grow of the grown volume is the product answering usage
 * (rows the fill wrote while the resize was held), never the same resize again: it must start where the last one ended.
 */
async function releaseAndSettle(stack: RealStack, ref: ClusterRef, before: PvcSize[], actionsBefore: number): Promise<PvcSize[]> {
  await clearCsiFaults(stack);
  const grown = await waitForGrowth(stack, ref, 'data', before[0]!.requested, { count: instances, timeoutMs: 300_000 });
  await waitForHealthy(stack, ref.namespace, ref.cluster, instances, 600_000);
  const status = await eventually(async () => {
    const s = await volumeStatus(stack, ref.namespace, ref.cluster, 'data');
    assert.equal(s?.lastAction?.result, 'Success', `the action settled (${s?.state ?? ''}/${s?.reason ?? ''}: ${s?.message ?? ''})`);
    return s;
  }, { timeoutMs: 120_000, intervalMs: 1000 });
  const all = status.recentActions ?? [];
  const ours = [...all.slice(actionsBefore)].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
  const shown = JSON.stringify(all);
  assert.ok(ours.length >= 1, `an action for the resize: ${shown}`);
  assert.equal(ours.filter((a) => parseQuantity(a.from ?? '0', 'from') === before[0]!.requested).length, 1, `one action for the resize: ${shown}`);
  ours.slice(1).forEach((later, i) => {
    const previous = ours[i]!;
    assert.equal(later.from, previous.to, `a later grow starts where the last ended: ${shown}`);
    assert.ok(previous.completedAt !== undefined && Date.parse(later.timestamp) >= Date.parse(previous.completedAt), `and only once it completed: ${shown}`);
  });
  return grown;
}

/** Waits until the product is done with the data volume (balanced, nothing in flight) and returns the PVC sizes then. */
async function settled(stack: RealStack, ref: ClusterRef): Promise<{ sizes: PvcSize[]; actions: number }> {
  const look = async (): Promise<{ sizes: PvcSize[]; actions: number }> => {
    const s = await volumeStatus(stack, ref.namespace, ref.cluster, 'data');
    assert.equal(s?.state, 'Balanced', `${s?.state ?? ''}/${s?.reason ?? ''}: ${s?.message ?? ''}`);
    assert.notEqual(s.lastAction?.result, 'Pending');
    const sizes = await pvcSizes(stack, ref.namespace, ref.cluster, 'data');
    assert.ok(sizes.every((p) => p.capacity >= p.requested && p.requested === sizes[0]?.requested), `PVCs settled: ${JSON.stringify(sizes)}`);
    return { sizes, actions: s.recentActions?.length ?? 0 };
  };
  return eventually(async () => {
    const first = await look();
    // Twice, a few readings apart: the first Balanced can come before the grown volume's first reading.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const second = await look();
    assert.deepEqual(second, first, 'no change in between');
    return second;
  }, { timeoutMs: 300_000, intervalMs: 1000 });
}

async function actionCount(stack: RealStack, ref: ClusterRef): Promise<number> {
  return (await volumeStatus(stack, ref.namespace, ref.cluster, 'data'))?.recentActions?.length ?? 0;
}

describe('the real CloudNativePG operator during a resize', function () {
  this.timeout(900_000);
  const stack = useRealStack();
  let product: InstalledProduct | undefined;
  let namespace: { name: string; remove: () => Promise<void> } | undefined;
  let ref: ClusterRef = { namespace: '', cluster };
  let sentinel: Sentinel | undefined;

  before(async function () {
    this.timeout(30 * 60_000);
    const s = stack();
    product = await installProduct(s);
    const storageClass = await testStorageClass(s);
    namespace = await createNamespace(s, 'resilience');
    ref = { namespace: namespace.name, cluster };
    // WAL on a volume of its own, large enough not to need growing (not managed here): the data volume's usage is then
    // the rows the tests write, not also the WAL that archiving and checkpoints have not given back yet.
    await s.kubectl(['apply', '-f', '-'], JSON.stringify(clusterManifest({
      namespace: ref.namespace, name: cluster, instances, storageClass, dataSize: `${dataSize / MiB}Mi`, walSize: '256Mi',
    })));
    await waitForProduct(s);
    await waitForHealthy(s, ref.namespace, cluster, instances, 20 * 60_000);
    await s.kubeConfig.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({ ...dsApi, namespace: ref.namespace, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: cluster },
      spec: {
        cluster: { name: cluster },
        storage: {
          request: `${dataSize / MiB}Mi`, limit: '1Gi', targetBuffer: 20,
          // Six resizes in this file, and the grows usage may call for after them: the budget is not what these scenarios
          // are about (except the first).
          emergencyGrow: { criticalMinimumFree: '6Mi', maxActionsPerDay: 20 }, growth: { minimumStep: `${minimumStep / MiB}Mi` },
        },
      },
    } });
    sentinel = await writeSentinel(s, ref.namespace, await primaryOf(s, ref.namespace, cluster));
  });

  afterEach(async function () {
    await clearCsiFaults(stack());
    if (this.currentTest?.state === 'passed' && sentinel) await verifySentinel(stack(), ref.namespace, cluster, sentinel);
  });

  after(async function () {
    this.timeout(600_000);
    const s = stack();
    await clearCsiFaults(s);
    await namespace?.remove();
    await product?.remove();
    await removeTestStorageClass(s);
  });

  it('the budget refills 24 hours after an action: an emergency waits for it, then grows', async function () {
    const s = stack();
    const custom = s.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const setBudget = (maxActionsPerDay: number): Promise<unknown> => custom.patchNamespacedCustomObject(
      { ...dsApi, namespace: ref.namespace, name: cluster, body: { spec: { storage: { emergencyGrow: { maxActionsPerDay, reservedActionsForEmergency: 1 } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    // One action a day, and one taken 23 h 58 min ago (the record the controller keeps on each PVC it patched): the clock
    // that moves here is the action's, so real readings and the real controller need no shift.
    const refillsAt = new Date(Math.floor(Date.now() / 1000) * 1000 + 120_000);
    const earlier = [{ k: 'EmergencyGrow', t: new Date(refillsAt.getTime() - 24 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'), f: '80Mi', to: `${dataSize / MiB}Mi` }];
    await setBudget(1);
    for (const pvc of await pvcSizes(s, ref.namespace, cluster, 'data')) {
      await s.kubectl(['annotate', '--overwrite', 'pvc', '-n', ref.namespace, pvc.name, `dynamicstorage.cnpg.io/actions=${JSON.stringify(earlier)}`]);
    }
    const before = await pvcSizes(s, ref.namespace, cluster, 'data');
    await fillWithRows(s, ref.namespace, await primaryOf(s, ref.namespace, cluster), { usedShare: 0.955, stepMiB: 4 });
    const waiting = await eventually(async () => {
      const v = await volumeStatus(s, ref.namespace, cluster, 'data');
      assert.equal(v?.reason, 'EmergencyBudgetExhausted', `${v?.state ?? ''}/${v?.reason ?? ''}: ${v?.message ?? ''}`);
      return v;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    const resetsAt = waiting.budget?.budgetResetsAt;
    assert.equal(resetsAt === undefined ? undefined : new Date(resetsAt).getTime(), refillsAt.getTime(), 'budgetResetsAt');
    assert.ok(Date.now() < refillsAt.getTime(), 'still before the refill (a slow fill would make this scenario prove nothing)');
    assert.ok((await pvcSizes(s, ref.namespace, cluster, 'data')).every((p, i) => p.requested === before[i]?.requested), 'nothing patched before the refill');
    await waitForGrowth(s, ref, 'data', before[0]!.requested, { count: instances, timeoutMs: 300_000 });
    const grownAt = Date.now();
    assert.ok(grownAt >= refillsAt.getTime(), 'grown only once the budget refilled');
    const status = await volumeStatus(s, ref.namespace, cluster, 'data');
    assert.ok(status?.lastAction && new Date(status.lastAction.timestamp).getTime() >= refillsAt.getTime() - 1000, `the action is dated after the refill: ${status?.lastAction?.timestamp ?? ''}`);
    await setBudget(20);
    await waitForHealthy(s, ref.namespace, cluster, instances, 300_000);
  });

  it('primary failover during the resize: the operator promotes the replica, the resize completes once', async function () {
    const s = stack();
    const { actions } = await settled(s, ref);
    const before = await growAndHold(s, ref);
    const primary = await primaryOf(s, ref.namespace, cluster);
    await s.kubectl(['delete', 'pod', '-n', ref.namespace, primary, '--wait=false']);
    await eventually(async () => {
      const status = await clusterStatus(s, ref.namespace, cluster);
      assert.ok(status.currentPrimary && status.currentPrimary !== primary, `failed over from ${primary} (now ${status.currentPrimary ?? 'none'})`);
    }, { timeoutMs: 180_000, intervalMs: 1000 });
    await releaseAndSettle(s, ref, before, actions);
  });

  it('switchover during the resize (as kubectl cnpg promote): the resize completes once', async function () {
    const s = stack();
    const { actions } = await settled(s, ref);
    const before = await growAndHold(s, ref);
    const status = await clusterStatus(s, ref.namespace, cluster);
    const target = (status.instanceNames ?? []).find((n) => n !== status.currentPrimary);
    assert.ok(target, 'a replica to promote');
    await s.kubectl(['patch', 'cluster', '-n', ref.namespace, cluster, '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { targetPrimary: target, phase: 'Switchover in progress', phaseReason: `Switching over to ${target}` } })]);
    await eventually(async () => {
      assert.equal((await clusterStatus(s, ref.namespace, cluster)).currentPrimary, target, 'switched over');
    }, { timeoutMs: 300_000, intervalMs: 1000 });
    await releaseAndSettle(s, ref, before, actions);
  });

  it('rolling update during the resize (a parameter that needs a restart): the resize completes once', async function () {
    const s = stack();
    const { actions } = await settled(s, ref);
    const before = await growAndHold(s, ref);
    const pods = (await s.core.listNamespacedPod({ namespace: ref.namespace, labelSelector: `cnpg.io/cluster=${cluster},cnpg.io/podRole=instance` })).items;
    const started = new Map(pods.map((p) => [p.metadata?.name ?? '', p.status?.containerStatuses?.find((c) => c.name === 'postgres')?.state?.running?.startedAt?.getTime() ?? 0]));
    await s.kubectl(['patch', 'cluster', '-n', ref.namespace, cluster, '--type=merge', '-p',
      JSON.stringify({ spec: { postgresql: { parameters: { max_connections: '50' } } } })]);
    // The operator restarts every instance (replicas first, then the primary) while the resize waits.
    await eventually(async () => {
      const now = (await s.core.listNamespacedPod({ namespace: ref.namespace, labelSelector: `cnpg.io/cluster=${cluster},cnpg.io/podRole=instance` })).items;
      const restarted = now.filter((p) => {
        const at = p.status?.containerStatuses?.find((c) => c.name === 'postgres')?.state?.running?.startedAt?.getTime() ?? 0;
        return p.metadata?.uid !== pods.find((o) => o.metadata?.name === p.metadata?.name)?.metadata?.uid || at > (started.get(p.metadata?.name ?? '') ?? 0);
      });
      const primary = await primaryOf(s, ref.namespace, cluster);
      const setting = await s.kubectl(['exec', '-n', ref.namespace, primary, '-c', 'postgres', '--', 'psql', '-h', '/controller/run', '-Atc', 'SHOW max_connections']);
      assert.ok(restarted.length > 0 || setting.trim() === '50', 'the rolling update began');
    }, { timeoutMs: 300_000, intervalMs: 2000 });
    await releaseAndSettle(s, ref, before, actions);
    const primary = await primaryOf(s, ref.namespace, cluster);
    const setting = await s.kubectl(['exec', '-n', ref.namespace, primary, '-c', 'postgres', '--', 'psql', '-h', '/controller/run', '-Atc', 'SHOW max_connections']);
    assert.equal(setting.trim(), '50', 'the rolling update finished');
  });

  it("the Cluster's own spec.storage.size raised past our in-flight size: the operator grows the PVCs, ours completes, no action in answer", async function () {
    const s = stack();
    const { actions } = await settled(s, ref);
    await growAndHold(s, ref);
    const inFlight = (await pvcSizes(s, ref.namespace, cluster, 'data'))[0]!.requested;
    const larger = Math.ceil((inFlight + 32 * MiB) / MiB);
    await s.kubectl(['patch', 'cluster', '-n', ref.namespace, cluster, '--type=merge', '-p', JSON.stringify({ spec: { storage: { size: `${larger}Mi` } } })]);
    // The operator patches the PVCs up to its size itself (its resizeInUseVolumes default).
    await eventually(async () => {
      const pvcs = await pvcSizes(s, ref.namespace, cluster, 'data');
      assert.ok(pvcs.every((p) => p.requested === larger * MiB), `the operator asked for ${larger}Mi: ${JSON.stringify(pvcs)}`);
    }, { timeoutMs: 300_000, intervalMs: 1000 }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await operatorDiagnostics(s, ref.namespace, cluster)}`);
    });
    await clearCsiFaults(s);
    await waitForGrowth(s, ref, 'data', inFlight, { count: instances, timeoutMs: 300_000 });
    await waitForHealthy(s, ref.namespace, cluster, instances, 600_000);
    const status = await eventually(async () => {
      const v = await volumeStatus(s, ref.namespace, cluster, 'data');
      assert.equal(parseQuantity(v?.effectiveSize ?? '0', 'effectiveSize'), larger * MiB, `effectiveSize follows the operator (${v?.effectiveSize ?? ''})`);
      assert.notEqual(v?.lastAction?.result, 'Pending');
      return v;
    }, { timeoutMs: 120_000, intervalMs: 1000 }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await productDiagnostics(s, ref.namespace, cluster)}`);
    });
    assert.equal(status?.recentActions?.length, actions + 1, `no action of ours in answer to the operator's resize: ${JSON.stringify(status?.recentActions)}`);
  });

  it("the Cluster's own spec.storage.size raised to less than ours afterwards: the operator leaves the larger PVCs alone", async function () {
    const s = stack();
    const start = await settled(s, ref);
    const before = await growAndHold(s, ref);
    await releaseAndSettle(s, ref, before, start.actions);
    // Whatever grow usage called for after ours is done too: the size to keep is the one the product settled at.
    const { sizes, actions } = await settled(s, ref);
    const ours = sizes[0]!.requested;
    const smaller = Math.floor((ours - 8 * MiB) / MiB);
    assert.ok(smaller * MiB > before[0]!.requested, 'a size between the old and ours');
    await s.kubectl(['patch', 'cluster', '-n', ref.namespace, cluster, '--type=merge', '-p', JSON.stringify({ spec: { storage: { size: `${smaller}Mi` } } })]);
    // Give the operator several reconciles; it must not shrink (it cannot) nor fail the Cluster.
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    const after = await pvcSizes(s, ref.namespace, cluster, 'data');
    assert.ok(after.every((p) => p.requested === ours), `the PVCs keep our size: ${JSON.stringify(after)}`);
    await waitForHealthy(s, ref.namespace, cluster, instances, 120_000);
    assert.equal(await actionCount(s, ref), actions, 'no action of ours in answer');
  });
});

/**
 * The storage sizing status on Clusters of the real CloudNativePG operator (v1.30): a Cluster that opts in to the CNPG-I
 * plugin (`spec.plugins`) shows the compact block in `status.pluginStatus`, one that does not shows the condition
 * DynamicStorageReady and the annotation; both through a failover, a scale-up and a controller restart. Then the plugin
 * down for minutes: what the operator does with the Cluster that opts in, beside the one that does not, measured and
 * printed (docs/controller.md#opting-in-to-the-cnpg-i-plugin-and-its-trade-off).
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { MiB } from '../../../shared/quantity.ts';
import { clusterConditionType, readStatusAnnotation, storageSizingBlock, type PluginStatusBlock } from '../../../controller/cluster-status.ts';
import { cnpgiPluginName } from '../../../shared/cnpg.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { eventually } from '../../harness/eventually.ts';
import { removeTestStorageClass, testStorageClass } from '../../node/fixtures.ts';
import { clusterApi, clusterManifest, fillWithRows, primaryOf, waitForHealthy } from '../../node/postgres.ts';
import { dsApi, installProduct, systemNamespace, waitForProduct, type InstalledProduct } from '../../node/product.ts';
import { createNamespace, useRealStack, type RealStack } from '../../node/stack.ts';

const opted = 'pg-plugin';
const plain = 'pg-plain';
const size = 128 * MiB;

interface ClusterObject {
  metadata?: { annotations?: Record<string, string> };
  spec?: { instances?: number };
  status?: {
    phase?: string; phaseReason?: string; readyInstances?: number; currentPrimary?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
    pluginStatus?: { name: string; status?: string }[];
  };
}

describe('storage sizing status on Clusters of the real CloudNativePG operator', function () {
  this.timeout(600_000);
  const stack = useRealStack();
  let product: InstalledProduct | undefined;
  let namespace: { name: string; remove: () => Promise<void> } | undefined;
  const ns = (): string => namespace?.name ?? '';
  const custom = (s: RealStack): k8s.CustomObjectsApi => s.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const getCluster = async (s: RealStack, name: string): Promise<ClusterObject> => await custom(s).getNamespacedCustomObject({ ...clusterApi, namespace: ns(), name }) as ClusterObject;
  const getDs = async (s: RealStack, name: string): Promise<DynamicStorage> => await custom(s).getNamespacedCustomObject({ ...dsApi, namespace: ns(), name }) as DynamicStorage;

  before(async function () {
    this.timeout(30 * 60_000);
    const s = stack();
    product = await installProduct(s);
    const storageClass = await testStorageClass(s);
    namespace = await createNamespace(s, 'cluster-status');
    await waitForProduct(s);
    for (const name of [opted, plain]) {
      const manifest = clusterManifest({ namespace: ns(), name, instances: 2, storageClass, dataSize: `${size / MiB}Mi` });
      if (name === opted) (manifest.spec as Record<string, unknown>).plugins = [{ name: cnpgiPluginName }];
      await s.kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
      await custom(s).createNamespacedCustomObject({ ...dsApi, namespace: ns(), body: {
        apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
        spec: { cluster: { name }, storage: {
          request: `${size / MiB}Mi`, limit: `${(4 * size) / MiB}Mi`, targetBuffer: 20,
          emergencyGrow: { criticalMinimumFree: '6Mi' }, growth: { minimumStep: '16Mi' },
        } },
      } });
    }
    for (const name of [opted, plain]) await waitForHealthy(s, ns(), name, 2, 20 * 60_000);
  });

  after(async function () {
    this.timeout(600_000);
    const s = stack();
    await s.kubectl(['-n', systemNamespace, 'scale', 'deployment/cnpg-dynamic-storage-controller', '--replicas=2']).catch(() => undefined);
    await namespace?.remove();
    await product?.remove();
    await removeTestStorageClass(s);
  });

  /** The block the operator stored for the Cluster that opts in equals what the plugin builds from the DynamicStorage. */
  async function pluginBlockCurrent(s: RealStack, timeoutMs = 60_000): Promise<PluginStatusBlock> {
    return await eventually(async () => {
      const cluster = await getCluster(s, opted);
      const stored = cluster.status?.pluginStatus?.find((p) => p.name === cnpgiPluginName)?.status;
      assert.ok(stored, `no pluginStatus for ${cnpgiPluginName}: ${JSON.stringify(cluster.status?.pluginStatus)}`);
      const block = JSON.parse(stored) as PluginStatusBlock;
      assert.deepEqual(block, storageSizingBlock(opted, (await getDs(s, opted)).status?.storageSizing));
      return block;
    }, { timeoutMs, intervalMs: 1000 });
  }

  /** The Cluster that does not opt in carries the condition and the annotation, saying the same. */
  async function conditionCurrent(s: RealStack, timeoutMs = 60_000): Promise<void> {
    await eventually(async () => {
      const cluster = await getCluster(s, plain);
      const condition = cluster.status?.conditions?.find((c) => c.type === clusterConditionType);
      assert.ok(condition, `no ${clusterConditionType} among ${JSON.stringify(cluster.status?.conditions?.map((c) => c.type))}`);
      const annotation = readStatusAnnotation(cluster.metadata?.annotations);
      assert.deepEqual([annotation?.reason, annotation?.message], [condition.reason, condition.message]);
      assert.ok(cluster.status?.conditions?.some((c) => c.type === 'Ready'), 'the operator\'s own conditions are there too');
    }, { timeoutMs, intervalMs: 1000 });
  }

  /** Samples the condition for `ms`: how often it was missing while the operator wrote its status (churn). */
  async function conditionPresence(s: RealStack, ms: number): Promise<{ samples: number; missing: number }> {
    const result = { samples: 0, missing: 0 };
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 500))) {
      const cluster = await getCluster(s, plain);
      result.samples += 1;
      if (!cluster.status?.conditions?.some((c) => c.type === clusterConditionType)) result.missing += 1;
    }
    return result;
  }

  it('shows the block under status.pluginStatus on the Cluster that opts in, and the condition on the one that does not', async function () {
    const s = stack();
    const block = await pluginBlockCurrent(s);
    assert.ok(block.storageSizing.data?.effectiveSize, 'the data volume is in the block');
    await conditionCurrent(s);
    const optedCluster = await getCluster(s, opted);
    assert.ok(optedCluster.status?.conditions?.some((c) => c.type === clusterConditionType), 'the condition is written on both');
  });

  it('a change reaches pluginStatus within one reconcile of the operator', async function () {
    const s = stack();
    const before = JSON.stringify(await pluginBlockCurrent(s));
    await fillWithRows(s, ns(), await primaryOf(s, ns(), opted), { usedShare: 0.88 });
    await eventually(async () => {
      assert.notEqual(JSON.stringify(storageSizingBlock(opted, (await getDs(s, opted)).status?.storageSizing)), before);
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    const changedAt = Date.now();
    await pluginBlockCurrent(s, 30_000);
    console.log(JSON.stringify({ measured: 'pluginStatus caught up after a DynamicStorage change', ms: Date.now() - changedAt }));
  });

  it('keeps both through a failover', async function () {
    const s = stack();
    for (const name of [opted, plain]) {
      const primary = await primaryOf(s, ns(), name);
      await s.core.deleteNamespacedPod({ name: primary, namespace: ns() });
    }
    const churn = await conditionPresence(s, 60_000);
    console.log(JSON.stringify({ measured: 'condition presence during failover', ...churn }));
    for (const name of [opted, plain]) await waitForHealthy(s, ns(), name, 2, 300_000);
    await pluginBlockCurrent(s);
    await conditionCurrent(s);
  });

  it('keeps both through a scale-up (a new replica)', async function () {
    const s = stack();
    for (const name of [opted, plain]) {
      await custom(s).patchNamespacedCustomObject({ ...clusterApi, namespace: ns(), name, body: { spec: { instances: 3 } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    }
    const churn = await conditionPresence(s, 60_000);
    console.log(JSON.stringify({ measured: 'condition presence during scale-up', ...churn }));
    for (const name of [opted, plain]) await waitForHealthy(s, ns(), name, 3, 600_000);
    const block = await pluginBlockCurrent(s, 120_000);
    assert.equal(Object.keys(block.storageSizing.data?.actualSizes ?? {}).length, 3, 'the new replica is in the block');
    await conditionCurrent(s);
  });

  it('keeps both through a controller restart', async function () {
    const s = stack();
    await s.kubectl(['-n', systemNamespace, 'rollout', 'restart', 'deployment/cnpg-dynamic-storage-controller']);
    await s.kubectl(['-n', systemNamespace, 'rollout', 'status', 'deployment/cnpg-dynamic-storage-controller', '--timeout=180s']);
    await waitForProduct(s);
    await pluginBlockCurrent(s, 120_000);
    await conditionCurrent(s);
  });

  it('plugin down for minutes: measures what the operator does with the Cluster that opts in, beside the one that does not', async function () {
    this.timeout(20 * 60_000);
    const s = stack();
    const downMs = 3 * 60_000;
    await s.kubectl(['-n', systemNamespace, 'scale', 'deployment/cnpg-dynamic-storage-controller', '--replicas=0']);
    await eventually(async () => {
      const pods = await s.core.listNamespacedPod({ namespace: systemNamespace, labelSelector: 'app.kubernetes.io/name=cnpg-dynamic-storage-controller' });
      assert.equal(pods.items.length, 0);
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    const downAt = Date.now();
    // Something the operator must act on, in both Clusters: a replica pod deleted.
    const replicaOf = async (name: string): Promise<string> => {
      const cluster = await getCluster(s, name);
      const pods = await s.core.listNamespacedPod({ namespace: ns(), labelSelector: `cnpg.io/cluster=${name},cnpg.io/podRole=instance` });
      return pods.items.map((p) => p.metadata?.name ?? '').find((p) => p !== cluster.status?.currentPrimary) ?? '';
    };
    const recovered: Record<string, number | null> = { [opted]: null, [plain]: null };
    for (const name of [opted, plain]) await s.core.deleteNamespacedPod({ name: await replicaOf(name), namespace: ns() });
    const seen: Record<string, string[]> = { [opted]: [], [plain]: [] };
    const wentDown = new Set<string>();
    while (Date.now() - downAt < downMs) {
      for (const name of [opted, plain]) {
        const cluster = await getCluster(s, name);
        const phase = `${cluster.status?.phase ?? ''} / ${cluster.status?.phaseReason ?? ''} / ready ${cluster.status?.readyInstances ?? 0}`;
        if (seen[name]?.at(-1) !== phase) seen[name]?.push(phase);
        // Recovered: all instances ready again after the deleted replica was seen missing.
        const ready = cluster.status?.readyInstances === cluster.spec?.instances;
        if (!ready) wentDown.add(name);
        if (recovered[name] === null && ready && wentDown.has(name)) recovered[name] = Date.now() - downAt;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
    const events = await s.core.listNamespacedEvent({ namespace: ns(), fieldSelector: `involvedObject.name=${opted}` });
    console.log(JSON.stringify({
      measured: 'plugin down', downMs, recoveredWhileDownMs: recovered, phases: seen,
      optedEvents: events.items.slice(-10).map((e) => `${e.reason ?? ''}: ${e.message ?? ''}`),
    }, null, 2));
    assert.notEqual(recovered[plain], null, 'the Cluster that does not opt in is not affected by the plugin');

    const upAt = Date.now();
    await s.kubectl(['-n', systemNamespace, 'scale', 'deployment/cnpg-dynamic-storage-controller', '--replicas=2']);
    await waitForProduct(s);
    await waitForHealthy(s, ns(), opted, 3, 600_000);
    await pluginBlockCurrent(s, 180_000);
    console.log(JSON.stringify({ measured: 'plugin back: the Cluster that opts in healthy, its block current', ms: Date.now() - upAt }));
  });
});

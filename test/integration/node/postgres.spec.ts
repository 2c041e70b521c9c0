/**
 * The product with the real CloudNativePG operator and real PostgreSQL on the real node: a 3-instance Cluster with a WAL
 * volume and a tablespace, created by the operator (initdb, replicas cloned with pg_basebackup, PVCs of its own), filled
 * with real data (rows in the primary, WAL held by a replication slot), and grown by the product through Kubernetes' own
 * resize flow. Sentinel rows written first are read back with their checksum on every instance after each step.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import type { DynamicStorage, VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';
import { eventually } from '../../harness/eventually.ts';
import { removeTestStorageClass, testStorageClass } from '../../node/fixtures.ts';
import {
  clusterApi, clusterManifest, fillWal, fillWithRows, mountPaths, primaryOf, psql, releaseWal, verifySentinel, waitForHealthy,
  writeSentinel, type Sentinel,
} from '../../node/postgres.ts';
import { dsApi, installProduct, waitForProduct, type InstalledProduct } from '../../node/product.ts';
import { createNamespace, dfInPod, useRealStack, type RealStack } from '../../node/stack.ts';

const cluster = 'pg';
const tablespace = 'tbs1';
const sizes = { data: 128 * MiB, wal: 64 * MiB, tablespace: 64 * MiB } as const;
type Role = 'data' | 'wal' | 'tablespace';
const roleLabels: Record<Role, string> = {
  data: `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_DATA`,
  wal: `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_WAL`,
  tablespace: `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_TABLESPACE,cnpg.io/tablespaceName=${tablespace}`,
};

function volumePolicy(size: number): Record<string, unknown> {
  return {
    request: `${size / MiB}Mi`, limit: `${(4 * size) / MiB}Mi`, targetBuffer: 20,
    emergencyGrow: { criticalMinimumFree: '6Mi' }, growth: { minimumStep: '16Mi' },
  };
}

interface PvcSize { name: string; requested: number; capacity: number }

async function pvcSizes(stack: RealStack, namespace: string, role: Role): Promise<PvcSize[]> {
  const list = await stack.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: roleLabels[role] });
  return list.items.map((p) => ({
    name: p.metadata?.name ?? '',
    requested: parseQuantity(p.spec?.resources?.requests?.storage ?? '0', 'request'),
    capacity: parseQuantity(p.status?.capacity?.storage ?? '0', 'capacity'),
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/** Waits until every PVC of the role asks for and has more than `above` bytes (Kubernetes finished resizing). */
async function waitForGrowth(stack: RealStack, namespace: string, role: Role, above: number, count: number): Promise<PvcSize[]> {
  return eventually(async () => {
    const pvcs = await pvcSizes(stack, namespace, role);
    assert.equal(pvcs.length, count, `${role} PVCs`);
    assert.ok(pvcs.every((p) => p.requested > above && p.capacity >= p.requested), `every ${role} PVC grown past ${above}: ${JSON.stringify(pvcs)}`);
    assert.equal(new Set(pvcs.map((p) => p.requested)).size, 1, `${role} PVCs ask for one size: ${JSON.stringify(pvcs)}`);
    return pvcs;
  }, { timeoutMs: 240_000, intervalMs: 1000 });
}

async function roleStatus(stack: RealStack, namespace: string, role: Role): Promise<VolumeSizingStatus | undefined> {
  const custom = stack.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name: cluster }) as DynamicStorage;
  const sizing = object.status?.storageSizing;
  return role === 'data' ? sizing?.data : role === 'wal' ? sizing?.wal : sizing?.tablespaces?.[tablespace];
}

/** Every instance's filesystem for the role is larger than `above` bytes, seen from inside its (never restarted) pod. */
async function filesystemsGrown(stack: RealStack, namespace: string, mountPath: string, above: number): Promise<void> {
  const pods = (await stack.core.listNamespacedPod({ namespace, labelSelector: `cnpg.io/cluster=${cluster},cnpg.io/podRole=instance` })).items;
  for (const pod of pods) {
    await eventually(async () => {
      const df = await dfInPod(stack, namespace, pod.metadata?.name ?? '', mountPath);
      assert.ok(df.totalBytes > above, `${pod.metadata?.name ?? ''}: ${mountPath} is ${df.totalBytes} bytes`);
    }, { timeoutMs: 60_000, intervalMs: 1000 });
  }
}

describe('the product with the real CloudNativePG operator and PostgreSQL', function () {
  this.timeout(600_000);
  const stack = useRealStack();
  let product: InstalledProduct | undefined;
  let namespace: { name: string; remove: () => Promise<void> } | undefined;
  let sentinel: Sentinel | undefined;
  let instances = 3;

  before(async function () {
    this.timeout(30 * 60_000);
    const s = stack();
    product = await installProduct(s);
    const storageClass = await testStorageClass(s);
    namespace = await createNamespace(s, 'postgres');
    const ns = namespace.name;
    await s.kubectl(['apply', '-f', '-'], JSON.stringify(clusterManifest({
      namespace: ns, name: cluster, instances, storageClass, dataSize: `${sizes.data / MiB}Mi`, walSize: `${sizes.wal / MiB}Mi`,
      tablespaces: [{ name: tablespace, size: `${sizes.tablespace / MiB}Mi` }],
    })));
    await waitForProduct(s);
    await waitForHealthy(s, ns, cluster, instances, 20 * 60_000);
    const custom = s.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await custom.createNamespacedCustomObject({ ...dsApi, namespace: ns, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: cluster },
      spec: {
        cluster: { name: cluster },
        storage: volumePolicy(sizes.data),
        walStorage: volumePolicy(sizes.wal),
        tablespaces: [{ name: tablespace, storage: volumePolicy(sizes.tablespace) }],
      },
    } });
    sentinel = await writeSentinel(s, ns, await primaryOf(s, ns, cluster));
  });

  afterEach(async function () {
    // Nothing lost, on every instance, after every step (also a failed one: its cause shows first).
    if (this.currentTest?.state === 'passed' && namespace && sentinel) await verifySentinel(stack(), namespace.name, cluster, sentinel);
  });

  after(async function () {
    this.timeout(600_000);
    const s = stack();
    await namespace?.remove();
    await product?.remove();
    await removeTestStorageClass(s);
  });

  it('runs a 3-instance Cluster with WAL and a tablespace; the operator created every PVC, the product reads them all', async function () {
    const s = stack();
    const ns = namespace!.name;
    const owner = await s.kubeConfig.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({ ...clusterApi, namespace: ns, name: cluster }) as k8s.KubernetesObject;
    for (const role of ['data', 'wal', 'tablespace'] as const) {
      const pvcs = (await s.core.listNamespacedPersistentVolumeClaim({ namespace: ns, labelSelector: roleLabels[role] })).items;
      assert.equal(pvcs.length, instances, `${role} PVCs`);
      for (const pvc of pvcs) {
        assert.equal(pvc.metadata?.ownerReferences?.find((r) => r.controller)?.uid, owner.metadata?.uid, `${pvc.metadata?.name ?? ''} owned by the Cluster`);
      }
      // The agents' readings reached the controller for every instance: the volume has a settled, non-waiting state.
      await eventually(async () => {
        const status = await roleStatus(s, ns, role);
        assert.ok(status?.state && status.state !== 'WaitingForDiskStatus', `${role}: ${status?.state ?? 'no status'} ${status?.message ?? ''}`);
        assert.equal(status.actualSizes?.length ?? instances, instances);
      }, { timeoutMs: 120_000, intervalMs: 1000 });
    }
  });

  it('grows the data volume of every instance from rows inserted in the primary', async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    await fillWithRows(s, ns, primary, { usedShare: 0.88 });
    const grown = await waitForGrowth(s, ns, 'data', sizes.data, instances);
    await filesystemsGrown(s, ns, mountPaths.data, sizes.data);
    assert.ok(grown[0]!.requested <= 4 * sizes.data, 'within the limit');
    await waitForHealthy(s, ns, cluster, instances, 180_000);
  });

  it("grows the tablespace's volumes from a table created in it", async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    const dataBefore = await pvcSizes(s, ns, 'data');
    await fillWithRows(s, ns, primary, { usedShare: 0.88, tablespace });
    await waitForGrowth(s, ns, 'tablespace', sizes.tablespace, instances);
    await filesystemsGrown(s, ns, mountPaths.tablespace(tablespace), sizes.tablespace);
    assert.deepEqual((await pvcSizes(s, ns, 'data')).map((p) => p.requested), dataBefore.map((p) => p.requested), 'the data volumes did not move');
  });

  it('grows the WAL volumes from WAL that a replication slot holds', async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    try {
      await fillWal(s, ns, primary, 0.88);
      await waitForGrowth(s, ns, 'wal', sizes.wal, instances);
      await filesystemsGrown(s, ns, mountPaths.wal, sizes.wal);
    } finally {
      await releaseWal(s, ns, primary);
    }
    await waitForHealthy(s, ns, cluster, instances, 180_000);
  });

  it('WAL disk full: PostgreSQL stops with exit code 4, the product grows the disk at once, the instance comes back on its own', async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    const before = await pvcSizes(s, ns, 'wal');
    const restartsBefore = (await s.core.readNamespacedPod({ namespace: ns, name: primary })).status?.containerStatuses?.find((c) => c.name === 'postgres')?.restartCount ?? 0;
    // Something other than PostgreSQL takes the rest of the WAL disk; the next WAL write cannot be made.
    await s.kubectl(['exec', '-n', ns, primary, '-c', 'postgres', '--', 'sh', '-c', `dd if=/dev/zero of=${mountPaths.wal}/e2e-filler bs=1M 2>/dev/null; sync; df -P -B1 ${mountPaths.wal}`]);
    await psql(s, ns, primary, "CREATE TABLE wal_full_probe AS SELECT repeat(md5(random()::text), 32) AS payload FROM generate_series(1, 2000);").catch(() => undefined);
    try {
      const crashed = await eventually(async () => {
        const pod = await s.core.readNamespacedPod({ namespace: ns, name: primary });
        const postgres = pod.status?.containerStatuses?.find((c) => c.name === 'postgres');
        assert.ok((postgres?.restartCount ?? 0) > restartsBefore, `${primary} has not stopped yet`);
        return postgres?.lastState?.terminated?.exitCode;
      }, { timeoutMs: 120_000, intervalMs: 500 });
      assert.equal(crashed, 4, 'CloudNativePG reports a full WAL disk with exit code 4');
      const grown = await waitForGrowth(s, ns, 'wal', before[0]!.requested, instances);
      assert.equal((await roleStatus(s, ns, 'wal'))?.lastAction?.kind, 'EmergencyGrow');
      assert.ok(grown[0]!.requested > before[0]!.requested);
      await waitForHealthy(s, ns, cluster, instances, 10 * 60_000);
    } finally {
      await s.kubectl(['exec', '-n', ns, primary, '-c', 'postgres', '--', 'rm', '-f', `${mountPaths.wal}/e2e-filler`]).catch(() => undefined);
    }
  });

  it('creates a new replica at the grown sizes: the operator makes its PVCs, the webhook sizes them', async function () {
    const s = stack();
    const ns = namespace!.name;
    const effective: Partial<Record<Role, number>> = {};
    for (const role of ['data', 'wal', 'tablespace'] as const) {
      const status = await roleStatus(s, ns, role);
      effective[role] = parseQuantity(status?.effectiveSize ?? '0', 'effectiveSize');
      assert.ok(effective[role]! > sizes[role], `${role} effective size ${status?.effectiveSize ?? ''} is the grown one`);
    }
    instances = 4;
    await s.kubectl(['patch', 'cluster', '-n', ns, cluster, '--type=merge', '-p', JSON.stringify({ spec: { instances } })]);
    await waitForHealthy(s, ns, cluster, instances, 15 * 60_000);
    for (const role of ['data', 'wal', 'tablespace'] as const) {
      const pvcs = await pvcSizes(s, ns, role);
      assert.equal(pvcs.length, instances, `${role} PVCs`);
      assert.ok(pvcs.every((p) => p.requested === effective[role]), `every ${role} PVC at ${effective[role]}: ${JSON.stringify(pvcs)}`);
    }
  });
});

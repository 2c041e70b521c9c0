/**
 * The product with the real CloudNativePG operator and real PostgreSQL on the real node: a 3-instance Cluster with a WAL
 * volume and a tablespace, created by the operator (initdb, replicas cloned with pg_basebackup, PVCs of its own), filled
 * with real data (rows in the primary, WAL held by a replication slot), and grown by the product through Kubernetes' own
 * resize flow. Sentinel rows written first are read back with their checksum on every instance after each step.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';
import { eventually } from '../../harness/eventually.ts';
import { removeTestStorageClass, testStorageClass } from '../../node/fixtures.ts';
import {
  clusterApi, clusterManifest, fillWal, fillWithRows, filesystemsGrown, mountPaths, primaryOf, productDiagnostics, psql, pvcSizes, releaseWal,
  roleName, roleSelector, verifySentinel, volumeStatus, waitForGrowth, waitForHealthy, writeSentinel, type Role, type Sentinel,
} from '../../node/postgres.ts';
import { dsApi, installProduct, waitForProduct, type InstalledProduct } from '../../node/product.ts';
import { createNamespace, useRealStack } from '../../node/stack.ts';

const cluster = 'pg';
const tablespace = 'tbs1';
// WAL: room for what a bulk load of the data volume writes while checkpoints and archiving catch up (a 64Mi WAL volume
// filled during the data step and stopped PostgreSQL, before the 80 s a resize takes on this node; see docs/stack.md).
const sizes = { data: 128 * MiB, wal: 128 * MiB, tablespace: 64 * MiB } as const;
const tbs: Role = { tablespace };
// The limits: 4 times the request, and 16 times for WAL, which grows twice (the data step's bulk load writes WAL too, and
// planned growth sizes for the usage doubling) and then still needs room for the disk-full step's emergency grow.
const limits = { data: 4 * sizes.data, wal: 16 * sizes.wal, tablespace: 4 * sizes.tablespace } as const;
function volumePolicy(size: number, limit: number): Record<string, unknown> {
  return {
    request: `${size / MiB}Mi`, limit: `${limit / MiB}Mi`, targetBuffer: 20,
    emergencyGrow: { criticalMinimumFree: '6Mi' }, growth: { minimumStep: '16Mi' },
  };
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
        storage: volumePolicy(sizes.data, limits.data),
        walStorage: volumePolicy(sizes.wal, limits.wal),
        tablespaces: [{ name: tablespace, storage: volumePolicy(sizes.tablespace, limits.tablespace) }],
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
    for (const role of ['data', 'wal', tbs] as const) {
      const pvcs = (await s.core.listNamespacedPersistentVolumeClaim({ namespace: ns, labelSelector: roleSelector(cluster, role) })).items;
      assert.equal(pvcs.length, instances, `${roleName(role)} PVCs`);
      for (const pvc of pvcs) {
        assert.equal(pvc.metadata?.ownerReferences?.find((r) => r.controller)?.uid, owner.metadata?.uid, `${pvc.metadata?.name ?? ''} owned by the Cluster`);
      }
      // The agents' readings reached the controller for every instance: the volume has a settled, non-waiting state.
      await eventually(async () => {
        const status = await volumeStatus(s, ns, cluster, role);
        assert.ok(status?.state && status.state !== 'WaitingForDiskStatus', `${roleName(role)}: ${status?.state ?? 'no status'} ${status?.message ?? ''}`);
        assert.equal(status.actualSizes?.length ?? instances, instances);
      }, { timeoutMs: 120_000, intervalMs: 1000 });
    }
  });

  it('grows the data volume of every instance from rows inserted in the primary', async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    // 88%: past the 80% the buffer allows, short of the 95% critical threshold.
    await fillWithRows(s, ns, primary, { usedShare: 0.88 });
    const grown = await waitForGrowth(s, { namespace: ns, cluster }, 'data', sizes.data, { count: instances });
    await filesystemsGrown(s, ns, cluster, mountPaths.data, sizes.data);
    assert.ok(grown[0]!.requested <= limits.data, 'within the limit');
    await waitForHealthy(s, ns, cluster, instances, 180_000);
  });

  it("grows the tablespace's volumes from a table created in it", async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    const dataBefore = await pvcSizes(s, ns, cluster, 'data');
    await fillWithRows(s, ns, primary, { usedShare: 0.88, tablespace });
    await waitForGrowth(s, { namespace: ns, cluster }, tbs, sizes.tablespace, { count: instances });
    await filesystemsGrown(s, ns, cluster, mountPaths.tablespace(tablespace), sizes.tablespace);
    assert.deepEqual((await pvcSizes(s, ns, cluster, 'data')).map((p) => p.requested), dataBefore.map((p) => p.requested), 'the data volumes did not move');
  });

  it('grows the WAL volumes from WAL that a replication slot holds', async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    try {
      await fillWal(s, ns, primary, 0.88);
      await waitForGrowth(s, { namespace: ns, cluster }, 'wal', sizes.wal, { count: instances });
      await filesystemsGrown(s, ns, cluster, mountPaths.wal, sizes.wal);
    } finally {
      await releaseWal(s, ns, primary);
    }
    await waitForHealthy(s, ns, cluster, instances, 180_000);
  });

  it('WAL disk full: a WAL write fails, the product grows the disk as an emergency, the instance comes back on its own', async function () {
    const s = stack();
    const ns = namespace!.name;
    const primary = await primaryOf(s, ns, cluster);
    // Planned growth left due by the previous step would start now (there is no maintenance window) and race the fill.
    await eventually(async () => {
      const status = await volumeStatus(s, ns, cluster, 'wal');
      assert.equal(status?.state, 'Balanced', `WAL volume before the fill: ${status?.state ?? 'no status'} ${status?.message ?? ''}`);
    }, { timeoutMs: 300_000, intervalMs: 2000 });
    const before = await pvcSizes(s, ns, cluster, 'wal');
    if (!before.every((p) => p.requested < limits.wal)) {
      assert.fail(`no room below the WAL limit for an emergency grow: ${JSON.stringify(before)}\n${await productDiagnostics(s, ns, cluster)}`);
    }
    const restartsBefore = (await s.core.readNamespacedPod({ namespace: ns, name: primary })).status?.containerStatuses?.find((c) => c.name === 'postgres')?.restartCount ?? 0;
    // Status times are whole seconds.
    const since = Math.floor(Date.now() / 1000) * 1000;
    // Something other than PostgreSQL takes the rest of the WAL disk; the next WAL write cannot be made. Each call adds a
    // file, so that a disk grown meanwhile by planned growth is filled again.
    const fillWalDisk = (): Promise<string> => s.kubectl(['exec', '-n', ns, primary, '-c', 'postgres', '--', 'sh', '-c',
      `dd if=/dev/zero of=${mountPaths.wal}/e2e-filler-$(date +%s%N) bs=1M 2>/dev/null; sync; df -P -B1 ${mountPaths.wal}`]);
    await fillWalDisk();
    // WAL is written into recycled segment files first: write until PostgreSQL needs a new one and cannot make it.
    await psql(s, ns, primary, 'CREATE TABLE IF NOT EXISTS wal_full_probe (payload text);');
    let writeFailed = false;
    for (let round = 0; round < 100 && !writeFailed; round += 1) {
      writeFailed = await psql(s, ns, primary, "INSERT INTO wal_full_probe SELECT repeat(md5(random()::text), 32) FROM generate_series(1, 2000);")
        .then(() => false, () => true);
    }
    try {
      assert.ok(writeFailed, 'PostgreSQL kept writing WAL on a full disk');
      // The emergency: planned growth may still come first (usage passes the buffer before the disk is full, between two
      // readings); the disk it grew is then filled again until the emergency comes.
      const actions = await eventually(async () => {
        const status = await volumeStatus(s, ns, cluster, 'wal');
        const recent = (status?.recentActions ?? []).filter((a) => Date.parse(a.timestamp) >= since);
        if (!recent.some((a) => a.kind === 'EmergencyGrow') && status?.state !== 'Resizing') await fillWalDisk();
        assert.ok(recent.some((a) => a.kind === 'EmergencyGrow'), `no emergency since the disk filled: ${status?.state ?? ''} ${status?.message ?? ''} ${JSON.stringify(recent)}`);
        return recent;
      }, { timeoutMs: 300_000, intervalMs: 2000 });
      const grown = await waitForGrowth(s, { namespace: ns, cluster }, 'wal', before[0]!.requested, { count: instances });
      assert.ok(grown[0]!.requested > before[0]!.requested);
      // What PostgreSQL's container did meanwhile depends on timing: PostgreSQL may PANIC and be restarted inside the
      // container, CloudNativePG's instance manager exits with 4 when it still finds the disk full, and the product may
      // have grown the disk before either. Reported, not asserted (observed: exit 4, exit 0, no restart).
      const postgres = (await s.core.readNamespacedPod({ namespace: ns, name: primary })).status?.containerStatuses?.find((c) => c.name === 'postgres');
      process.stdout.write(`${JSON.stringify({ measured: 'WAL disk full', restarts: (postgres?.restartCount ?? 0) - restartsBefore, lastExit: postgres?.lastState?.terminated?.exitCode, actions: actions.map((a) => `${a.kind} ${a.from}->${a.to}`) })}\n`);
      await waitForHealthy(s, ns, cluster, instances, 10 * 60_000);
    } finally {
      await s.kubectl(['exec', '-n', ns, primary, '-c', 'postgres', '--', 'sh', '-c', `rm -f ${mountPaths.wal}/e2e-filler-*`]).catch(() => undefined);
    }
  });

  it('creates a new replica at the grown sizes: the operator makes its PVCs, the webhook sizes them', async function () {
    const s = stack();
    const ns = namespace!.name;
    const volumes = [['data', 'data', sizes.data], ['wal', 'wal', sizes.wal], ['tablespace', tbs, sizes.tablespace]] as const;
    const effective = new Map<string, number>();
    for (const [label, role, size] of volumes) {
      const status = await volumeStatus(s, ns, cluster, role);
      effective.set(label, parseQuantity(status?.effectiveSize ?? '0', 'effectiveSize'));
      assert.ok(effective.get(label)! > size, `${label} effective size ${status?.effectiveSize ?? ''} is the grown one`);
    }
    instances = 4;
    await s.kubectl(['patch', 'cluster', '-n', ns, cluster, '--type=merge', '-p', JSON.stringify({ spec: { instances } })]);
    await waitForHealthy(s, ns, cluster, instances, 15 * 60_000);
    for (const [label, role] of volumes) {
      const pvcs = await pvcSizes(s, ns, cluster, role);
      assert.equal(pvcs.length, instances, `${label} PVCs`);
      assert.ok(pvcs.every((p) => p.requested === effective.get(label)), `every ${label} PVC at ${effective.get(label)}: ${JSON.stringify(pvcs)}`);
    }
  });
});

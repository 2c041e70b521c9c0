/**
 * Real PostgreSQL Clusters of the real CloudNativePG operator on the stack (hack/cnpg/), and real data in them: rows
 * inserted through `psql` in the primary fill the data volume or a tablespace, WAL kept by a replication slot fills the
 * WAL volume, and sentinel rows with a checksum prove that nothing was lost, on every instance, through replication.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import type { DynamicStorage, VolumeSizingStatus } from '../../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity } from '../../shared/quantity.ts';
import { eventually } from '../harness/eventually.ts';
import { dsApi } from './product.ts';
import { dfInPod, type DfUsage, type RealStack } from './stack.ts';

export const clusterApi = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters' } as const;
/** Where CNPG mounts each volume in the instance's `postgres` container. */
export const mountPaths = {
  data: '/var/lib/postgresql/data',
  wal: '/var/lib/postgresql/wal',
  tablespace: (name: string): string => `/var/lib/postgresql/tablespaces/${name}`,
} as const;
/** CNPG's socket directory inside the instance. */
const socketDir = '/controller/run';

export interface PostgresClusterOptions {
  namespace: string;
  name: string;
  instances: number;
  storageClass: string;
  /** Sizes of the data, WAL and tablespace volumes (no WAL volume or tablespace when absent). */
  dataSize: string;
  walSize?: string;
  tablespaces?: { name: string; size: string }[];
}

/**
 * A Cluster sized for a test machine: 1 MiB WAL segments and a small WAL budget (so that MiB-scale volumes hold a
 * running PostgreSQL), small shared buffers; everything else CNPG's defaults.
 */
export function clusterManifest(options: PostgresClusterOptions): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    instances: options.instances,
    storage: { size: options.dataSize, storageClass: options.storageClass },
    bootstrap: { initdb: { database: 'app', owner: 'app', walSegmentSize: 1 } },
    postgresql: {
      parameters: {
        min_wal_size: '4MB', max_wal_size: '16MB', wal_keep_size: '0', shared_buffers: '16MB', max_connections: '40',
      },
    },
  };
  if (options.walSize) spec.walStorage = { size: options.walSize, storageClass: options.storageClass };
  if (options.tablespaces) {
    spec.tablespaces = options.tablespaces.map((t) => ({ name: t.name, storage: { size: t.size, storageClass: options.storageClass } }));
  }
  return { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: options.name, namespace: options.namespace }, spec };
}

export interface ClusterStatus {
  phase?: string;
  readyInstances?: number;
  instances?: number;
  currentPrimary?: string;
  targetPrimary?: string;
  instanceNames?: string[];
}

export async function clusterStatus(stack: RealStack, namespace: string, name: string): Promise<ClusterStatus> {
  const custom = stack.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const object = await custom.getNamespacedCustomObject({ ...clusterApi, namespace, name }) as { status?: ClusterStatus };
  return object.status ?? {};
}

/** Waits until the operator reports the Cluster healthy with every instance ready; returns its status. */
export async function waitForHealthy(stack: RealStack, namespace: string, name: string, instances: number, timeoutMs: number): Promise<ClusterStatus> {
  return eventually(async () => {
    const status = await clusterStatus(stack, namespace, name);
    assert.equal(status.readyInstances, instances, `ready instances of ${namespace}/${name} (${status.phase ?? 'no phase'})`);
    assert.equal(status.phase, 'Cluster in healthy state');
    assert.equal(status.currentPrimary, status.targetPrimary, 'no switchover in progress');
    return status;
  }, { timeoutMs, intervalMs: 2000 });
}

/** The current primary's pod name. */
export async function primaryOf(stack: RealStack, namespace: string, name: string): Promise<string> {
  const primary = (await clusterStatus(stack, namespace, name)).currentPrimary;
  assert.ok(primary, `${namespace}/${name} has a primary`);
  return primary;
}

/** Runs SQL through `psql` in an instance's postgres container, as the postgres user; returns the unaligned output. */
export async function psql(stack: RealStack, namespace: string, pod: string, sql: string, database = 'app'): Promise<string> {
  const out = await stack.kubectl(['exec', '-i', '-n', namespace, pod, '-c', 'postgres', '--',
    'psql', '-h', socketDir, '-d', database, '-v', 'ON_ERROR_STOP=1', '-X', '-q', '-A', '-t', '-f', '-'], sql);
  return out.trim();
}

export function dfInInstance(stack: RealStack, namespace: string, pod: string, mountPath: string): Promise<DfUsage> {
  return dfInPod(stack, namespace, pod, mountPath);
}

/** Rows of about 1 KiB of random text each: not compressed (below TOAST's threshold), so rows take real space. */
function insertRows(table: string, rows: number): string {
  return `INSERT INTO ${table} (payload) SELECT repeat(md5(random()::text), 32) FROM generate_series(1, ${rows});`;
}

export interface FillOptions {
  /**
   * The share of the filesystem to reach, 0..1, of its size when the fill began: a volume the product grows meanwhile
   * does not call for more rows (else each grow would be filled again, up to the limit).
   */
  usedShare: number;
  /** The tablespace to put the rows in (the data volume when absent). */
  tablespace?: string;
  /** At most this many MiB per statement (smaller steps land closer to the share). */
  stepMiB?: number;
  /** Stops early once this says so (checked before each statement): e.g. once the product patched the PVCs. */
  until?: () => Promise<boolean>;
}

/**
 * Inserts rows in the primary until the volume holding them (data, or the tablespace's) holds `usedShare` of its
 * starting size by `df` in the primary's pod; returns the last `df`.
 */
export async function fillWithRows(stack: RealStack, namespace: string, primary: string, options: FillOptions): Promise<DfUsage> {
  const table = options.tablespace ? `fill_${options.tablespace.replace(/\W/g, '_')}` : 'fill_data';
  const mountPath = options.tablespace ? mountPaths.tablespace(options.tablespace) : mountPaths.data;
  const where = options.tablespace ? ` TABLESPACE ${options.tablespace}` : '';
  await psql(stack, namespace, primary, `CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, payload text)${where};`);
  const targetBytes = (await dfInPod(stack, namespace, primary, mountPath)).totalBytes * options.usedShare;
  for (;;) {
    const df = await dfInPod(stack, namespace, primary, mountPath);
    const missing = targetBytes - df.usedBytes;
    if (missing <= 0 || (await options.until?.()) === true) return df;
    // About 1.2 KiB on disk per row with its index entry; never more than the step.
    const bytes = Math.min(missing, (options.stepMiB ?? 8) * MiB);
    await psql(stack, namespace, primary, `${insertRows(table, Math.max(100, Math.ceil(bytes / 1230)))} CHECKPOINT;`);
  }
}

/**
 * Generates WAL in the primary while a physical replication slot holds it (as a stuck archiver or a lagging consumer
 * would), until the WAL volume holds `usedShare` of its starting size; the data written is truncated again each round.
 */
export async function fillWal(stack: RealStack, namespace: string, primary: string, usedShare: number): Promise<DfUsage> {
  await psql(stack, namespace, primary, `
    SELECT pg_create_physical_replication_slot('e2e_hold_wal', true)
      WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'e2e_hold_wal');
    CREATE TABLE IF NOT EXISTS fill_wal (id bigserial PRIMARY KEY, payload text);`);
  const targetBytes = (await dfInPod(stack, namespace, primary, mountPaths.wal)).totalBytes * usedShare;
  for (;;) {
    const df = await dfInPod(stack, namespace, primary, mountPaths.wal);
    const missing = targetBytes - df.usedBytes;
    if (missing <= 0) return df;
    const rows = Math.max(100, Math.ceil(Math.min(missing, 4 * MiB) / 1100));
    await psql(stack, namespace, primary, `${insertRows('fill_wal', rows)} TRUNCATE fill_wal; SELECT pg_switch_wal();`);
  }
}

/** Drops the WAL-holding slot: PostgreSQL recycles the WAL at its next checkpoint. */
export async function releaseWal(stack: RealStack, namespace: string, primary: string): Promise<void> {
  await psql(stack, namespace, primary, `
    SELECT pg_drop_replication_slot('e2e_hold_wal') WHERE EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'e2e_hold_wal');
    CHECKPOINT;`);
}

export interface Sentinel {
  rows: number;
  checksum: string;
}

const sentinelChecksum = "SELECT count(*) || ' ' || md5(string_agg(id::text || ':' || payload, ',' ORDER BY id)) FROM e2e_sentinel";

/** Writes sentinel rows in the primary and returns their count and checksum. */
export async function writeSentinel(stack: RealStack, namespace: string, primary: string, rows = 500): Promise<Sentinel> {
  const out = await psql(stack, namespace, primary, `
    CREATE TABLE IF NOT EXISTS e2e_sentinel (id int PRIMARY KEY, payload text NOT NULL);
    INSERT INTO e2e_sentinel SELECT g, md5(g::text || random()::text) FROM generate_series(1, ${rows}) g ON CONFLICT DO NOTHING;
    ${sentinelChecksum};`);
  const [count, checksum] = out.split(' ');
  assert.ok(count && checksum, `sentinel written: ${out}`);
  return { rows: Number(count), checksum };
}

/** Every instance of the Cluster reads the sentinel back with the same checksum (replicas once replication caught up). */
export async function verifySentinel(stack: RealStack, namespace: string, cluster: string, sentinel: Sentinel, timeoutMs = 120_000): Promise<void> {
  const pods = (await stack.core.listNamespacedPod({ namespace, labelSelector: `cnpg.io/cluster=${cluster},cnpg.io/podRole=instance` })).items;
  assert.ok(pods.length > 0, `instances of ${namespace}/${cluster}`);
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    await eventually(async () => {
      const out = await psql(stack, namespace, name, `${sentinelChecksum};`);
      assert.equal(out, `${sentinel.rows} ${sentinel.checksum}`, `sentinel on ${name}`);
    }, { timeoutMs, intervalMs: 1000 });
  }
}

/** A logical volume of a Cluster: data, WAL, or one tablespace. */
export type Role = 'data' | 'wal' | { tablespace: string };

export function roleName(role: Role): string {
  return typeof role === 'string' ? role : `tablespace ${role.tablespace}`;
}

export function roleSelector(cluster: string, role: Role): string {
  if (role === 'data') return `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_DATA`;
  if (role === 'wal') return `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_WAL`;
  return `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_TABLESPACE,cnpg.io/tablespaceName=${role.tablespace}`;
}

export interface PvcSize { name: string; requested: number; capacity: number }

export async function pvcSizes(stack: RealStack, namespace: string, cluster: string, role: Role): Promise<PvcSize[]> {
  const list = await stack.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: roleSelector(cluster, role) });
  return list.items.map((p) => ({
    name: p.metadata?.name ?? '',
    requested: parseQuantity(p.spec?.resources?.requests?.storage ?? '0', 'request'),
    capacity: parseQuantity(p.status?.capacity?.storage ?? '0', 'capacity'),
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/** A Cluster by namespace and name. */
export interface ClusterRef { namespace: string; cluster: string }

/** Waits until `count` PVCs of the role all ask for and have one size above `above` bytes (the resize finished). */
export async function waitForGrowth(stack: RealStack, ref: ClusterRef, role: Role, above: number, options: { count: number; timeoutMs?: number }): Promise<PvcSize[]> {
  const { namespace, cluster } = ref;
  const { count, timeoutMs = 240_000 } = options;
  return eventually(async () => {
    const pvcs = await pvcSizes(stack, namespace, cluster, role);
    assert.equal(pvcs.length, count, `${roleName(role)} PVCs`);
    assert.ok(pvcs.every((p) => p.requested > above && p.capacity >= p.requested), `every ${roleName(role)} PVC grown past ${above}: ${JSON.stringify(pvcs)}`);
    assert.equal(new Set(pvcs.map((p) => p.requested)).size, 1, `${roleName(role)} PVCs ask for one size: ${JSON.stringify(pvcs)}`);
    return pvcs;
  }, { timeoutMs, intervalMs: 1000 });
}

/** The DynamicStorage status of one logical volume (the DynamicStorage is named after the Cluster). */
export async function volumeStatus(stack: RealStack, namespace: string, cluster: string, role: Role): Promise<VolumeSizingStatus | undefined> {
  const custom = stack.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name: cluster }) as DynamicStorage;
  const sizing = object.status?.storageSizing;
  if (role === 'data') return sizing?.data;
  if (role === 'wal') return sizing?.wal;
  return sizing?.tablespaces?.[role.tablespace];
}

/** Every instance pod's filesystem at `mountPath` is larger than `above` bytes, seen from inside the pod. */
export async function filesystemsGrown(stack: RealStack, namespace: string, cluster: string, mountPath: string, above: number): Promise<void> {
  const pods = (await stack.core.listNamespacedPod({ namespace, labelSelector: `cnpg.io/cluster=${cluster},cnpg.io/podRole=instance` })).items;
  for (const pod of pods) {
    await eventually(async () => {
      const df = await dfInPod(stack, namespace, pod.metadata?.name ?? '', mountPath);
      assert.ok(df.totalBytes > above, `${pod.metadata?.name ?? ''}: ${mountPath} is ${df.totalBytes} bytes`);
    }, { timeoutMs: 60_000, intervalMs: 1000 });
  }
}

/** The operator's log lines about a namespace, and the Cluster's phase: what to show when the operator did not act. */
export async function operatorDiagnostics(stack: RealStack, namespace: string, cluster: string, lines = 25): Promise<string> {
  const status = await clusterStatus(stack, namespace, cluster).catch(() => ({}));
  const log = await stack.kubectl(['logs', '-n', 'cnpg-system', 'deployment/cnpg-controller-manager', '--since=10m']).catch((err: unknown) => String(err));
  const mine = log.split('\n').filter((l) => l.includes(`"namespace":"${namespace}"`) && !l.includes('Defaulting for') && !l.includes('Validating'));
  return `cluster ${namespace}/${cluster}: ${JSON.stringify(status)}\noperator:\n${mine.slice(-lines).map((l) => l.slice(0, 400)).join('\n')}`;
}

/** The product's view of a Cluster: its DynamicStorage status and the Events it recorded, for a failure's message. */
export async function productDiagnostics(stack: RealStack, namespace: string, cluster: string): Promise<string> {
  const custom = stack.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name: cluster }).catch((err: unknown) => String(err)) as DynamicStorage | string;
  const events = await stack.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Cluster,involvedObject.name=${cluster}` })
    .then((list) => list.items.map((e) => `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`), (err: unknown) => [String(err)]);
  return `status: ${JSON.stringify(typeof object === 'string' ? object : object.status?.storageSizing)}\nevents:\n${events.join('\n')}`;
}

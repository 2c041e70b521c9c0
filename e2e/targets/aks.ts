/**
 * A real AKS cluster as an end-to-end target (`E2E_TARGET=aks`, the cluster of `KUBECONFIG`), with CloudNativePG and the
 * product installed (e2e/run-aks-e2e.sh does both). Everything goes through the Kubernetes API, and through `kubectl`
 * where that is simpler: `kubectl exec` into the instances for psql and statfs, `kubectl port-forward` for the agents'
 * metrics.
 *
 * - Volumes fill with rows of a table written on the primary (1 MiB each, stored uncompressed), a table in the
 *   tablespace for tablespaces, and WAL records (`pg_logical_emit_message`) held back by a physical replication slot
 *   for WAL; usage is read with `stat -f` in the instance's pod.
 * - Sentinels are tables of rows whose checksum is read back on every instance.
 * - Sizes are whole GiB on `managed-csi-premium`: one scenario unit is 128Mi, so the 64-unit volumes are 8Gi.
 * - Faults: Azure cannot be told to refuse an expansion or to stop growing at a chosen size; its own expansion latency
 *   (tens of seconds) holds a resize in flight; ResourceQuotas and drains are real.
 * - The clock cannot move: window scenarios wait in real time.
 */
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as k8s from '@kubernetes/client-node';
import { agentAudience } from '../../controller/agent-token.ts';
import { formatQuantity, GiB, MiB, parseQuantity } from '../../shared/quantity.ts';
import { eventually } from '../../test/harness/eventually.ts';
import {
  supported, unsupported, type ClockControl, type ClusterShape, type FaultControls, type InstanceVolume, type Role, type Sentinels, type TargetDriver, type TargetSettings,
  type TargetSizes, type TargetTimeouts, type Undo, type Usage,
} from './index.ts';
import { scrape } from './metrics.ts';

export const aksSizes: TargetSizes = { unit: GiB / 8, storageClass: 'managed-csi-premium', allocationUnit: GiB, boundaryStorageClass: supported('managed-csi') };

/**
 * Filling an 8Gi Premium SSD through PostgreSQL takes minutes (a P2 disk writes 25 MB/s, bursting to 170 MB/s, and WAL
 * doubles what is written), Azure expands a disk in tens of seconds: the fill is inside the emergency and window times.
 */
export const aksTimeouts: TargetTimeouts = {
  clusterReadyMs: 15 * 60_000, resizeMs: 10 * 60_000, stateMs: 5 * 60_000, emergencyGrowMs: 20 * 60_000, podMs: 10 * 60_000, quietMs: 20_000,
  windowLeadMs: 30 * 60_000,
};

export const productNamespace = 'cnpg-system';
export const controllerDeployment = 'cnpg-dynamic-storage-controller';
export const agentSelector = 'app.kubernetes.io/name=cnpg-dynamic-storage-agent';
/** The Secret with the CA and certificate of the agents' HTTPS endpoint, kept by the controller. */
export const agentTlsSecret = 'cnpg-dynamic-storage-agent-tls';
export const cnpgApi = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters' } as const;
/** CNPG's phase of a healthy Cluster. */
export const healthyPhase = 'Cluster in healthy state';
export const walSlot = 'e2e_hold_wal';
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

// ---------------------------------------------------------------------------------------------------------------------
// What the driver runs, as pure functions (unit-tested without a cluster)

/** What a target changes in the scenarios' Clusters so that PostgreSQL fits its volumes (the real node's are MiB-scale). */
export interface ClusterTuning {
  /** PostgreSQL parameters added to the Cluster's. */
  parameters?: Record<string, string>;
  /** initdb's WAL segment size in MiB (`bootstrap.initdb.walSegmentSize`). */
  walSegmentSizeMiB?: number;
  /**
   * Always give WAL a volume of its own (unmanaged unless the scenario asks for it): on MiB-scale volumes a data volume
   * filled to 97% has less room than one WAL segment, and PostgreSQL stops when it cannot write WAL.
   */
  walVolume?: boolean;
  /**
   * The size of that WAL volume when the scenario does not manage it, as a multiple of the data volume's: room for the WAL
   * of a bulk load of the whole data volume (default 1).
   */
  walVolumeSizeFactor?: number;
}

/** A CNPG Cluster for a scenario shape. */
export function clusterManifest(namespace: string, name: string, shape: ClusterShape, tuning: ClusterTuning = {}): Record<string, unknown> {
  const storage = { size: shape.size, storageClass: shape.storageClass };
  const spec: Record<string, unknown> = {
    instances: shape.instances,
    storage,
    // A slot holds WAL back for the WAL scenarios: no cap on what it may keep.
    postgresql: { parameters: { max_slot_wal_keep_size: '-1', ...tuning.parameters } },
  };
  if (tuning.walSegmentSizeMiB !== undefined) spec.bootstrap = { initdb: { database: 'app', owner: 'app', walSegmentSize: tuning.walSegmentSizeMiB } };
  if (shape.walStorage) spec.walStorage = { ...storage };
  else if (tuning.walVolume === true) spec.walStorage = { ...storage, size: formatQuantity(parseQuantity(shape.size) * (tuning.walVolumeSizeFactor ?? 1)) };
  if (shape.tablespaces.length > 0) spec.tablespaces = shape.tablespaces.map((t) => ({ name: t, storage: { ...storage } }));
  return { apiVersion: `${cnpgApi.group}/${cnpgApi.version}`, kind: 'Cluster', metadata: { name, namespace }, spec };
}

/** Where CNPG mounts each kind of volume in an instance pod. */
export function mountPath(role: Role): string {
  if (role === 'data') return '/var/lib/postgresql/data';
  if (role === 'wal') return '/var/lib/postgresql/wal';
  return `/var/lib/postgresql/tablespaces/${role.tablespace}`;
}

/** `kubectl exec` into an instance's postgres container. */
export function execArgs(namespace: string, pod: string, command: readonly string[]): string[] {
  return ['exec', '-n', namespace, pod, '-c', 'postgres', '--', ...command];
}

/** psql as the superuser over the local socket, in the app database; stops on the first error, prints bare values. */
export function psqlArgs(namespace: string, pod: string, sql: string): string[] {
  return execArgs(namespace, pod, ['psql', '-U', 'postgres', '-d', 'app', '-v', 'ON_ERROR_STOP=1', '-qAtX', '-c', sql]);
}

/** statfs of a mount point: fundamental block size, blocks, free blocks, blocks available to users. */
export function statfsArgs(namespace: string, pod: string, path: string): string[] {
  return execArgs(namespace, pod, ['stat', '-f', '-c', '%S %b %f %a', path]);
}

export function parseStatfs(output: string): Usage {
  const fields = output.trim().split(/\s+/).map(Number);
  const [blockSize, blocks, free, available] = fields;
  if (fields.length !== 4 || fields.some((n) => !Number.isFinite(n)) || blockSize === undefined || blocks === undefined || free === undefined || available === undefined) {
    throw new Error(`unexpected stat -f output: ${JSON.stringify(output)}`);
  }
  const used = (blocks - free) * blockSize;
  const availableBytes = available * blockSize;
  const denominator = used + availableBytes;
  return { sizeBytes: blocks * blockSize, usedBytes: used, availableBytes, usedPercent: denominator === 0 ? 0 : (used / denominator) * 100 };
}

/** An SQL identifier of lower-case letters, digits and underscores made from any name. */
export function identifier(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** A double-quoted SQL identifier (tablespace names as the Cluster spells them). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The table a fill of this role writes to (an unlogged one apart: a table cannot change kind by IF NOT EXISTS). */
export function fillTable(role: Role, unlogged = false): string {
  const table = typeof role === 'string' ? 'e2e_fill_data' : `e2e_fill_tbs_${identifier(role.tablespace)}`;
  return unlogged ? `${table}_unlogged` : table;
}

/**
 * SQL writing `mib` MiB to a volume: 1 MiB rows stored without compression (data, tablespace), or WAL records kept by a
 * physical replication slot (WAL). `unlogged`: rows that write no WAL and stay on the primary — a tablespace filled on
 * the primary alone, so that its load does not also fill the WAL volume (every instance's PVC follows the fullest one).
 */
export function fillSql(role: Role, mib: number, unlogged = false): string {
  if (!Number.isSafeInteger(mib) || mib <= 0) throw new RangeError(`fillSql: a positive whole number of MiB, got ${mib}`);
  const row = 'repeat(md5(g::text), 32768)';
  if (role === 'wal') {
    return `SELECT pg_create_physical_replication_slot('${walSlot}', true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '${walSlot}');`
      + ` SELECT count(pg_logical_emit_message(false, 'e2e-fill', ${row})) FROM generate_series(1, ${mib}) g;`;
  }
  const table = fillTable(role, unlogged);
  const tablespace = typeof role === 'string' ? '' : ` TABLESPACE ${quoteIdent(role.tablespace)}`;
  return `CREATE ${unlogged ? 'UNLOGGED ' : ''}TABLE IF NOT EXISTS ${table} (id bigserial, payload text)${tablespace};`
    + ` ALTER TABLE ${table} ALTER COLUMN payload SET STORAGE EXTERNAL;`
    + ` INSERT INTO ${table} (payload) SELECT ${row} FROM generate_series(1, ${mib}) g; CHECKPOINT;`;
}

/** SQL giving back what fills of this role wrote. */
export function freeSql(role: Role): string {
  if (role === 'wal') return `SELECT pg_drop_replication_slot('${walSlot}') FROM pg_replication_slots WHERE slot_name = '${walSlot}'; CHECKPOINT;`;
  return `DROP TABLE IF EXISTS ${fillTable(role)}, ${fillTable(role, true)}; CHECKPOINT;`;
}

/**
 * How many MiB to write next to bring `usage` to `percent`. Rows also write as much WAL, kept until the checkpoint that
 * ends the round (and while a lagging replica has not replayed it):
 * - WAL on the same volume (`walRoomBytes` undefined): half the gap (at least 1 MiB), so a round never takes the volume
 *   past the target, even for a moment; the rounds stop within half a point of the target;
 * - WAL on a volume of its own: the whole gap in one round, as far as the WAL volume has room (`walRoomBytes`), so the
 *   fill is one step, as a bulk load is, and the WAL volume is not the one that fills.
 */
export function nextFillMiB(usage: Usage, percent: number, walRoomBytes?: number): number {
  const total = usage.usedBytes + usage.availableBytes;
  const gap = Math.floor((percent / 100) * total) - usage.usedBytes;
  if (gap <= 0) return 0;
  if (walRoomBytes === undefined) return Math.max(1, Math.floor(gap / 2 / MiB));
  return Math.max(1, Math.floor(Math.min(gap, walRoomBytes) / MiB));
}

/**
 * What a round may write while WAL has a volume of its own: half of that volume, less what it holds, so the WAL of a
 * round (kept until its checkpoint, and by a lagging replica's slot) stays below the buffer of a managed WAL volume.
 */
export function walRoomBytes(wal: Usage): number {
  return Math.max(0, 0.5 * (wal.usedBytes + wal.availableBytes) - wal.usedBytes);
}

/** The sentinel table of a volume (the data volume: no tablespace). */
export function sentinelTable(tablespace: string | undefined): string {
  return tablespace === undefined ? 'e2e_sentinel' : `e2e_sentinel_${identifier(tablespace)}`;
}

export function sentinelWriteSql(tablespace: string | undefined): string {
  const table = sentinelTable(tablespace);
  const where = tablespace === undefined ? '' : ` TABLESPACE ${quoteIdent(tablespace)}`;
  return `CREATE TABLE ${table} (id int PRIMARY KEY, payload text)${where};`
    + ` INSERT INTO ${table} SELECT g, md5(random()::text) FROM generate_series(1, 1000) g;`
    + ` ${sentinelChecksumSql(tablespace)}`;
}

export function sentinelChecksumSql(tablespace: string | undefined): string {
  return `SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM ${sentinelTable(tablespace)};`;
}

/** What `kubectl cnpg promote` writes: the Cluster's status asks CNPG to switch over to `instance`. */
export function switchoverPatch(instance: string, now: Date): Record<string, unknown> {
  return { status: { targetPrimary: instance, targetPrimaryTimestamp: now.toISOString(), phase: 'Switchover in progress', phaseReason: `Switching over to ${instance}` } };
}

/** The pod of the controller that holds the lease (the identity is `<pod name>_<suffix>`). */
export function leaderPod(holderIdentity: string | undefined): string | undefined {
  if (!holderIdentity) return undefined;
  const cut = holderIdentity.lastIndexOf('_');
  return cut > 0 ? holderIdentity.slice(0, cut) : holderIdentity;
}

/** kubectl exec failures that end once the instance is running again (as opposed to an SQL error or a bad command). */
export function transientExecError(message: string): boolean {
  return /container not found|unable to upgrade connection|error executing setns process|is the server running|the database system is (starting up|shutting down|in recovery mode)|pod does not exist|not found \("postgres"\)|container .* is not running|No such container/i.test(message);
}

/** The local port in `kubectl port-forward`'s first line ("Forwarding from 127.0.0.1:41234 -> 9100"). */
export function parseForwardedPort(line: string): number | undefined {
  const match = /Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(line);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

// ---------------------------------------------------------------------------------------------------------------------
// Running commands

/** The environment of `kubectl`: the suite's, with the target's kubeconfig. */
export function commandEnv(settings: TargetSettings): Record<string, string | undefined> {
  return settings.kubeconfig === undefined ? { ...settings.commandEnv } : { ...settings.commandEnv, KUBECONFIG: settings.kubeconfig };
}

export type Run = (command: string, args: readonly string[]) => Promise<string>;

/** Runs a command and returns its stdout; fails with its stderr. */
export function runCommand(env: Readonly<Record<string, string | undefined>>): Run {
  return (command, args) => new Promise((resolve, reject) => {
    execFile(command, [...args], { env, maxBuffer: 64 * MiB, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// The driver

interface CnpgCluster {
  spec?: { instances?: number; tablespaces?: { name: string }[]; walStorage?: { size?: string } };
  status?: { phase?: string; readyInstances?: number; currentPrimary?: string };
}

/**
 * What sets a real cluster target apart: its name, sizes, timeouts, the faults it can inject beyond a ResourceQuota, the
 * Clusters' tuning and its filesystems. AKS and the real node share everything else (the API, kubectl, psql).
 */
export interface RealTargetProfile {
  readonly name: 'aks' | 'node';
  readonly sizes: TargetSizes;
  readonly timeouts: TargetTimeouts;
  readonly latency: FaultControls['latency'];
  readonly infeasible: FaultControls['infeasible'];
  readonly growthBoundary: FaultControls['growthBoundary'];
  readonly tuning: ClusterTuning;
  readonly filesystemWithoutReserve: boolean;
  filesystemRange(diskBytes: number): { min: number; max: number };
  /** Run when the driver stops, after its namespaces are gone (the real node uninstalls the product). */
  readonly onStop?: () => Promise<void>;
}

export const aksProfile: RealTargetProfile = {
  name: 'aks',
  sizes: aksSizes,
  timeouts: aksTimeouts,
  // Azure takes tens of seconds to expand a disk: every resize is in flight long enough to interrupt it.
  latency: supported((_ms: number): Promise<Undo> => Promise.resolve(() => Promise.resolve())),
  infeasible: unsupported<(namespace: string) => Promise<Undo>>('Azure Disk cannot be told to refuse an expansion; the only infeasible size is one above 32,767 GiB, which the controller asks for only with terabytes of data'),
  growthBoundary: unsupported<(bytes: number) => Promise<Undo>>('Azure\'s growth boundary of attached disks is fixed at 4 TiB (covered by the 4 TiB scenario); it cannot be set lower'),
  tuning: {},
  filesystemWithoutReserve: false,
  // ext4 on an Azure disk: its metadata and journal take a few percent.
  filesystemRange: (diskBytes: number) => ({ min: Math.floor(diskBytes * 0.9), max: diskBytes }),
};

class RealClusterTarget implements TargetDriver {
  readonly name: 'aks' | 'node';
  readonly core: k8s.CoreV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly coordination: k8s.CoordinationV1Api;
  readonly sizes: TargetSizes;
  readonly timeouts: TargetTimeouts;
  readonly filesystemWithoutReserve: boolean;
  readonly clock = unsupported<ClockControl>('the controller on a real cluster runs on the real clock');
  readonly faults: FaultControls;
  readonly drain;
  private readonly profile: RealTargetProfile;
  private readonly kubectl: (args: readonly string[]) => Promise<string>;
  private readonly kubectlEnv: Record<string, string | undefined>;
  private readonly namespaces: string[] = [];

  constructor(kc: k8s.KubeConfig, settings: TargetSettings, run: Run, profile: RealTargetProfile) {
    this.profile = profile;
    this.name = profile.name;
    this.sizes = profile.sizes;
    this.timeouts = profile.timeouts;
    this.filesystemWithoutReserve = profile.filesystemWithoutReserve;
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    this.kubectlEnv = commandEnv(settings);
    this.kubectl = (args) => run('kubectl', args);
    this.faults = {
      latency: profile.latency,
      infeasible: profile.infeasible,
      growthBoundary: profile.growthBoundary,
      quota: supported((namespace: string, hard: string) => this.limitStorage(namespace, hard)),
    };
    this.drain = supported((namespace: string, pod: string) => this.cordonAndEvict(namespace, pod));
  }

  // Clusters -----------------------------------------------------------------------------------------------------------

  async createNamespace(prefix: string): Promise<string> {
    const created = await this.core.createNamespace({ body: { metadata: { generateName: `${prefix}-`, labels: { 'cnpg-ds-e2e': 'true' } } } });
    const name = created.metadata?.name ?? '';
    this.namespaces.push(name);
    await eventually(() => this.core.readNamespacedServiceAccount({ name: 'default', namespace: name }), { timeoutMs: 60_000, intervalMs: 500 });
    return name;
  }

  async createCluster(namespace: string, name: string, shape: ClusterShape): Promise<void> {
    await this.custom.createNamespacedCustomObject({ ...cnpgApi, namespace, body: clusterManifest(namespace, name, shape, this.profile.tuning) });
    await this.waitForReady(namespace, name);
  }

  private async cluster(namespace: string, name: string): Promise<CnpgCluster> {
    return await this.custom.getNamespacedCustomObject({ ...cnpgApi, namespace, name }) as CnpgCluster;
  }

  async waitForReady(namespace: string, name: string): Promise<void> {
    await eventually(async () => {
      const cluster = await this.cluster(namespace, name);
      if (cluster.status?.phase !== healthyPhase || cluster.status.readyInstances !== cluster.spec?.instances) {
        throw new Error(`cluster ${namespace}/${name} not ready: ${cluster.status?.phase ?? 'no status'}, ${cluster.status?.readyInstances ?? 0} ready`);
      }
    }, { timeoutMs: this.timeouts.clusterReadyMs, intervalMs: 2_000 });
  }

  async currentPrimary(namespace: string, name: string): Promise<string | undefined> {
    return (await this.cluster(namespace, name)).status?.currentPrimary;
  }

  private async patchCluster(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.patchNamespacedCustomObject({ ...cnpgApi, namespace, name, body: { spec } }, mergePatch);
  }

  scale(namespace: string, name: string, instances: number): Promise<void> {
    return this.patchCluster(namespace, name, { instances });
  }

  /** A real failure of the primary: its pod killed without grace; CNPG promotes the most advanced replica. */
  async failover(namespace: string, name: string): Promise<string> {
    const before = await this.currentPrimary(namespace, name);
    if (!before) throw new Error(`cluster ${namespace}/${name} has no primary`);
    await this.core.deleteNamespacedPod({ name: before, namespace, gracePeriodSeconds: 0 });
    return eventually(async () => {
      const now = await this.currentPrimary(namespace, name);
      if (!now || now === before) throw new Error(`${namespace}/${name} still has ${before} as primary`);
      return now;
    }, { timeoutMs: this.timeouts.podMs, intervalMs: 1_000 });
  }

  async switchover(namespace: string, name: string, instance: string): Promise<void> {
    await this.custom.patchNamespacedCustomObjectStatus({ ...cnpgApi, namespace, name, body: switchoverPatch(instance, new Date()) }, mergePatch);
  }

  setStorageSize(namespace: string, name: string, role: 'data' | 'wal', size: string): Promise<void> {
    return this.patchCluster(namespace, name, { [role === 'data' ? 'storage' : 'walStorage']: { size } });
  }

  /** Deletes the leading controller pod; another replica takes the lease, the Deployment starts a new pod. */
  async restartController(): Promise<void> {
    const lease = await this.coordination.readNamespacedLease({ name: controllerDeployment, namespace: productNamespace });
    const leader = leaderPod(lease.spec?.holderIdentity);
    if (!leader) throw new Error(`no controller holds the lease ${productNamespace}/${controllerDeployment}`);
    await this.core.deleteNamespacedPod({ name: leader, namespace: productNamespace });
    await eventually(async () => {
      const now = await this.coordination.readNamespacedLease({ name: controllerDeployment, namespace: productNamespace });
      const holder = leaderPod(now.spec?.holderIdentity);
      if (!holder || holder === leader) throw new Error(`the lease is still held by ${leader}`);
    }, { timeoutMs: this.timeouts.podMs, intervalMs: 1_000 });
  }

  private async limitStorage(namespace: string, hard: string): Promise<Undo> {
    const name = 'e2e-storage';
    await this.core.createNamespacedResourceQuota({ namespace, body: { metadata: { name }, spec: { hard: { 'requests.storage': hard } } } });
    await eventually(async () => {
      const quota = await this.core.readNamespacedResourceQuota({ name, namespace });
      if (quota.status?.used?.['requests.storage'] === undefined) throw new Error(`quota ${namespace}/${name} has no usage yet`);
    }, { timeoutMs: 60_000, intervalMs: 500 });
    return async () => { await this.core.deleteNamespacedResourceQuota({ name, namespace }).catch(() => undefined); };
  }

  /**
   * A drain as it touches one Cluster: cordon the instance's node and evict the instance. CloudNativePG's PodDisruptionBudget
   * refuses evicting a primary until it switched over (it does so when the primary's node is cordoned): retried.
   */
  private async cordonAndEvict(namespace: string, pod: string): Promise<Undo> {
    const node = (await this.core.readNamespacedPod({ name: pod, namespace })).spec?.nodeName;
    if (!node) throw new Error(`${namespace}/${pod} is not scheduled`);
    const setUnschedulable = (unschedulable: boolean): Promise<unknown> => this.core.patchNode({ name: node, body: { spec: { unschedulable } } }, mergePatch);
    await setUnschedulable(true);
    await eventually(() => this.core.createNamespacedPodEviction({ name: pod, namespace, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace } } }),
      { timeoutMs: this.timeouts.podMs, intervalMs: 5_000 });
    return async () => { await setUnschedulable(false); };
  }

  // Workload -----------------------------------------------------------------------------------------------------------

  /**
   * kubectl exec into an instance, retried while the instance is between lives (its container restarting, PostgreSQL
   * starting up): a real instance restarts after a failover, a rolling update or a full disk, where the stand-in's never do.
   */
  private async execInInstance(args: readonly string[]): Promise<string> {
    const deadline = Date.now() + this.timeouts.podMs;
    for (;;) {
      try {
        return await this.kubectl(args);
      } catch (err) {
        if (!transientExecError(String(err)) || Date.now() >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 2_000));
      }
    }
  }

  private psql(namespace: string, pod: string, sql: string): Promise<string> {
    return this.execInInstance(psqlArgs(namespace, pod, sql)).then((out) => out.trim());
  }

  async usage(volume: InstanceVolume): Promise<Usage> {
    return parseStatfs(await this.execInInstance(statfsArgs(volume.namespace, `${volume.cluster}-${volume.instance}`, mountPath(volume.role))));
  }

  /**
   * Writes on the primary until the instance's volume is at `percent` (replicas fill through replication), in rounds of
   * nextFillMiB; frees first when above.
   */
  async fill(volume: InstanceVolume, percent: number): Promise<void> {
    const primary = await this.currentPrimary(volume.namespace, volume.cluster);
    if (!primary) throw new Error(`cluster ${volume.namespace}/${volume.cluster} has no primary`);
    if (volume.role === 'wal' && primary !== `${volume.cluster}-${volume.instance}`) {
      throw new Error('WAL is filled on the primary only (its replication slot holds the WAL back there)');
    }
    let usage = await this.usage(volume);
    if (usage.usedPercent > percent + 0.5) {
      await this.psql(volume.namespace, primary, freeSql(volume.role));
      usage = await this.settledUsage(volume, primary);
    }
    // The percentage of the filesystem as it is now: the product may grow it during the rounds, and a fill that chased
    // the new size would make it grow again (the stand-in's fill is a single write, done before anything can grow).
    const start = usage;
    const primaryVolume = { ...volume, instance: Number(primary.slice(volume.cluster.length + 1)), role: 'wal' as const };
    const separateWal = volume.role !== 'wal' && (await this.cluster(volume.namespace, volume.cluster)).spec?.walStorage !== undefined;
    const unlogged = typeof volume.role !== 'string' && primary === `${volume.cluster}-${volume.instance}`;
    for (let round = 0; round < 40; round += 1) {
      const room = separateWal ? walRoomBytes(await this.usage(primaryVolume)) : undefined;
      const mib = nextFillMiB({ ...usage, availableBytes: start.usedBytes + start.availableBytes - usage.usedBytes }, percent, room);
      if (mib === 0 || Math.abs(usage.usedPercent - percent) <= 0.5 || usage.sizeBytes > start.sizeBytes) return;
      await this.psql(volume.namespace, primary, fillSql(volume.role, mib, unlogged));
      usage = await this.settledUsage(volume, primary);
    }
    throw new Error(`${volume.namespace}/${volume.cluster}-${volume.instance} ${JSON.stringify(volume.role)} not at ${percent}% after 40 rounds (${usage.usedPercent.toFixed(1)}%)`);
  }

  /**
   * The usage once every replica replayed what the primary wrote, and checkpoints let go of the WAL that was kept for
   * them: a round that starts while a replica lags would add its WAL to what the replica's slot still holds, and the WAL
   * volume, not the one that fills, would grow. A replica that is not running does not hold the fill up, unless it is
   * the one that fills.
   */
  private async settledUsage(volume: InstanceVolume, primary: string): Promise<Usage> {
    const pod = `${volume.cluster}-${volume.instance}`;
    const lsn = await this.psql(volume.namespace, primary, 'SELECT pg_current_wal_lsn();');
    const instances = await this.core.listNamespacedPod({ namespace: volume.namespace, labelSelector: `cnpg.io/cluster=${volume.cluster},cnpg.io/podRole=instance` });
    const replicas = instances.items.map((p) => p.metadata?.name ?? '').filter((name) => name !== '' && name !== primary);
    for (const replica of replicas) {
      const replayed = eventually(async () => {
        const caughtUp = await this.psql(volume.namespace, replica, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn;`);
        if (caughtUp !== 't') throw new Error(`${replica} has not replayed up to ${lsn}`);
      }, { timeoutMs: this.timeouts.stateMs, intervalMs: 1_000 });
      if (replica === pod) {
        await replayed;
        await this.psql(volume.namespace, replica, 'CHECKPOINT;');
      } else {
        await replayed.catch(() => undefined);
      }
    }
    await this.psql(volume.namespace, primary, 'CHECKPOINT;');
    return this.usage(volume);
  }

  async writeSentinels(namespace: string, name: string): Promise<Sentinels> {
    const cluster = await this.cluster(namespace, name);
    const primary = cluster.status?.currentPrimary;
    if (!primary) throw new Error(`cluster ${namespace}/${name} has no primary`);
    const tablespaces: (string | undefined)[] = [undefined, ...(cluster.spec?.tablespaces ?? []).map((t) => t.name)];
    const expected = new Map<string | undefined, string>();
    for (const t of tablespaces) expected.set(t, await this.psql(namespace, primary, sentinelWriteSql(t)));
    return {
      verify: async () => {
        const pods = await this.core.listNamespacedPod({ namespace, labelSelector: `cnpg.io/cluster=${name},cnpg.io/podRole=instance` });
        const problems: string[] = [];
        for (const pod of pods.items.map((p) => p.metadata?.name ?? '')) {
          for (const [t, sum] of expected) {
            const actual = await eventually(async () => {
              const read = await this.psql(namespace, pod, sentinelChecksumSql(t));
              if (read !== sum) throw new Error(`${pod} ${sentinelTable(t)}: ${read}`);
              return read;
            }, { timeoutMs: this.timeouts.stateMs, intervalMs: 2_000 }).catch((err: unknown) => String(err));
            if (actual !== sum) problems.push(`${namespace}/${pod} ${sentinelTable(t)}: ${sum} != ${actual}`);
          }
        }
        return problems;
      },
    };
  }

  filesystemRange(diskBytes: number): { min: number; max: number } {
    return this.profile.filesystemRange(diskBytes);
  }

  // Metrics ------------------------------------------------------------------------------------------------------------

  /** A token of the controller's ServiceAccount for the agents' audience: what the agents and the controller's /metrics accept. */
  private async metricsToken(): Promise<string | undefined> {
    const token = await this.core.createNamespacedServiceAccountToken({
      name: controllerDeployment, namespace: productNamespace, body: { spec: { audiences: [agentAudience], expirationSeconds: 600 } },
    });
    return token.status?.token;
  }

  /**
   * The leader's /metrics through `kubectl port-forward`, with a token (the API server's pod proxy does not pass a
   * caller's token on, and the controller's /metrics asks for one).
   */
  async controllerMetrics(): Promise<string> {
    const lease = await this.coordination.readNamespacedLease({ name: controllerDeployment, namespace: productNamespace });
    const leader = leaderPod(lease.spec?.holderIdentity);
    if (!leader) throw new Error('no controller leads');
    const token = await this.metricsToken();
    return this.viaPortForward(leader, 8080, (port) => scrape(`http://127.0.0.1:${port}/metrics`, token));
  }

  /**
   * Each agent's /metrics through `kubectl port-forward`, over HTTPS checked against the CA the controller keeps for the
   * agents (its Secret), with the controller's token.
   */
  async agentMetrics(): Promise<string> {
    const token = await this.metricsToken();
    const secret = await this.core.readNamespacedSecret({ name: agentTlsSecret, namespace: productNamespace });
    const server = { ca: Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64').toString('utf8'), servername: `cnpg-dynamic-storage-agent.${productNamespace}.svc` };
    const pods = await this.core.listNamespacedPod({ namespace: productNamespace, labelSelector: agentSelector });
    const texts: string[] = [];
    for (const pod of pods.items) texts.push(await this.viaPortForward(pod.metadata?.name ?? '', 9100, (port) => scrape(`https://127.0.0.1:${port}/metrics`, token, server)));
    return texts.join('\n');
  }

  private async viaPortForward<T>(pod: string, remotePort: number, use: (port: number) => Promise<T>): Promise<T> {
    const child = spawn('kubectl', ['port-forward', '-n', productNamespace, `pod/${pod}`, `:${remotePort}`], { env: this.kubectlEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`kubectl port-forward to ${pod}: no port within 30 s`)); }, 30_000);
        createInterface({ input: child.stdout }).on('line', (line) => {
          const found = parseForwardedPort(line);
          if (found !== undefined) { clearTimeout(timer); resolve(found); }
        });
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`kubectl port-forward to ${pod} exited with ${code ?? 'a signal'}`)); });
      });
      return await use(port);
    } finally {
      child.kill();
    }
  }

  async stop(): Promise<void> {
    for (const namespace of this.namespaces.splice(0)) {
      await this.custom.deleteCollectionNamespacedCustomObject({ ...cnpgApi, namespace }).catch(() => undefined);
      await this.core.deleteNamespace({ name: namespace }).catch(() => undefined);
    }
    await this.profile.onStop?.();
  }
}

/** The driver on a loaded kubeconfig, running commands with `run` (no check of the cluster: see startAksTarget). */
export function createAksDriver(kc: k8s.KubeConfig, settings: TargetSettings, run: Run): TargetDriver {
  return new RealClusterTarget(kc, settings, run, aksProfile);
}

/** A driver for another real cluster target (the real node: e2e/targets/node.ts). */
export function createRealClusterDriver(kc: k8s.KubeConfig, settings: TargetSettings, run: Run, profile: RealTargetProfile): TargetDriver {
  return new RealClusterTarget(kc, settings, run, profile);
}

/** Checks that CloudNativePG and the product are installed, then returns the driver for the cluster of `KUBECONFIG`. */
export async function startAksTarget(settings: TargetSettings): Promise<TargetDriver> {
  const kc = new k8s.KubeConfig();
  if (settings.kubeconfig === undefined) kc.loadFromDefault();
  else kc.loadFromFile(settings.kubeconfig);
  const target = createAksDriver(kc, settings, runCommand(commandEnv(settings)));
  await checkInstalled(kc);
  return target;
}

/** What must be there before the scenarios: CNPG's CRD and operator, the product's CRD, controller and agents. */
export async function checkInstalled(kc: k8s.KubeConfig): Promise<void> {
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const missing: string[] = [];
  for (const crd of ['clusters.postgresql.cnpg.io', 'dynamicstorages.dynamicstorage.cnpg.io']) {
    await ext.readCustomResourceDefinition({ name: crd }).catch(() => { missing.push(`CRD ${crd}`); });
  }
  const deployments = await apps.listDeploymentForAllNamespaces({ labelSelector: 'app.kubernetes.io/name=cloudnative-pg' }).catch(() => ({ items: [] }));
  if (!deployments.items.some((d) => (d.status?.readyReplicas ?? 0) > 0)) missing.push('a ready CloudNativePG operator (app.kubernetes.io/name=cloudnative-pg)');
  const controller = await apps.readNamespacedDeployment({ name: controllerDeployment, namespace: productNamespace }).catch(() => undefined);
  if ((controller?.status?.readyReplicas ?? 0) === 0) missing.push(`a ready deployment ${productNamespace}/${controllerDeployment}`);
  const agents = await apps.readNamespacedDaemonSet({ name: 'cnpg-dynamic-storage-agent', namespace: productNamespace }).catch(() => undefined);
  if ((agents?.status?.numberReady ?? 0) === 0) missing.push(`ready agents (daemonset ${productNamespace}/cnpg-dynamic-storage-agent)`);
  if (missing.length > 0) throw new Error(`E2E_TARGET=aks: not installed on the cluster: ${missing.join('; ')} (e2e/run-aks-e2e.sh installs them)`);
}

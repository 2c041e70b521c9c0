/**
 * The targets the end-to-end scenarios run on, behind one driver interface: the local AKS stand-in (`standin`), a real
 * node (`node`: kubelet, containerd, the real CloudNativePG) and a real AKS cluster (`aks`). The scenarios only talk to a `TargetDriver`; what
 * differs per target (how a Cluster is made, how a volume is filled, what a fault is, the sizes and the timeouts) sits
 * behind it.
 *
 * The selection is read from the environment here, once (`readTargetSettings`), and passed down.
 * Adding a target is one file exporting a `start...Target(settings, hints)` and one case in `startTarget`.
 */
import type * as k8s from '@kubernetes/client-node';
import { formatQuantity } from '../../shared/quantity.ts';

export type TargetName = 'standin' | 'node' | 'aks';
export const targetNames: readonly TargetName[] = ['standin', 'node', 'aks'];

/** Everything the targets take from the environment, read in one place. */
export interface TargetSettings {
  name: TargetName;
  /** The kubeconfig of a real cluster (aks): `KUBECONFIG`, else the default loading rules. */
  kubeconfig: string | undefined;
  /** The environment of the commands a driver runs (`kubectl`: PATH, HOME, cloud credentials' helpers). */
  commandEnv: Readonly<Record<string, string | undefined>>;
}

/** Reads `E2E_TARGET` (standin | node | aks, default standin) and `KUBECONFIG`. Throws on an unknown target. */
export function readTargetSettings(env: Readonly<Record<string, string | undefined>>): TargetSettings {
  const raw = (env.E2E_TARGET ?? '').trim();
  const name = raw === '' ? 'standin' : raw;
  if (!targetNames.includes(name as TargetName)) {
    throw new Error(`E2E_TARGET must be one of ${targetNames.join(', ')}, got "${raw}"`);
  }
  const kubeconfig = env.KUBECONFIG?.trim();
  return { name: name as TargetName, kubeconfig: kubeconfig === '' ? undefined : kubeconfig, commandEnv: { ...env } };
}

/**
 * What a test file would like from its target. A target that builds its own cluster (the stand-in) applies them; a
 * target given a cluster ignores them (its cluster is what it is).
 */
export interface StackHints {
  /** Nodes of the cluster (stand-in: simulated nodes). */
  nodes?: number;
  /** The controller's resync period. */
  resyncMs?: number;
  /** Give the controller a clock the scenarios can move (`clock` capability). */
  shiftableClock?: boolean;
  /** How soon the CSI retries an infeasible expansion. */
  infeasibleRetryMs?: number;
}

/** A logical volume of a Cluster: data, WAL, or one tablespace. */
export type Role = 'data' | 'wal' | { tablespace: string };

/** One volume of one instance (`instance` is the serial: 1 for `<cluster>-1`). */
export interface InstanceVolume {
  namespace: string;
  cluster: string;
  instance: number;
  role: Role;
}

/** The shape of a CNPG Cluster a scenario asks for; each target turns it into its own object. */
export interface ClusterShape {
  instances: number;
  /** Size of every volume in the Cluster spec. */
  size: string;
  storageClass: string;
  walStorage: boolean;
  tablespaces: readonly string[];
}

export interface Usage {
  /** Filesystem size (blocks x fragment size). */
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
  /** used / (used + available) x 100, as df shows it. */
  usedPercent: number;
}

/** Something a target can do, or the reason it cannot (the scenario is then skipped with that reason printed). */
export type Capability<T> = { readonly supported: true; readonly use: T } | { readonly supported: false; readonly reason: string };

export function supported<T>(use: T): Capability<T> {
  return { supported: true, use };
}

export function unsupported<T>(reason: string): Capability<T> {
  return { supported: false, reason };
}

/** Undoes a fault or a change a scenario made. */
export type Undo = () => Promise<void>;

/**
 * The sizes of a target. The scenarios count in units: 1Mi on the stand-in (64 units = 64Mi), 128Mi on AKS (64 units =
 * 8Gi, 8 units = 1Gi), so the same ratios of fill, step, buffer and limit hold on both and sizes stay whole GiB on Azure.
 */
export interface TargetSizes {
  /** Bytes of one scenario unit. */
  readonly unit: number;
  /** The StorageClass of the scenarios' volumes. */
  readonly storageClass: string;
  /** The allocation unit of that class (sizes round up to it). */
  readonly allocationUnit: number;
  /** A class of disks Azure cannot grow past 4 TiB while attached, known as such to the product (the provider-boundary scenario). */
  readonly boundaryStorageClass: Capability<string>;
}

/** `units` scenario units as a quantity (`64` -> `64Mi` on the stand-in, `8Gi` on AKS). */
export function unitsQuantity(sizes: TargetSizes, units: number): string {
  return formatQuantity(Math.round(units * sizes.unit));
}

/** How long things may take on a target. */
export interface TargetTimeouts {
  /** A Cluster to become ready. */
  readonly clusterReadyMs: number;
  /** A resize to be patched and settled; status waits of a grow. */
  readonly resizeMs: number;
  /** A state or reason to show in the status. */
  readonly stateMs: number;
  /** An emergency grow from the fill to the grown PVC ("within seconds" on the stand-in). */
  readonly emergencyGrowMs: number;
  /** A pod to be recreated and running. */
  readonly podMs: number;
  /** How long "nothing more happens" is watched for. */
  readonly quietMs: number;
  /** How far ahead a maintenance window is scheduled when the clock cannot be moved (real waiting). */
  readonly windowLeadMs: number;
}

/** The faults a scenario may inject, each one a capability of the target; the action returns how to undo it. */
export interface FaultControls {
  /** Hold every expansion in flight for about `ms` (the CSI's controller side is slow). */
  readonly latency: Capability<(ms: number) => Promise<Undo>>;
  /** The storage refuses the expansions of the PVCs of a namespace as infeasible, until undone. */
  readonly infeasible: Capability<(namespace: string) => Promise<Undo>>;
  /** The provider refuses to grow attached disks of the scenarios' class past `bytes` (an Azure-like boundary). */
  readonly growthBoundary: Capability<(bytes: number) => Promise<Undo>>;
  /** A ResourceQuota on `requests.storage` in a namespace. */
  readonly quota: Capability<(namespace: string, hard: string) => Promise<Undo>>;
}

/** The controller's clock: moved forward by `offsetMs` (0 puts it back). */
export interface ClockControl {
  shift(offsetMs: number): void;
}

/** Sentinels written before a scenario; `verify` returns the problems found (empty: no data lost). */
export interface Sentinels {
  verify(): Promise<string[]>;
}

export interface TargetDriver {
  readonly name: TargetName;
  readonly core: k8s.CoreV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly sizes: TargetSizes;
  readonly timeouts: TargetTimeouts;
  readonly faults: FaultControls;
  readonly clock: Capability<ClockControl>;
  /** Cordon the node of an instance and evict it; undo uncordons. */
  readonly drain: Capability<(namespace: string, pod: string) => Promise<Undo>>;

  /** A namespace the driver deletes when it stops. */
  createNamespace(prefix: string): Promise<string>;
  /** Creates a Cluster and waits until it is ready. */
  createCluster(namespace: string, name: string, shape: ClusterShape): Promise<void>;
  waitForReady(namespace: string, name: string): Promise<void>;
  currentPrimary(namespace: string, name: string): Promise<string | undefined>;
  scale(namespace: string, name: string, instances: number): Promise<void>;
  /** The primary fails (stand-in: promoted away; real: the primary pod is killed); returns the new primary. */
  failover(namespace: string, name: string): Promise<string>;
  /** A planned switchover to `instance` (`status.targetPrimary`, as `kubectl cnpg promote`). */
  switchover(namespace: string, name: string, instance: string): Promise<void>;
  /** Sets the Cluster's own `storage.size` (or the WAL's). */
  setStorageSize(namespace: string, name: string, role: 'data' | 'wal', size: string): Promise<void>;
  /** Stops the controller and starts it again (the leader on a real cluster). */
  restartController(): Promise<void>;

  /** Brings a volume to about `percent` used: writes when below, frees what the workload wrote when above. */
  fill(volume: InstanceVolume, percent: number): Promise<void>;
  usage(volume: InstanceVolume): Promise<Usage>;
  /** Writes sentinels on every volume of the Cluster, to be verified at the end of the scenario. */
  writeSentinels(namespace: string, name: string): Promise<Sentinels>;
  /** The range the filesystem of a disk of `diskBytes` has on this target. */
  filesystemRange(diskBytes: number): { min: number; max: number };
  /** Whether used + available = total on the target's filesystems (tmpfs: yes; ext4 keeps reserved blocks). */
  readonly filesystemWithoutReserve: boolean;

  /** The controller's Prometheus text (the leader's on a real cluster). */
  controllerMetrics(): Promise<string>;
  /** Every agent's Prometheus text, concatenated. */
  agentMetrics(): Promise<string>;

  stop(): Promise<void>;
}

/** Starts the selected target's driver. */
export async function startTarget(settings: TargetSettings, hints: StackHints): Promise<TargetDriver> {
  switch (settings.name) {
    case 'standin': {
      const { startStandinTarget } = await import('./standin.ts');
      return startStandinTarget(hints);
    }
    case 'aks': {
      const { startAksTarget } = await import('./aks.ts');
      return startAksTarget(settings);
    }
    case 'node': {
      const { startNodeTarget } = await import('./node.ts');
      return startNodeTarget(settings);
    }
  }
}

/**
 * A local stand-in for AKS around a real control plane: simulated nodes (kubelet + scheduler), the Azure Disk CSI driver
 * (provisioning, expansion, faults) and the CloudNativePG operator, plus a workload driver writing real files.
 * See test/sim/README.md.
 */
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../harness/controlplane.ts';
import { cnpgGroup, cnpgVersion } from './cnpg-names.ts';
import { CnpgOperator, type CnpgOptions } from './cnpg-operator.ts';
import { CsiDriver, type CsiOptions } from './csi.ts';
import {
  apiMessage, apiStatus, ignoreNotFound, InformerHub, makeClients, silentLogger, waitUntil, type Clients, type SimLogger,
} from './kube.ts';
import { MountTable } from './mounts.ts';
import { NodeFleet, type MountedVolume, type SimNode } from './nodes.ts';
import { StorageQuotas } from './quota.ts';
import { Workload } from './workload.ts';

export * from './cnpg-names.ts';
export { phases, type Cluster, type ClusterSpec, type ClusterStatus, type StorageConfiguration, type TablespaceConfiguration } from './cnpg-operator.ts';
export { defaultStorageClasses, driverName, type Fault, type FaultKind, type FaultSpec, type PvcMatcher, type SimStorageClass } from './csi.ts';
export { consoleLogger, waitUntil, type SimLogger } from './kube.ts';
export { simulationMountPoints } from './mounts.ts';
export type { MountedVolume, SimNode } from './nodes.ts';
export { conditionTypes, resizeStatus } from './resize-status.ts';
export { statfsUsage, type Amount, type FillResult, type Usage, type VolumeTarget } from './workload.ts';

export interface SimulationOptions {
  controlPlane: Pick<ControlPlane, 'kubeConfig'> & Partial<Pick<ControlPlane, 'versions'>>;
  /** Number of nodes (default 2). */
  nodes?: number;
  /** Availability zones the nodes are spread over (default: one per node, at most 3). */
  zones?: number;
  csi?: CsiOptions;
  cnpg?: CnpgOptions | false;
  log?: SimLogger;
}

export interface Simulation {
  readonly id: string;
  /** The simulation's directory (kubelet roots and disks live below it). */
  readonly dir: string;
  readonly clients: Clients;
  readonly nodes: readonly SimNode[];
  readonly csi: CsiDriver;
  /** The CloudNativePG stand-in (absent with `cnpg: false`). */
  readonly cnpg: CnpgOperator;
  readonly quota: StorageQuotas;
  readonly workload: Workload;
  /** Every volume mounted into a pod right now. */
  volumes(): MountedVolume[];
  /** Mount path of a PVC on the node where a pod uses it. */
  volumePath(namespace: string, pvc: string): string | undefined;
  /** Creates a namespace that stop() deletes (with everything in it). */
  createNamespace(prefix?: string): Promise<string>;
  /** Stops everything, deletes the namespaces it created, its nodes and volumes, unmounts and removes the directory. */
  stop(): Promise<void>;
}

class RunningSimulation implements Simulation {
  readonly id = `sim-${randomBytes(3).toString('hex')}`;
  readonly clients: Clients;
  readonly hub: InformerHub;
  readonly mounts: MountTable;
  readonly fleet: NodeFleet;
  readonly csi: CsiDriver;
  readonly quota: StorageQuotas;
  readonly workload: Workload;
  private readonly operator: CnpgOperator | undefined;
  private readonly namespaces = new Set<string>();
  private readonly log: SimLogger;
  private stopping: Promise<void> | undefined;

  constructor(options: SimulationOptions) {
    this.log = options.log ?? silentLogger;
    this.clients = makeClients(options.controlPlane.kubeConfig);
    this.hub = new InformerHub(this.clients, (path, err) => { this.log.debug(`informer ${path} restarting: ${apiMessage(err)}`); });
    this.mounts = MountTable.create();
    const zones = Math.max(1, options.zones ?? Math.min(3, options.nodes ?? 2));
    const zoneNames = Array.from({ length: zones }, (_, i) => `eastus-${i + 1}`);
    // The fleet and the driver know each other: zones of nodes for provisioning, the driver for mounts.
    const late: { fleet?: NodeFleet } = {};
    this.csi = new CsiDriver({
      clients: this.clients, hub: this.hub, mounts: this.mounts, log: this.log,
      zoneOfNode: (node) => late.fleet?.zoneOfNode(node), zones: zoneNames,
    }, options.csi);
    const kubeletVersion = options.controlPlane.versions?.kubernetes;
    const fleet = new NodeFleet({ clients: this.clients, hub: this.hub, mounts: this.mounts, csi: this.csi, log: this.log },
      { count: options.nodes ?? 2, zones, ...(kubeletVersion ? { kubeletVersion } : {}) });
    late.fleet = fleet;
    this.fleet = fleet;
    this.quota = new StorageQuotas(this.clients);
    this.operator = options.cnpg === false ? undefined : new CnpgOperator({ clients: this.clients, hub: this.hub, log: this.log }, options.cnpg);
    this.workload = new Workload((namespace, pvc) => this.fleet.volumePath(namespace, pvc));
  }

  get dir(): string {
    return this.mounts.root;
  }

  get nodes(): readonly SimNode[] {
    return this.fleet.nodes;
  }

  get cnpg(): CnpgOperator {
    if (!this.operator) throw new Error('this simulation runs without the CloudNativePG stand-in');
    return this.operator;
  }

  async start(): Promise<void> {
    await this.csi.install();
    await this.fleet.install();
    await this.operator?.install();
    this.csi.register();
    this.fleet.register();
    this.quota.register(this.hub);
    this.operator?.register();
    await this.hub.start();
  }

  volumes(): MountedVolume[] {
    return this.fleet.volumes();
  }

  volumePath(namespace: string, pvc: string): string | undefined {
    return this.fleet.volumePath(namespace, pvc);
  }

  async createNamespace(prefix = 'sim'): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await this.clients.core.createNamespace({ body: { metadata: { name, labels: { 'cnpg-ds-sim': this.id } } } });
    this.namespaces.add(name);
    // The ServiceAccount controller creates "default"; pods need it.
    await waitUntil(`ServiceAccount default in ${name}`, () => this.clients.core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true), 30_000);
    return name;
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(new Error(`${what}: ${apiMessage(err)}`));
      }
    };
    // Namespaces go first, while the kubelets still unmount and force-delete pods and the provisioner deletes volumes.
    // With the API server gone (a test failed hard), only the local cleanup is left to do.
    const reachable = await this.apiReachable();
    if (reachable) await attempt('deleting namespaces', () => this.deleteNamespaces());
    await attempt('stopping controllers', async () => {
      await Promise.all([this.operator?.stop(), this.quota.stop(), this.fleet.stop(), this.csi.stop()]);
      await this.hub.stop();
    });
    await attempt('deleting volumes', () => this.csi.deleteAllVolumes(reachable));
    if (reachable) await attempt('deleting nodes', () => this.fleet.uninstall());
    await attempt('unmounting', () => this.mounts.destroy());
    if (errors.length > 0) this.log.warn(`simulation ${this.id} stopped with errors`, { errors: errors.map(String) });
  }

  private async apiReachable(): Promise<boolean> {
    try {
      await Promise.race([
        this.clients.core.readNamespace({ name: 'default' }),
        new Promise((_resolve, reject) => { setTimeout(() => { reject(new Error('timeout')); }, 3_000).unref(); }),
      ]);
      return true;
    } catch (err) {
      return apiStatus(err) !== undefined;
    }
  }

  private async deleteNamespaces(): Promise<void> {
    const names = [...this.namespaces];
    // Empty the namespaces first (clusters, pods without grace period, claims): the namespace controller otherwise
    // waits out grace periods and re-checks remaining content only every few seconds.
    await Promise.all(names.map((name) => this.emptyNamespace(name)));
    // The namespace controller finishes the (now empty) namespaces on its own; what matters here is that the
    // provisioner saw the released volumes and deleted them.
    for (const name of names) await ignoreNotFound(this.clients.core.deleteNamespace({ name }));
    const inNamespaces = new Set(names);
    await waitUntil('the volumes of the simulation namespaces to be deleted', async () => {
      const pvs = await this.clients.core.listPersistentVolume();
      return !pvs.items.some((pv) => inNamespaces.has(pv.spec?.claimRef?.namespace ?? ''));
    }, 15_000, 100).catch((err: unknown) => {
      this.log.warn(`volumes not deleted in time: ${apiMessage(err)}`);
    });
    this.namespaces.clear();
  }

  private async emptyNamespace(namespace: string): Promise<void> {
    const { core, custom } = this.clients;
    if (this.operator) {
      await custom.deleteCollectionNamespacedCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace }).catch(() => undefined);
    }
    const pods = await core.listNamespacedPod({ namespace }).catch(() => ({ items: [] as k8s.V1Pod[] }));
    await Promise.all(pods.items.map((pod) => ignoreNotFound(core.deleteNamespacedPod({
      name: pod.metadata?.name ?? '', namespace, body: { gracePeriodSeconds: 0 },
    })).catch(() => undefined)));
    await core.deleteCollectionNamespacedPersistentVolumeClaim({ namespace }).catch(() => undefined);
    await waitUntil(`the claims in ${namespace} to be deleted`, async () => {
      const claims = await core.listNamespacedPersistentVolumeClaim({ namespace });
      return claims.items.length === 0;
    }, 30_000, 100).catch((err: unknown) => { this.log.warn(apiMessage(err)); });
  }
}

/**
 * Starts a simulation on a running control plane. On failure everything already started is stopped again.
 * One simulation per control plane at a time (StorageClasses, the CRD and the admission policy are cluster-wide).
 */
export async function startSimulation(options: SimulationOptions): Promise<Simulation> {
  const simulation = new RunningSimulation(options);
  try {
    await simulation.start();
  } catch (err) {
    await simulation.stop();
    throw err;
  }
  return simulation;
}

export type { k8s };

/**
 * The local AKS stand-in as an end-to-end target: a real control plane, simulated nodes with tmpfs volumes, the Azure
 * Disk CSI and CloudNativePG stand-ins (test/sim/), one real agent per node and the real controller (test/stack/).
 * Volumes are filled with files, sentinels are files with a checksum, faults are injected into the CSI stand-in, and the
 * controller's clock can be moved.
 */
import * as k8s from '@kubernetes/client-node';
import { agentAudience } from '../../controller/agent-token.ts';
import { MiB } from '../../shared/quantity.ts';
import type { ClusterSpec, VolumeTarget } from '../../test/sim/index.ts';
import { startLocalStack, systemNamespace, type LocalStack } from '../../test/stack/index.ts';
import {
  supported, unsupported, type ClockControl, type ClusterShape, type InstanceVolume, type Sentinels, type StackHints, type TargetDriver,
  type TargetSizes, type TargetTimeouts, type Undo, type Usage,
} from './index.ts';
import { scrape } from './metrics.ts';

export const standinSizes: TargetSizes = { unit: MiB, storageClass: 'managed-csi-mib', allocationUnit: MiB, boundaryStorageClass: supported('managed-csi') };

export const standinTimeouts: TargetTimeouts = {
  clusterReadyMs: 120_000, resizeMs: 60_000, stateMs: 30_000, emergencyGrowMs: 20_000, podMs: 30_000, quietMs: 1_000, windowLeadMs: 45_000,
};

function volumeTarget(v: InstanceVolume): VolumeTarget {
  return { namespace: v.namespace, instance: `${v.cluster}-${v.instance}`, volume: v.role };
}

class StandinTarget implements TargetDriver {
  readonly name = 'standin' as const;
  readonly core: k8s.CoreV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly sizes = standinSizes;
  readonly timeouts = standinTimeouts;
  readonly filesystemWithoutReserve = true;
  readonly stack: LocalStack;
  readonly clock;
  readonly faults;
  readonly drain;

  constructor(stack: LocalStack, clock: ClockControl | undefined) {
    this.stack = stack;
    this.core = stack.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.custom = stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.clock = clock ? supported(clock) : unsupported<ClockControl>('this file started its stand-in without a shiftable clock (useTarget({ shiftableClock: true }))');
    const { csi, quota } = stack.sim;
    this.faults = {
      latency: supported((ms: number): Promise<Undo> => {
        const before = { ...csi.currentLatency };
        csi.setLatency({ controllerMs: ms });
        return Promise.resolve(() => { csi.setLatency(before); return Promise.resolve(); });
      }),
      infeasible: supported((namespace: string): Promise<Undo> => {
        const fault = csi.injectFault({ kind: 'controllerInfeasible', pvc: new RegExp(`^${namespace}/`) });
        return Promise.resolve(() => { fault.clear(); return Promise.resolve(); });
      }),
      growthBoundary: supported((bytes: number): Promise<Undo> => {
        csi.setGrowthBoundary(bytes, standinSizes.storageClass);
        return Promise.resolve(() => { csi.setGrowthBoundary(undefined, standinSizes.storageClass); return Promise.resolve(); });
      }),
      quota: supported(async (namespace: string, hard: string): Promise<Undo> => {
        await quota.limit(namespace, hard);
        return () => quota.remove(namespace);
      }),
    };
    this.drain = supported((namespace: string, pod: string) => this.cordonAndEvict(namespace, pod));
  }

  /**
   * A drain as it touches one Cluster: cordon the node, evict the instance. (The simulator's drain() would also evict
   * the stack's agent pods, which are plain pods here where AKS runs a DaemonSet that drains leave alone.)
   */
  private async cordonAndEvict(namespace: string, pod: string): Promise<Undo> {
    const nodeName = (await this.core.readNamespacedPod({ name: pod, namespace })).spec?.nodeName;
    const node = this.stack.sim.nodes.find((n) => n.name === nodeName);
    if (!node) throw new Error(`no simulated node for ${namespace}/${pod} (${nodeName ?? 'unscheduled'})`);
    await node.cordon();
    await this.core.createNamespacedPodEviction({ name: pod, namespace, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace } } });
    return () => node.uncordon();
  }

  createNamespace(prefix: string): Promise<string> {
    return this.stack.sim.createNamespace(prefix);
  }

  async createCluster(namespace: string, name: string, shape: ClusterShape): Promise<void> {
    const storage = { size: shape.size, storageClass: shape.storageClass };
    const spec: ClusterSpec = { instances: shape.instances, storage };
    if (shape.walStorage) spec.walStorage = { ...storage };
    if (shape.tablespaces.length > 0) spec.tablespaces = shape.tablespaces.map((t) => ({ name: t, storage: { ...storage } }));
    await this.stack.sim.cnpg.createCluster(namespace, name, spec);
    await this.waitForReady(namespace, name);
  }

  async waitForReady(namespace: string, name: string): Promise<void> {
    await this.stack.sim.cnpg.waitForReady(namespace, name, this.timeouts.clusterReadyMs);
  }

  async currentPrimary(namespace: string, name: string): Promise<string | undefined> {
    return (await this.stack.sim.cnpg.getCluster(namespace, name)).status?.currentPrimary;
  }

  async scale(namespace: string, name: string, instances: number): Promise<void> {
    await this.stack.sim.cnpg.scale(namespace, name, instances);
  }

  failover(namespace: string, name: string): Promise<string> {
    return this.stack.sim.cnpg.failover(namespace, name);
  }

  switchover(namespace: string, name: string, instance: string): Promise<void> {
    return this.stack.sim.cnpg.promote(namespace, name, instance);
  }

  async setStorageSize(namespace: string, name: string, role: 'data' | 'wal', size: string): Promise<void> {
    await this.stack.sim.cnpg.setStorageSize(namespace, name, role, size);
  }

  async restartController(): Promise<void> {
    await this.stack.restartController();
  }

  async fill(volume: InstanceVolume, percent: number): Promise<void> {
    await this.stack.sim.workload.fill(volumeTarget(volume), { percent });
  }

  usage(volume: InstanceVolume): Promise<Usage> {
    return this.stack.sim.workload.usage(volumeTarget(volume));
  }

  async writeSentinels(namespace: string, name: string): Promise<Sentinels> {
    const { workload } = this.stack.sim;
    const list = await this.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `cnpg.io/cluster=${name}` });
    const targets: { namespace: string; pvc: string }[] = [];
    for (const pvc of list.items) {
      const target = { namespace, pvc: pvc.metadata?.name ?? '' };
      await workload.writeSentinel(target, 64 * 1024);
      targets.push(target);
    }
    return {
      async verify() {
        const problems: string[] = [];
        for (const target of targets) {
          const verdict = await workload.verifySentinel(target);
          if (!verdict.ok) problems.push(`${target.namespace}/${target.pvc}: ${verdict.expected} != ${verdict.actual}`);
        }
        return problems;
      },
    };
  }

  filesystemRange(diskBytes: number): { min: number; max: number } {
    // The stand-in's filesystem is 97% of the disk, in whole pages.
    const filesystem = this.stack.sim.csi.filesystemBytes(diskBytes);
    return { min: filesystem - 4095, max: filesystem + 4095 };
  }

  async controllerMetrics(): Promise<string> {
    const address = this.stack.controller.address;
    if (!address) throw new Error('the controller does not serve /metrics');
    return scrape(`http://${address.host}:${address.port}/metrics`, await this.stack.metricsToken());
  }

  async agentMetrics(): Promise<string> {
    const token = await this.stack.plane.tokenFor(systemNamespace, 'cnpg-dynamic-storage-controller', 600, [agentAudience]);
    const texts = await Promise.all(this.stack.agents.map((a) => scrape(`${a.url}/metrics`, token)));
    return texts.join('\n');
  }

  stop(): Promise<void> {
    return this.stack.stop();
  }
}

/** Starts a local stack for one test file (3 simulated nodes unless the hints say otherwise). */
export async function startStandinTarget(hints: StackHints): Promise<TargetDriver> {
  let offsetMs = 0;
  const clock = hints.shiftableClock ? { shift(ms: number) { offsetMs = ms; } } : undefined;
  const stack = await startLocalStack({
    nodes: hints.nodes ?? 3,
    ...(hints.infeasibleRetryMs === undefined ? {} : { sim: { csi: { infeasibleRetryMs: hints.infeasibleRetryMs } } }),
    controller: {
      ...(hints.resyncMs === undefined ? {} : { resyncMs: hints.resyncMs }),
      ...(clock ? { clock: () => new Date(Date.now() + offsetMs) } : {}),
    },
  });
  return new StandinTarget(stack, clock);
}

/**
 * Simulated AKS nodes: Node and CSINode objects, a scheduler stand-in and a kubelet stand-in per node.
 *
 * - Scheduler: binds pending pods (binding subresource) to a node that fits: not cordoned, taints tolerated,
 *   nodeSelector and required node affinity, the zonal node affinity of bound PVs, required pod anti-affinity; preferred
 *   anti-affinity and load spread pods. For WaitForFirstConsumer claims it sets `volume.kubernetes.io/selected-node` and
 *   waits for the binding, like the VolumeBinding plugin.
 * - Kubelet: mounts each PVC of a pod at `<kubelet root>/pods/<pod uid>/volumes/kubernetes.io~csi/<PV name>/mount` (a
 *   bind mount of the disk's tmpfs, with kubelet's `vol_data.json` beside it), reports the pod Running and Ready with a
 *   loopback pod IP through the status subresource, finishes pending file system expansions of mounted volumes
 *   (NodeResizePending -> NodeResizeInProgress -> done), and on pod deletion unmounts and force-deletes the pod.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { formatQuantity } from '../../shared/quantity.ts';
import { annotations as csiAnnotations, driverName, NodeExpandError, NodeExpandHeld, zoneLabel, type CsiDriver } from './csi.ts';
import { recordEvent, refTo } from './events.ts';
import {
  apiMessage, ignoreNotFound, isConflict, isNotFound, keyOf, mergePatch, RetryAfter, splitKey, waitUntil, WorkQueue,
  type Clients, type InformerHub, type SimLogger,
} from './kube.ts';
import type { MountTable } from './mounts.ts';
import {
  nodeResizeFailed, nodeResizeInfeasible, nodeResizeInProgress, patchPvcStatus, resizeFinished, resizeStatus, storageResizeStatus,
} from './resize-status.ts';

export interface MountedVolume {
  node: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  /** The pod's volume name (`pgdata`, `pg-wal`, `tbs-...`). */
  volumeName: string;
  pvcName: string;
  pvName: string;
  /** `<kubelet root>/pods/<pod uid>/volumes/kubernetes.io~csi/<PV name>/mount` */
  path: string;
}

interface PodRecord {
  key: string;
  uid: string;
  node: string;
  ip: string;
  volumes: MountedVolume[];
}

export interface NodeOptions {
  count: number;
  /** Availability zones; nodes are spread round-robin. Default: one zone per node, at most 3 (`eastus-1`..`eastus-3`). */
  zones?: number;
  region?: string;
  /** Kubernetes version reported by the kubelets. */
  kubeletVersion?: string;
}

export interface NodeContext {
  clients: Clients;
  hub: InformerHub;
  mounts: MountTable;
  csi: CsiDriver;
  log: SimLogger;
}

const nodePoolId = (): string => String(10_000_000 + Math.floor(Math.random() * 89_999_999));

/** One simulated node. */
export class SimNode {
  readonly name: string;
  readonly index: number;
  readonly zone: string;
  readonly region: string;
  /** InternalIP, also the pod IP of hostNetwork pods. */
  readonly ip: string;
  /** The node's kubelet root directory (a real directory; normally /var/lib/kubelet). */
  readonly kubeletRoot: string;
  private readonly fleet: NodeFleet;

  constructor(fleet: NodeFleet, init: { name: string; index: number; zone: string; region: string; ip: string; kubeletRoot: string }) {
    this.fleet = fleet;
    this.name = init.name;
    this.index = init.index;
    this.zone = init.zone;
    this.region = init.region;
    this.ip = init.ip;
    this.kubeletRoot = init.kubeletRoot;
  }

  /** Volumes mounted on this node right now. */
  volumes(): MountedVolume[] {
    return this.fleet.volumes().filter((v) => v.node === this.name);
  }

  cordon(): Promise<void> {
    return this.fleet.setUnschedulable(this.name, true);
  }

  uncordon(): Promise<void> {
    return this.fleet.setUnschedulable(this.name, false);
  }

  /** kubectl drain: cordon, evict every pod, wait until they are gone. */
  drain(timeoutMs?: number): Promise<void> {
    return this.fleet.drain(this.name, timeoutMs);
  }
}

function tolerates(pod: k8s.V1Pod, taint: k8s.V1Taint): boolean {
  if (taint.effect === 'PreferNoSchedule') return true;
  return (pod.spec?.tolerations ?? []).some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return !t.key || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

function matchExpression(labelMap: Record<string, string>, e: { key: string; operator: string; values?: string[] }): boolean {
  const value = labelMap[e.key];
  switch (e.operator) {
    case 'In': return value !== undefined && (e.values ?? []).includes(value);
    case 'NotIn': return value === undefined || !(e.values ?? []).includes(value);
    case 'Exists': return value !== undefined;
    case 'DoesNotExist': return value === undefined;
    case 'Gt': return value !== undefined && Number(value) > Number(e.values?.[0]);
    case 'Lt': return value !== undefined && Number(value) < Number(e.values?.[0]);
    default: return false;
  }
}

function matchNodeSelectorTerms(labelMap: Record<string, string>, terms: k8s.V1NodeSelectorTerm[] | undefined): boolean {
  if (!terms || terms.length === 0) return true;
  return terms.some((term) => (term.matchExpressions ?? []).every((e) => matchExpression(labelMap, e)));
}

function matchLabelSelector(labelMap: Record<string, string>, selector: k8s.V1LabelSelector | undefined): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labelMap[k] !== v) return false;
  return (selector.matchExpressions ?? []).every((e) => matchExpression(labelMap, e));
}

const claimNames = (pod: k8s.V1Pod): { volume: string; claim: string }[] =>
  (pod.spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [{ volume: v.name, claim: v.persistentVolumeClaim.claimName }] : []));

const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The nodes of a simulation, with their scheduler and kubelet stand-ins. */
export class NodeFleet {
  readonly nodes: readonly SimNode[];
  readonly zones: readonly string[];
  private readonly ctx: NodeContext;
  private readonly options: NodeOptions;
  private readonly records = new Map<string, PodRecord>();
  private readonly usedIps = new Map<string, Set<number>>();
  private readonly scheduleQueue: WorkQueue;
  private readonly kubeletQueue: WorkQueue;
  private readonly expandQueue: WorkQueue;
  private rotation = 0;
  private readonly pickupDue = new Set<string>();
  private pods!: k8s.ObjectCache<k8s.V1Pod>;
  private pvcs!: k8s.ObjectCache<k8s.V1PersistentVolumeClaim>;
  private pvs!: k8s.ObjectCache<k8s.V1PersistentVolume>;
  private nodeCache!: k8s.ObjectCache<k8s.V1Node>;

  constructor(ctx: NodeContext, options: NodeOptions) {
    this.ctx = ctx;
    this.options = options;
    const region = options.region ?? 'eastus';
    const zoneCount = Math.max(1, options.zones ?? Math.min(3, options.count));
    this.zones = Array.from({ length: zoneCount }, (_, i) => `${region}-${i + 1}`);
    const pool = nodePoolId();
    this.nodes = Array.from({ length: options.count }, (_, index) => {
      const name = `aks-nodepool1-${pool}-vmss${String(index).padStart(6, '0')}`;
      return new SimNode(this, {
        name, index, region, zone: this.zones[index % zoneCount] ?? `${region}-1`, ip: `127.0.${index + 1}.1`,
        kubeletRoot: path.join(ctx.mounts.root, 'nodes', name, 'kubelet'),
      });
    });
    const onError = (queue: string) => (key: string, err: unknown): void => { ctx.log.debug(`${queue} ${key}: ${apiMessage(err)}`); };
    this.scheduleQueue = new WorkQueue({ name: 'scheduler', sync: (k) => this.syncSchedule(k), onError: onError('schedule') });
    this.kubeletQueue = new WorkQueue({ name: 'kubelet', sync: (k) => this.syncPod(k), onError: onError('kubelet') });
    this.expandQueue = new WorkQueue({ name: 'kubelet-expand', sync: (k) => this.syncExpand(k), onError: onError('node-expand') });
  }

  zoneOfNode(name: string): string | undefined {
    return this.nodes.find((n) => n.name === name)?.zone;
  }

  node(name: string): SimNode | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  /** Every volume mounted on a node of the simulation. */
  volumes(): MountedVolume[] {
    return [...this.records.values()].flatMap((r) => r.volumes);
  }

  /** The mount path of a PVC, if a pod on one of the nodes has it mounted. */
  volumePath(namespace: string, pvc: string): string | undefined {
    return this.volumes().find((v) => v.podNamespace === namespace && v.pvcName === pvc)?.path;
  }

  register(): void {
    const { hub, clients } = this.ctx;
    const onPod = (pod: k8s.V1Pod): void => {
      const key = keyOf(pod);
      if (!pod.spec?.nodeName) this.scheduleQueue.add(key);
      else if (this.node(pod.spec.nodeName)) this.kubeletQueue.add(key);
    };
    this.pods = hub.watch<k8s.V1Pod>('/api/v1/pods', () => clients.core.listPodForAllNamespaces(), {
      add: onPod, update: onPod, delete: (pod) => { this.kubeletQueue.add(keyOf(pod)); },
    });
    const onPvc = (pvc: k8s.V1PersistentVolumeClaim): void => {
      this.expandQueue.add(keyOf(pvc));
      // Pods waiting for this claim (scheduling or mounting) are retried.
      for (const pod of this.pods.list(pvc.metadata?.namespace)) {
        if (claimNames(pod).some((c) => c.claim === pvc.metadata?.name)) onPod(pod);
      }
    };
    this.pvcs = hub.watch<k8s.V1PersistentVolumeClaim>('/api/v1/persistentvolumeclaims',
      () => clients.core.listPersistentVolumeClaimForAllNamespaces(), { add: onPvc, update: onPvc });
    this.pvs = hub.watch<k8s.V1PersistentVolume>('/api/v1/persistentvolumes', () => clients.core.listPersistentVolume(), {});
    const onNode = (): void => { for (const pod of this.pods.list()) if (!pod.spec?.nodeName) this.scheduleQueue.add(keyOf(pod)); };
    this.nodeCache = hub.watch<k8s.V1Node>('/api/v1/nodes', () => clients.core.listNode(), { update: onNode });
  }

  /** Creates the Node and CSINode objects (replacing leftovers of the same name) and reports them Ready. */
  async install(): Promise<void> {
    const { core, storage } = this.ctx.clients;
    for (const node of this.nodes) {
      await mkdir(path.join(node.kubeletRoot, 'pods'), { recursive: true });
      await ignoreNotFound(core.deleteNode({ name: node.name, gracePeriodSeconds: 0 }));
      await core.createNode({ body: this.nodeObject(node) });
      await core.patchNodeStatus({ name: node.name, body: { status: this.nodeStatus(node) } }, mergePatch);
      // The API server's TaintNodesByCondition admission taints new nodes not-ready; the node lifecycle controller
      // (not running here) lifts the taint once the kubelet reports Ready.
      const created = await core.readNode({ name: node.name });
      const taints = (created.spec?.taints ?? []).filter((t) => t.key !== 'node.kubernetes.io/not-ready');
      await core.patchNode({ name: node.name, body: { spec: { taints: taints.length > 0 ? taints : null } } }, mergePatch);
      await ignoreNotFound(storage.deleteCSINode({ name: node.name }));
      await storage.createCSINode({ body: {
        metadata: { name: node.name },
        spec: { drivers: [{ name: driverName, nodeID: node.name, topologyKeys: [zoneLabel], allocatable: { count: 8 } }] },
      } });
    }
  }

  private nodeObject(node: SimNode): k8s.V1Node {
    const pool = node.name.replace(/-vmss\d+$/, '-vmss');
    return {
      metadata: {
        name: node.name,
        labels: {
          'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
          'beta.kubernetes.io/os': 'linux', 'beta.kubernetes.io/arch': 'amd64',
          'node.kubernetes.io/instance-type': 'Standard_D4ds_v5', 'beta.kubernetes.io/instance-type': 'Standard_D4ds_v5',
          'topology.kubernetes.io/region': node.region, 'topology.kubernetes.io/zone': node.zone,
          'failure-domain.beta.kubernetes.io/region': node.region, 'failure-domain.beta.kubernetes.io/zone': node.zone,
          [zoneLabel]: node.zone,
          agentpool: 'nodepool1', 'kubernetes.azure.com/agentpool': 'nodepool1', 'kubernetes.azure.com/mode': 'system',
          'kubernetes.azure.com/role': 'agent', 'kubernetes.azure.com/os-sku': 'Ubuntu', 'kubernetes.azure.com/node-image-version': 'AKSUbuntu-2204gen2containerd-202506.02.0',
          storageprofile: 'managed', storagetier: 'Premium_LRS',
        },
        annotations: { 'csi.volume.kubernetes.io/nodeid': JSON.stringify({ [driverName]: node.name }), 'node.alpha.kubernetes.io/ttl': '0' },
      },
      spec: {
        providerID: `azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_cnpg-ds-sim_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/${pool}/virtualMachines/${node.index}`,
        podCIDR: `10.244.${node.index}.0/24`, podCIDRs: [`10.244.${node.index}.0/24`],
      },
    };
  }

  private nodeStatus(node: SimNode): k8s.V1NodeStatus {
    const at = now() as unknown as Date;
    const condition = (type: string, status: string, reason: string, message: string): k8s.V1NodeCondition =>
      ({ type, status, reason, message, lastHeartbeatTime: at, lastTransitionTime: at });
    const resources = { cpu: '4', memory: '16375368Ki', pods: '110', 'ephemeral-storage': '129886128Ki' };
    return {
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [{ type: 'InternalIP', address: node.ip }, { type: 'Hostname', address: node.name }],
      capacity: resources, allocatable: { ...resources, cpu: '3860m', memory: '12880968Ki', 'ephemeral-storage': '119703055367' },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        architecture: 'amd64', bootID: randomBytes(16).toString('hex'), containerRuntimeVersion: 'containerd://1.7.27-1',
        kernelVersion: '5.15.0-1089-azure', kubeProxyVersion: '', kubeletVersion: this.options.kubeletVersion ?? 'v1.36.0',
        machineID: randomBytes(16).toString('hex'), operatingSystem: 'linux', osImage: 'Ubuntu 22.04.5 LTS', systemUUID: randomBytes(16).toString('hex'),
      },
    };
  }

  async setUnschedulable(name: string, unschedulable: boolean): Promise<void> {
    await this.ctx.clients.core.patchNode({ name, body: { spec: { unschedulable: unschedulable ? true : null } } }, mergePatch);
  }

  async drain(name: string, timeoutMs = 60_000): Promise<void> {
    await this.setUnschedulable(name, true);
    const onNode = (): k8s.V1Pod[] => this.pods.list().filter((p) => p.spec?.nodeName === name
      && !(p.metadata?.ownerReferences ?? []).some((o) => o.kind === 'DaemonSet'));
    for (const pod of onNode()) {
      const meta = pod.metadata ?? {};
      try {
        await this.ctx.clients.core.createNamespacedPodEviction({
          name: meta.name ?? '', namespace: meta.namespace ?? '',
          body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: meta.name, namespace: meta.namespace } },
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    await waitUntil(`node ${name} to be drained`, () => onNode().length === 0, timeoutMs);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Scheduler

  private async markUnschedulable(pod: k8s.V1Pod, message: string): Promise<void> {
    const existing = (pod.status?.conditions ?? []).find((c) => c.type === 'PodScheduled');
    if (existing?.status === 'False' && existing.message === message) return;
    await this.ctx.clients.core.patchNamespacedPodStatus({
      name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '',
      body: { status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastTransitionTime: now(), lastProbeTime: null }] } },
    }, mergePatch).catch(() => undefined);
  }

  /** Why a node cannot run the pod, or undefined when it can. */
  private nodeMisfit(pod: k8s.V1Pod, node: k8s.V1Node, claims: k8s.V1PersistentVolumeClaim[]): string | undefined {
    return this.nodeConditionMisfit(pod, node) ?? this.volumeMisfit(node, claims) ?? this.antiAffinityMisfit(pod, node);
  }

  private nodeConditionMisfit(pod: k8s.V1Pod, node: k8s.V1Node): string | undefined {
    const labelMap = node.metadata?.labels ?? {};
    if (node.spec?.unschedulable) return 'node(s) were unschedulable';
    if ((node.spec?.taints ?? []).some((t) => !tolerates(pod, t))) return 'node(s) had untolerated taint(s)';
    const selectorFits = Object.entries(pod.spec?.nodeSelector ?? {}).every(([k, v]) => labelMap[k] === v);
    const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    if (!selectorFits || !matchNodeSelectorTerms(labelMap, terms)) return "node(s) didn't match Pod's node affinity/selector";
    return undefined;
  }

  private volumeMisfit(node: k8s.V1Node, claims: k8s.V1PersistentVolumeClaim[]): string | undefined {
    const labelMap = node.metadata?.labels ?? {};
    for (const pvc of claims) {
      const pv = pvc.spec?.volumeName ? this.pvs.get(pvc.spec.volumeName) : undefined;
      if (pv && !matchNodeSelectorTerms(labelMap, pv.spec?.nodeAffinity?.required?.nodeSelectorTerms)) return 'node(s) had volume node affinity conflict';
      const selected = pvc.metadata?.annotations?.[csiAnnotations.selectedNode];
      if (!pv && selected && selected !== node.metadata?.name) return 'node(s) did not match the node selected for a volume';
    }
    return undefined;
  }

  private antiAffinityMisfit(pod: k8s.V1Pod, node: k8s.V1Node): string | undefined {
    const terms = pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
    return terms.some((term) => this.podsInDomain(pod, node, term).length > 0) ? "node(s) didn't match pod anti-affinity rules" : undefined;
  }

  private podsInDomain(pod: k8s.V1Pod, node: k8s.V1Node, term: k8s.V1PodAffinityTerm): k8s.V1Pod[] {
    const domain = node.metadata?.labels?.[term.topologyKey];
    if (domain === undefined) return [];
    const nodesInDomain = new Set(this.nodeCache.list().filter((n) => n.metadata?.labels?.[term.topologyKey] === domain).map((n) => n.metadata?.name));
    return this.pods.list(pod.metadata?.namespace).filter((other) => other.metadata?.uid !== pod.metadata?.uid
      && !other.metadata?.deletionTimestamp && nodesInDomain.has(other.spec?.nodeName)
      && matchLabelSelector(other.metadata?.labels ?? {}, term.labelSelector));
  }

  private score(pod: k8s.V1Pod, node: k8s.V1Node): number {
    let score = 0;
    for (const weighted of pod.spec?.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []) {
      score += weighted.weight * this.podsInDomain(pod, node, weighted.podAffinityTerm).length;
    }
    return score * 1000 + this.pods.list().filter((p) => p.spec?.nodeName === node.metadata?.name).length;
  }

  private async syncSchedule(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.pods.get(name, namespace);
    if (!pod || pod.spec?.nodeName || pod.metadata?.deletionTimestamp) return;
    if ((pod.spec?.schedulerName ?? 'default-scheduler') !== 'default-scheduler') return;
    const claims: k8s.V1PersistentVolumeClaim[] = [];
    for (const { claim } of claimNames(pod)) {
      const pvc = this.pvcs.get(claim, namespace);
      if (!pvc) {
        await this.markUnschedulable(pod, `0/${this.nodes.length} nodes are available: persistentvolumeclaim "${claim}" not found.`);
        throw new RetryAfter(500);
      }
      if (pvc.metadata?.deletionTimestamp) {
        await this.markUnschedulable(pod, `0/${this.nodes.length} nodes are available: persistentvolumeclaim "${claim}" is being deleted.`);
        throw new RetryAfter(500);
      }
      claims.push(pvc);
    }
    const ours = new Set(this.nodes.map((n) => n.name));
    const candidates = this.nodeCache.list().filter((n) => ours.has(n.metadata?.name ?? ''));
    const reasons = new Map<string, number>();
    const fit = candidates.filter((node) => {
      const misfit = this.nodeMisfit(pod, node, claims);
      if (misfit) reasons.set(misfit, (reasons.get(misfit) ?? 0) + 1);
      return misfit === undefined;
    });
    if (fit.length === 0) {
      const detail = [...reasons.entries()].map(([reason, count]) => `${count} ${reason}`).sort().join(', ');
      await this.markUnschedulable(pod, `0/${this.nodes.length} nodes are available: ${detail}. preemption: 0/${this.nodes.length} nodes are available: ${this.nodes.length} Preemption is not helpful for scheduling.`);
      throw new RetryAfter(500);
    }
    this.rotation += 1;
    const ranked = fit.map((node, i) => ({ node, score: this.score(pod, node), tie: (i + this.rotation) % fit.length }))
      .sort((a, b) => a.score - b.score || a.tie - b.tie);
    const chosen = ranked[0]?.node.metadata?.name ?? '';
    if (!(await this.volumesReady(claims, chosen))) throw new RetryAfter(100);
    await this.ctx.clients.core.createNamespacedPodBinding({
      name, namespace, body: { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace }, target: { apiVersion: 'v1', kind: 'Node', name: chosen } },
    });
    recordEvent(this.ctx.clients, { component: 'default-scheduler' }, refTo('Pod', 'v1', pod.metadata), {
      type: 'Normal', reason: 'Scheduled', message: `Successfully assigned ${namespace}/${name} to ${chosen}`,
    });
  }

  /** VolumeBinding PreBind: selects the node on unbound WaitForFirstConsumer claims; true once every claim is bound. */
  private async volumesReady(claims: k8s.V1PersistentVolumeClaim[], node: string): Promise<boolean> {
    let ready = true;
    for (const pvc of claims) {
      if (pvc.status?.phase === 'Bound') continue;
      ready = false;
      const sc = pvc.spec?.storageClassName ? this.ctx.csi.classes.get(pvc.spec.storageClassName) : undefined;
      if (sc?.volumeBindingMode !== 'WaitForFirstConsumer') continue;
      if (pvc.metadata?.annotations?.[csiAnnotations.selectedNode] === node) continue;
      await this.ctx.clients.core.patchNamespacedPersistentVolumeClaim({
        name: pvc.metadata?.name ?? '', namespace: pvc.metadata?.namespace ?? '',
        body: { metadata: { annotations: { [csiAnnotations.selectedNode]: node } } },
      }, mergePatch);
    }
    return ready;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Kubelet

  private allocateIp(node: SimNode): string {
    const used = this.usedIps.get(node.name) ?? new Set<number>();
    this.usedIps.set(node.name, used);
    for (let host = 2; host < 255; host++) {
      if (!used.has(host)) {
        used.add(host);
        return `127.0.${node.index + 1}.${host}`;
      }
    }
    throw new Error(`node ${node.name} is out of pod IPs`);
  }

  private releaseIp(record: PodRecord): void {
    const host = Number(record.ip.split('.')[3]);
    this.usedIps.get(record.node)?.delete(host);
  }

  private podDir(node: SimNode, uid: string): string {
    return path.join(node.kubeletRoot, 'pods', uid);
  }

  private async teardown(record: PodRecord): Promise<void> {
    for (const volume of record.volumes) await this.ctx.csi.nodeUnpublish(volume.pvName, volume.path);
    const node = this.node(record.node);
    if (node) await rm(this.podDir(node, record.uid), { recursive: true, force: true });
    this.releaseIp(record);
    this.records.delete(record.key);
    // Claims no longer in use may now be deleted (pvc-protection) or expanded elsewhere.
    for (const volume of record.volumes) this.expandQueue.add(`${volume.podNamespace}/${volume.pvcName}`);
  }

  private async syncPod(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.pods.get(name, namespace);
    const record = this.records.get(key);
    if (record && (!pod || pod.metadata?.uid !== record.uid)) await this.teardown(record);
    const uid = pod?.metadata?.uid;
    const node = pod?.spec?.nodeName ? this.node(pod.spec.nodeName) : undefined;
    if (!pod || !uid || !node) return;
    if (pod.metadata?.deletionTimestamp) {
      await this.killPod(key, pod, node, uid);
      return;
    }
    await this.runPod(key, pod, node, uid);
  }

  private async runPod(key: string, pod: k8s.V1Pod, node: SimNode, uid: string): Promise<void> {
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const entry = this.records.get(key) ?? { key, uid, node: node.name, ip: pod.spec?.hostNetwork ? node.ip : this.allocateIp(node), volumes: [] };
    this.records.set(key, entry);
    await this.mountVolumes(pod, node, entry);
    if (phase !== 'Running' || !(pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')) {
      await this.reportRunning(pod, node, entry);
    }
  }

  /** What kubelet does for a pod with a deletionTimestamp: stop it, unmount its volumes, then delete it for good. */
  private async killPod(key: string, pod: k8s.V1Pod, node: SimNode, uid: string): Promise<void> {
    const current = this.records.get(key);
    if (current) await this.teardown(current);
    else await rm(this.podDir(node, uid), { recursive: true, force: true });
    // Like kubelet after the containers stopped: delete with grace period 0 (in the body: the API server takes the
    // DeleteOptions body over query parameters), guarded by the pod's uid.
    await ignoreNotFound(this.ctx.clients.core.deleteNamespacedPod({
      name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', body: { gracePeriodSeconds: 0, preconditions: { uid } },
    }));
  }

  private async mountVolumes(pod: k8s.V1Pod, node: SimNode, entry: PodRecord): Promise<void> {
    const namespace = pod.metadata?.namespace ?? '';
    for (const { volume, claim } of claimNames(pod)) {
      if (entry.volumes.some((v) => v.volumeName === volume)) continue;
      const pvc = this.pvcs.get(claim, namespace);
      const pvName = pvc?.spec?.volumeName;
      if (!pvName || pvc.status?.phase !== 'Bound' || !this.pvs.get(pvName)) throw new RetryAfter(100);
      const volumeDir = path.join(this.podDir(node, entry.uid), 'volumes', 'kubernetes.io~csi', pvName);
      const target = path.join(volumeDir, 'mount');
      await mkdir(volumeDir, { recursive: true });
      await writeFile(path.join(volumeDir, 'vol_data.json'), JSON.stringify({
        attachmentID: `csi-${randomBytes(32).toString('hex')}`, driverName, nodeName: node.name, specVolID: pvName,
        volumeHandle: this.pvs.get(pvName)?.spec?.csi?.volumeHandle ?? pvName, volumeLifecycleMode: 'Persistent',
      }));
      await this.ctx.csi.nodePublish(pvName, target);
      entry.volumes.push({ node: node.name, podNamespace: namespace, podName: pod.metadata?.name ?? '', podUid: entry.uid, volumeName: volume, pvcName: claim, pvName, path: target });
      this.expandQueue.add(`${namespace}/${claim}`);
    }
  }

  private async reportRunning(pod: k8s.V1Pod, node: SimNode, entry: PodRecord): Promise<void> {
    const at = now();
    const running = (image: string, containerName: string): Record<string, unknown> => ({
      name: containerName, image, imageID: `${image.split(':')[0] ?? image}@sha256:${randomBytes(32).toString('hex')}`,
      containerID: `containerd://${randomBytes(32).toString('hex')}`, ready: true, started: true, restartCount: 0,
      state: { running: { startedAt: at } },
    });
    const condition = (type: string): Record<string, unknown> => ({ type, status: 'True', lastTransitionTime: at, lastProbeTime: null });
    const status = {
      phase: 'Running', hostIP: node.ip, hostIPs: [{ ip: node.ip }], podIP: entry.ip, podIPs: [{ ip: entry.ip }],
      startTime: pod.status?.startTime ?? at,
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(condition),
      containerStatuses: (pod.spec?.containers ?? []).map((c) => running(c.image ?? 'unknown', c.name)),
      initContainerStatuses: (pod.spec?.initContainers ?? []).map((c) => ({
        ...running(c.image ?? 'unknown', c.name), ready: true, started: false,
        state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: at, finishedAt: at } },
      })),
    };
    await this.ctx.clients.core.patchNamespacedPodStatus({ name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', body: { status } }, mergePatch);
  }

  /** kubelet's volume manager: finish the file system expansion of a mounted volume. */
  private async syncExpand(key: string): Promise<void> {
    const { namespace } = splitKey(key);
    const pvc = this.ctx.csi.latestPvc(key);
    const status = pvc ? storageResizeStatus(pvc) : undefined;
    if (!pvc || (status !== resizeStatus.nodePending && status !== resizeStatus.nodeInProgress)) return;
    const pvName = pvc.spec?.volumeName ?? '';
    const pv = this.pvs.get(pvName);
    const mounted = this.volumes().find((v) => v.pvName === pvName && v.podNamespace === namespace);
    if (!pv || !mounted) return;
    let current = pvc;
    if (status !== resizeStatus.nodeInProgress) {
      const pickup = this.ctx.csi.currentLatency.kubeletSyncMs;
      if (pickup > 0 && !this.pickupDue.has(key)) {
        this.pickupDue.add(key);
        throw new RetryAfter(pickup);
      }
      this.pickupDue.delete(key);
      try {
        current = this.ctx.csi.rememberPvc(await patchPvcStatus(this.ctx.clients, pvc, nodeResizeInProgress()));
      } catch (err) {
        if (isConflict(err)) throw new RetryAfter(0);
        throw err;
      }
    }
    try {
      const diskBytes = await this.ctx.csi.nodeExpand(current, pvName);
      // kubelet records the PV's size as the new capacity; the disk's size is the same number, known first-hand here.
      this.ctx.csi.rememberPvc(await patchPvcStatus(this.ctx.clients, current, resizeFinished(current, formatQuantity(diskBytes)), false));
      this.recordPodEvent(mounted, 'Normal', 'FileSystemResizeSuccessful', `MountVolume.NodeExpandVolume succeeded for volume "${pvName}" ${mounted.node}`);
    } catch (err) {
      if (err instanceof NodeExpandHeld) throw new RetryAfter(250);
      if (!(err instanceof NodeExpandError)) throw err;
      const failed = err.infeasible ? nodeResizeInfeasible(current, err.message, new Date()) : nodeResizeFailed(current, err.message, new Date());
      this.ctx.csi.rememberPvc(await patchPvcStatus(this.ctx.clients, current, failed, false));
      this.recordPodEvent(mounted, 'Warning', 'FileSystemResizeFailed', `MountVolume.NodeExpandVolume failed for volume "${pvName}" : ${err.message}`);
      this.ctx.csi.touch(key);
      if (!err.infeasible) throw err;
    }
  }

  private recordPodEvent(volume: MountedVolume, type: 'Normal' | 'Warning', reason: string, message: string): void {
    recordEvent(this.ctx.clients, { component: 'kubelet', host: volume.node },
      { kind: 'Pod', apiVersion: 'v1', metadata: { name: volume.podName, namespace: volume.podNamespace, uid: volume.podUid } }, { type, reason, message });
  }

  /** Stops the queues; mounts are left to the mount table's destroy(). */
  async stop(): Promise<void> {
    await Promise.all([this.scheduleQueue.stop(), this.kubeletQueue.stop(), this.expandQueue.stop()]);
  }

  /** Deletes the Node and CSINode objects. */
  async uninstall(): Promise<void> {
    for (const node of this.nodes) {
      await ignoreNotFound(this.ctx.clients.storage.deleteCSINode({ name: node.name })).catch(() => undefined);
      await ignoreNotFound(this.ctx.clients.core.deleteNode({ name: node.name, gracePeriodSeconds: 0 })).catch(() => undefined);
    }
  }
}

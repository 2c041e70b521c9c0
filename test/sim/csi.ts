/**
 * A stand-in for the Azure Disk CSI driver (`disk.csi.azure.com`) with its Kubernetes sidecars:
 *
 * - external-provisioner: PVCs the PV binder annotated with `volume.kubernetes.io/storage-provisioner` get a PV named
 *   `pvc-<uid>` (claimRef, `pv.kubernetes.io/provisioned-by`, zonal node affinity), sized up to whole GiB as Azure does
 *   (or whole MiB for the `-mib` test classes); with WaitForFirstConsumer it waits for `volume.kubernetes.io/selected-node`.
 *   Released PVs with reclaimPolicy Delete are deleted with their disk.
 * - external-resizer: PVCs whose request exceeds their capacity go through ControllerResizeInProgress (condition
 *   Resizing), ControllerExpandVolume, PV capacity, then NodeResizePending (condition FileSystemResizePending) for the
 *   kubelet stand-in, which finishes with NodeExpandVolume (see nodes.ts).
 * - the disks themselves: one tmpfs per PV under `<sim>/disks/`, bind-mounted into pods by the kubelet stand-in, so that
 *   data survives pods moving between nodes as it does on Azure.
 *
 * Faults can be injected per PVC: infeasible controller or node expansion, transient errors, stuck operations, and
 * Azure's rule that a disk of 4 TiB or less cannot grow past 4 TiB while attached (the "growth boundary").
 */
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { formatQuantity, GiB, MiB, parseQuantity, TiB } from '../../shared/quantity.ts';
import { recordEvent, refTo, type EventSource } from './events.ts';
import {
  apiMessage, ignoreNotFound, isAlreadyExists, isConflict, keyOf, mergePatch, RetryAfter, sleep, splitKey, WorkQueue,
  type Clients, type InformerHub, type SimLogger,
} from './kube.ts';
import type { MountTable } from './mounts.ts';
import {
  controllerResizeFailed, controllerResizeInfeasible, controllerResizeInProgress, nodeResizePending, patchPvcStatus,
  resizeStatus, storageCapacity, storageRequest, storageResizeStatus, allocatedStorage, conditionTypes, hasCondition,
} from './resize-status.ts';

export const driverName = 'disk.csi.azure.com';
export const annotations = {
  storageProvisioner: 'volume.kubernetes.io/storage-provisioner',
  betaStorageProvisioner: 'volume.beta.kubernetes.io/storage-provisioner',
  selectedNode: 'volume.kubernetes.io/selected-node',
  provisionedBy: 'pv.kubernetes.io/provisioned-by',
  defaultClass: 'storageclass.kubernetes.io/is-default-class',
  /** Simulation only: the size granularity of a class (Azure: 1Gi). */
  granularity: 'sim.cnpg-ds.io/size-granularity',
} as const;
export const provisionerFinalizer = 'external-provisioner.volume.kubernetes.io/finalizer';
export const zoneLabel = 'topology.disk.csi.azure.com/zone';

/** A StorageClass the simulation creates, with the disk behavior behind it. */
export interface SimStorageClass {
  name: string;
  skuName: 'StandardSSD_LRS' | 'Premium_LRS' | 'StandardSSD_ZRS' | 'Premium_ZRS' | 'PremiumV2_LRS' | 'UltraSSD_LRS';
  allowVolumeExpansion: boolean;
  volumeBindingMode: 'WaitForFirstConsumer' | 'Immediate';
  /** Sizes round up to a multiple of this (Azure: 1 GiB). */
  granularityBytes: number;
  /** Azure's largest disk of the SKU. */
  maxSizeBytes: number;
  /** A disk at or below this size cannot grow past it while attached (Azure: 4 TiB for Standard and Premium SSD v1). */
  growthBoundaryBytes?: number;
  isDefault?: boolean;
}

const v1Max = 32_767 * GiB;

/** AKS's classes, the same at MiB granularity for MiB-scale tests, and one class that does not allow expansion. */
export function defaultStorageClasses(): SimStorageClass[] {
  const wffc = 'WaitForFirstConsumer' as const;
  return [
    { name: 'managed-csi', skuName: 'StandardSSD_LRS', allowVolumeExpansion: true, volumeBindingMode: wffc, granularityBytes: GiB, maxSizeBytes: v1Max, growthBoundaryBytes: 4 * TiB, isDefault: true },
    { name: 'managed-csi-premium', skuName: 'Premium_LRS', allowVolumeExpansion: true, volumeBindingMode: wffc, granularityBytes: GiB, maxSizeBytes: v1Max, growthBoundaryBytes: 4 * TiB },
    { name: 'managed-csi-mib', skuName: 'StandardSSD_LRS', allowVolumeExpansion: true, volumeBindingMode: wffc, granularityBytes: MiB, maxSizeBytes: v1Max },
    { name: 'managed-csi-premium-mib', skuName: 'Premium_LRS', allowVolumeExpansion: true, volumeBindingMode: wffc, granularityBytes: MiB, maxSizeBytes: v1Max },
    { name: 'managed-csi-fixed-mib', skuName: 'StandardSSD_LRS', allowVolumeExpansion: false, volumeBindingMode: wffc, granularityBytes: MiB, maxSizeBytes: v1Max },
  ];
}

export type FaultKind =
  | 'controllerInfeasible' | 'transientControllerError' | 'stuck'
  | 'nodeInfeasible' | 'transientNodeError' | 'stuckNode';

/** A PVC as `namespace/name`, a RegExp tested against `namespace/name`, or a predicate. */
export type PvcMatcher = string | RegExp | ((pvc: k8s.V1PersistentVolumeClaim) => boolean);

export interface FaultSpec {
  kind: FaultKind;
  /** Which PVCs; all when omitted. */
  pvc?: PvcMatcher;
  /** Text of the CSI error (a default that reads like Azure's is used otherwise). */
  message?: string;
  /** How many operations the fault affects before it disappears: transient kinds default to 1, others to forever. */
  times?: number;
}

export interface Fault {
  readonly id: number;
  readonly spec: FaultSpec;
  /** Operations the fault has affected so far. */
  readonly hits: number;
  readonly active: boolean;
  clear(): void;
}

export interface CsiLatency {
  /** Before a PV is created for a PVC. */
  provisionMs: number;
  /** ControllerExpandVolume (Azure: tens of seconds). */
  controllerMs: number;
  /** NodeExpandVolume (resize2fs: about a second). */
  nodeMs: number;
  /** Until kubelet's volume manager notices a pending node expansion (its reconciler runs every 100 ms). */
  kubeletSyncMs: number;
}

export interface CsiOptions {
  storageClasses?: SimStorageClass[];
  latency?: Partial<CsiLatency>;
  /** A filesystem is smaller than its disk (ext4 metadata and journal): the tmpfs gets disk size x (1 - this). Default 0.03. */
  filesystemOverhead?: number;
  /** First retry delay after a failed expansion (doubles up to maxRetryMs). Default 200 ms. */
  retryBaseMs?: number;
  maxRetryMs?: number;
  /** How soon an infeasible expansion is tried again at the same size (external-resizer's slow set). Default 30 s. */
  infeasibleRetryMs?: number;
  subscriptionId?: string;
  resourceGroup?: string;
}

interface Disk {
  name: string;
  path: string;
  sizeBytes: number;
  filesystemBytes: number;
  zone: string;
  published: Set<string>;
}

/** Thrown by the node plugin; `infeasible` errors are final (kubelet will not retry that size). */
export class NodeExpandError extends Error {
  readonly infeasible: boolean;

  constructor(message: string, infeasible: boolean) {
    super(message);
    this.name = 'NodeExpandError';
    this.infeasible = infeasible;
  }
}

/** Thrown by the node plugin while a `stuckNode` fault holds the operation. */
export class NodeExpandHeld extends Error {
  constructor() {
    super('node expansion held by an injected fault');
    this.name = 'NodeExpandHeld';
  }
}

class FaultSet {
  private readonly faults: { id: number; spec: FaultSpec; hits: number; remaining: number }[] = [];
  private nextId = 1;
  private readonly onChange: () => void;

  constructor(onChange: () => void) {
    this.onChange = onChange;
  }

  add(spec: FaultSpec): Fault {
    const transient = spec.kind === 'transientControllerError' || spec.kind === 'transientNodeError';
    const entry = { id: this.nextId++, spec, hits: 0, remaining: spec.times ?? (transient ? 1 : Number.POSITIVE_INFINITY) };
    this.faults.push(entry);
    const remove = (): void => {
      const index = this.faults.indexOf(entry);
      if (index >= 0) this.faults.splice(index, 1);
      this.onChange();
    };
    return {
      id: entry.id, spec,
      get hits() { return entry.hits; },
      get active() { return entry.remaining > 0; },
      clear: remove,
    };
  }

  clear(): void {
    this.faults.splice(0);
    this.onChange();
  }

  /** The first fault of these kinds matching the PVC; with `consume`, counts one hit and retires it when used up. */
  match(pvc: k8s.V1PersistentVolumeClaim, kinds: FaultKind[], consume: boolean): FaultSpec | undefined {
    const entry = this.faults.find((f) => f.remaining > 0 && kinds.includes(f.spec.kind) && matches(f.spec.pvc, pvc));
    if (!entry) return undefined;
    if (consume) {
      entry.hits += 1;
      entry.remaining -= 1;
      if (entry.remaining <= 0) this.faults.splice(this.faults.indexOf(entry), 1);
    }
    return entry.spec;
  }
}

function matches(matcher: PvcMatcher | undefined, pvc: k8s.V1PersistentVolumeClaim): boolean {
  if (matcher === undefined) return true;
  const key = `${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.name ?? ''}`;
  if (typeof matcher === 'string') return matcher === key;
  if (matcher instanceof RegExp) return matcher.test(key);
  return matcher(pvc);
}

export function roundUp(bytes: number, granularity: number): number {
  return Math.ceil(bytes / granularity) * granularity;
}

export interface CsiContext {
  clients: Clients;
  hub: InformerHub;
  mounts: MountTable;
  log: SimLogger;
  /** The zone of a node of the simulation, by name. */
  zoneOfNode(node: string): string | undefined;
  zones: readonly string[];
}

/**
 * The driver: controller side (provisioner, resizer, deleter) and node side (publish/unpublish/expand, called by the
 * kubelet stand-in).
 */
export class CsiDriver {
  readonly name = driverName;
  readonly classes: ReadonlyMap<string, SimStorageClass>;
  private latency: CsiLatency;
  private readonly overhead: number;
  private readonly retryBaseMs: number;
  private readonly infeasibleRetryMs: number;
  private readonly disks = new Map<string, Disk>();
  private readonly faults: FaultSet;
  private readonly boundaryOverrides = new Map<string, number | undefined>();
  private readonly slowSet = new Map<string, number>();
  private readonly finalErrors = new Set<string>();
  /** PVCs as this driver (or the kubelets) last wrote them, until the informer catches up. */
  private readonly written = new Map<string, k8s.V1PersistentVolumeClaim>();
  private readonly provisionQueue: WorkQueue;
  private readonly resizeQueue: WorkQueue;
  private readonly deleteQueue: WorkQueue;
  private readonly ctx: CsiContext;
  private readonly disksDir: string;
  private readonly options: CsiOptions;
  private readonly source: EventSource = { component: 'disk.csi.azure.com_csi-azuredisk-controller' };
  private nextZone = 0;
  private pvcs!: k8s.ObjectCache<k8s.V1PersistentVolumeClaim>;
  private pvs!: k8s.ObjectCache<k8s.V1PersistentVolume>;

  constructor(ctx: CsiContext, options: CsiOptions = {}) {
    this.ctx = ctx;
    this.options = options;
    this.classes = new Map((options.storageClasses ?? defaultStorageClasses()).map((c) => [c.name, c]));
    this.latency = { provisionMs: 0, controllerMs: 50, nodeMs: 50, kubeletSyncMs: 100, ...options.latency };
    this.overhead = options.filesystemOverhead ?? 0.03;
    this.retryBaseMs = options.retryBaseMs ?? 200;
    this.infeasibleRetryMs = options.infeasibleRetryMs ?? 30_000;
    this.disksDir = path.join(ctx.mounts.root, 'disks');
    this.faults = new FaultSet(() => { this.requeueAll(); });
    const onError = (queue: string) => (key: string, err: unknown): void => { ctx.log.debug(`${queue} ${key}: ${apiMessage(err)}`); };
    const maxDelayMs = options.maxRetryMs ?? 5_000;
    this.provisionQueue = new WorkQueue({ name: 'provisioner', sync: (k) => this.syncProvision(k), onError: onError('provision'), baseDelayMs: this.retryBaseMs, maxDelayMs });
    this.resizeQueue = new WorkQueue({ name: 'resizer', sync: (k) => this.syncResize(k), onError: onError('resize'), baseDelayMs: this.retryBaseMs, maxDelayMs });
    this.deleteQueue = new WorkQueue({ name: 'deleter', sync: (k) => this.syncDelete(k), onError: onError('delete'), baseDelayMs: this.retryBaseMs, maxDelayMs });
  }

  /** Registers the informers (call before the hub starts). */
  register(): void {
    const { hub, clients } = this.ctx;
    const onPvc = (pvc: k8s.V1PersistentVolumeClaim): void => {
      const key = keyOf(pvc);
      this.provisionQueue.add(key);
      this.resizeQueue.add(key);
    };
    this.pvcs = hub.watch<k8s.V1PersistentVolumeClaim>('/api/v1/persistentvolumeclaims',
      () => clients.core.listPersistentVolumeClaimForAllNamespaces(), { add: onPvc, update: onPvc });
    const onPv = (pv: k8s.V1PersistentVolume): void => {
      this.deleteQueue.add(keyOf(pv));
      const claim = pv.spec?.claimRef;
      if (claim?.namespace && claim.name) this.resizeQueue.add(`${claim.namespace}/${claim.name}`);
    };
    this.pvs = hub.watch<k8s.V1PersistentVolume>('/api/v1/persistentvolumes',
      () => clients.core.listPersistentVolume(), { add: onPv, update: onPv });
  }

  /** Creates the CSIDriver object and the StorageClasses (replacing classes of the same name). */
  async install(): Promise<void> {
    const { storage } = this.ctx.clients;
    try {
      await storage.createCSIDriver({ body: {
        metadata: { name: driverName },
        spec: { attachRequired: true, podInfoOnMount: false, fsGroupPolicy: 'File', volumeLifecycleModes: ['Persistent'] },
      } });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    for (const sc of this.classes.values()) {
      await ignoreNotFound(storage.deleteStorageClass({ name: sc.name }));
      await storage.createStorageClass({ body: this.storageClassObject(sc) });
    }
  }

  private storageClassObject(sc: SimStorageClass): k8s.V1StorageClass {
    const objectAnnotations: Record<string, string> = { [annotations.granularity]: formatQuantity(sc.granularityBytes) };
    if (sc.isDefault) objectAnnotations[annotations.defaultClass] = 'true';
    return {
      metadata: { name: sc.name, annotations: objectAnnotations, labels: { 'addonmanager.kubernetes.io/mode': 'EnsureExists', 'kubernetes.io/cluster-service': 'true' } },
      provisioner: driverName,
      parameters: { skuname: sc.skuName },
      reclaimPolicy: 'Delete',
      volumeBindingMode: sc.volumeBindingMode,
      allowVolumeExpansion: sc.allowVolumeExpansion,
    };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Fault injection and tuning

  injectFault(spec: FaultSpec): Fault {
    return this.faults.add(spec);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /**
   * Overrides the "cannot grow past this while attached" size, for one class or (without `storageClass`) for all.
   * `undefined` removes the boundary.
   */
  setGrowthBoundary(bytes: number | string | undefined, storageClass?: string): void {
    const value = typeof bytes === 'string' ? parseQuantity(bytes) : bytes;
    if (storageClass === undefined) {
      for (const name of this.classes.keys()) this.boundaryOverrides.set(name, value);
    } else {
      this.boundaryOverrides.set(storageClass, value);
    }
    this.requeueAll();
  }

  get currentLatency(): Readonly<CsiLatency> {
    return this.latency;
  }

  setLatency(latency: Partial<CsiLatency>): void {
    this.latency = { ...this.latency, ...latency };
  }

  private requeueAll(): void {
    this.slowSet.clear();
    for (const pvc of this.pvcs.list()) this.resizeQueue.add(keyOf(pvc));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Disks

  /** The filesystem size a disk of this size gets. */
  filesystemBytes(diskBytes: number): number {
    return Math.max(4096, Math.floor(diskBytes * (1 - this.overhead)));
  }

  diskPath(pvName: string): string | undefined {
    return this.disks.get(pvName)?.path;
  }

  /** Whether a disk is attached to a node (published into at least one pod). */
  attached(pvName: string): boolean {
    return (this.disks.get(pvName)?.published.size ?? 0) > 0;
  }

  private async createDisk(name: string, sizeBytes: number, zone: string): Promise<Disk> {
    const existing = this.disks.get(name);
    if (existing) return existing;
    const disk: Disk = { name, path: path.join(this.disksDir, name), sizeBytes, filesystemBytes: this.filesystemBytes(sizeBytes), zone, published: new Set() };
    await this.ctx.mounts.mountTmpfs(disk.path, disk.filesystemBytes);
    this.disks.set(name, disk);
    return disk;
  }

  private async deleteDisk(name: string): Promise<void> {
    const disk = this.disks.get(name);
    if (!disk) return;
    for (const target of disk.published) await this.ctx.mounts.unmount(target);
    await this.ctx.mounts.unmount(disk.path);
    this.disks.delete(name);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Node plugin (NodeStage+NodePublish collapsed into one bind mount; NodeExpandVolume)

  async nodePublish(pvName: string, target: string): Promise<void> {
    const disk = this.disks.get(pvName);
    if (!disk) throw new Error(`rpc error: code = NotFound desc = disk ${pvName} does not exist`);
    if (disk.published.has(target)) return;
    await this.ctx.mounts.bind(disk.path, target);
    disk.published.add(target);
  }

  async nodeUnpublish(pvName: string, target: string): Promise<void> {
    await this.ctx.mounts.unmount(target);
    this.disks.get(pvName)?.published.delete(target);
  }

  /**
   * NodeExpandVolume: grows the filesystem to the disk's current size. Throws NodeExpandError (infeasible or not) or
   * NodeExpandHeld for injected faults. Returns the disk size the filesystem now covers.
   */
  async nodeExpand(pvc: k8s.V1PersistentVolumeClaim, pvName: string): Promise<number> {
    const disk = this.disks.get(pvName);
    if (!disk) throw new NodeExpandError(`rpc error: code = NotFound desc = disk ${pvName} is not staged on this node`, false);
    if (this.faults.match(pvc, ['stuckNode'], false)) throw new NodeExpandHeld();
    await sleep(this.latency.nodeMs);
    const fault = this.faults.match(pvc, ['nodeInfeasible', 'transientNodeError'], true);
    if (fault?.kind === 'nodeInfeasible') {
      throw new NodeExpandError(`rpc error: code = InvalidArgument desc = ${fault.message ?? 'resize2fs: Operation not permitted while the filesystem is mounted read-only'}`, true);
    }
    if (fault?.kind === 'transientNodeError') {
      throw new NodeExpandError(`rpc error: code = Internal desc = ${fault.message ?? 'could not get the block device size of /dev/sdc: exit status 1'}`, false);
    }
    const target = this.filesystemBytes(disk.sizeBytes);
    if (target > disk.filesystemBytes) {
      await this.ctx.mounts.resizeTmpfs(disk.path, target);
      disk.filesystemBytes = target;
    }
    return disk.sizeBytes;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Provisioner

  private classOf(name: string | undefined): SimStorageClass | undefined {
    return name === undefined ? undefined : this.classes.get(name);
  }

  /** A claim this provisioner should provision now, with its class and selected node. */
  private provisionable(key: string): { pvc: k8s.V1PersistentVolumeClaim; sc: SimStorageClass; selectedNode?: string; pvName: string } | undefined {
    const { namespace, name } = splitKey(key);
    const pvc = this.pvcs.get(name, namespace);
    const meta = pvc?.metadata;
    if (!pvc || !meta?.uid || pvc.spec?.volumeName || meta.deletionTimestamp) return undefined;
    if ((pvc.status?.phase ?? 'Pending') !== 'Pending') return undefined;
    const ann = meta.annotations ?? {};
    if ((ann[annotations.storageProvisioner] ?? ann[annotations.betaStorageProvisioner]) !== driverName) return undefined;
    const sc = this.classOf(pvc.spec?.storageClassName);
    const selectedNode = ann[annotations.selectedNode];
    if (!sc || (sc.volumeBindingMode === 'WaitForFirstConsumer' && !selectedNode)) return undefined;
    const pvName = `pvc-${meta.uid}`;
    if (this.pvs.get(pvName)) return undefined;
    return { pvc, sc, pvName, ...(selectedNode ? { selectedNode } : {}) };
  }

  private async syncProvision(key: string): Promise<void> {
    const work = this.provisionable(key);
    if (!work) return;
    const { pvc, sc, selectedNode, pvName } = work;
    const requested = parseQuantity(storageRequest(pvc) ?? '1Gi');
    const size = roundUp(Math.max(requested, sc.granularityBytes), sc.granularityBytes);
    const pvcObject = refTo('PersistentVolumeClaim', 'v1', pvc.metadata);
    if (size > sc.maxSizeBytes) {
      recordEvent(this.ctx.clients, this.source, pvcObject, {
        type: 'Warning', reason: 'ProvisioningFailed',
        message: `failed to provision volume with StorageClass "${sc.name}": rpc error: code = InvalidArgument desc = the requested size ${formatQuantity(size)} exceeds the maximum ${formatQuantity(sc.maxSizeBytes)} of ${sc.skuName}`,
      });
      throw new RetryAfter(5_000);
    }
    const zone = (selectedNode ? this.ctx.zoneOfNode(selectedNode) : undefined) ?? this.pickZone();
    recordEvent(this.ctx.clients, this.source, pvcObject, {
      type: 'Normal', reason: 'Provisioning', message: `External provisioner is provisioning volume for claim "${key}"`,
    });
    if (this.latency.provisionMs > 0) await sleep(this.latency.provisionMs);
    await this.createDisk(pvName, size, zone);
    try {
      await this.ctx.clients.core.createPersistentVolume({ body: this.pvObject(pvc, sc, pvName, size, zone) });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    recordEvent(this.ctx.clients, this.source, pvcObject, {
      type: 'Normal', reason: 'ProvisioningSucceeded', message: `Successfully provisioned volume ${pvName}`,
    });
  }

  private pickZone(): string {
    const zone = this.ctx.zones[this.nextZone % this.ctx.zones.length] ?? '0';
    this.nextZone += 1;
    return zone;
  }

  private pvObject(pvc: k8s.V1PersistentVolumeClaim, sc: SimStorageClass, pvName: string, size: number, zone: string): k8s.V1PersistentVolume {
    const subscription = this.options.subscriptionId ?? '00000000-0000-0000-0000-000000000000';
    const group = this.options.resourceGroup ?? 'mc_cnpg-ds-sim_aks_eastus';
    const meta = pvc.metadata ?? {};
    return {
      metadata: {
        name: pvName,
        annotations: {
          [annotations.provisionedBy]: driverName,
          'volume.kubernetes.io/provisioner-deletion-secret-name': '',
          'volume.kubernetes.io/provisioner-deletion-secret-namespace': '',
        },
        finalizers: [provisionerFinalizer],
      },
      spec: {
        capacity: { storage: formatQuantity(size) },
        accessModes: pvc.spec?.accessModes ?? ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Delete',
        storageClassName: sc.name,
        volumeMode: pvc.spec?.volumeMode ?? 'Filesystem',
        claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: meta.namespace, name: meta.name, uid: meta.uid, resourceVersion: meta.resourceVersion },
        csi: {
          driver: driverName,
          volumeHandle: `/subscriptions/${subscription}/resourceGroups/${group}/providers/Microsoft.Compute/disks/${pvName}`,
          fsType: 'ext4',
          volumeAttributes: {
            'csi.storage.k8s.io/pv/name': pvName,
            'csi.storage.k8s.io/pvc/name': meta.name ?? '',
            'csi.storage.k8s.io/pvc/namespace': meta.namespace ?? '',
            requestedsizegib: String(Math.ceil(size / GiB)),
            skuname: sc.skuName,
            'storage.kubernetes.io/csiProvisionerIdentity': 'cnpg-ds-sim-disk.csi.azure.com',
          },
        },
        nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: zoneLabel, operator: 'In', values: [zone] }] }] } },
      },
    };
  }

  private async syncDelete(name: string): Promise<void> {
    const pv = this.pvs.get(name);
    if (!pv) {
      // Deleted by someone else (e.g. forced): the disk goes too.
      await this.deleteDisk(name);
      return;
    }
    if (pv.spec?.csi?.driver !== driverName) return;
    const released = pv.status?.phase === 'Released' || pv.status?.phase === 'Failed';
    if (!released || pv.spec.persistentVolumeReclaimPolicy !== 'Delete') return;
    await this.deleteDisk(name);
    const finalizers = pv.metadata?.finalizers ?? [];
    if (finalizers.includes(provisionerFinalizer)) {
      await this.ctx.clients.core.patchPersistentVolume({
        name, body: { metadata: { resourceVersion: pv.metadata?.resourceVersion, finalizers: finalizers.filter((f) => f !== provisionerFinalizer) } },
      }, mergePatch);
    }
    await ignoreNotFound(this.ctx.clients.core.deletePersistentVolume({ name }));
  }

  /** Deletes every disk and (when the API server is there) its PV; used by Simulation.stop(). */
  async deleteAllVolumes(deletePvs = true): Promise<void> {
    for (const name of [...this.disks.keys()]) {
      await this.deleteDisk(name);
      if (!deletePvs) continue;
      try {
        await this.ctx.clients.core.patchPersistentVolume({ name, body: { metadata: { finalizers: null } } }, mergePatch);
        await this.ctx.clients.core.deletePersistentVolume({ name, gracePeriodSeconds: 0 });
      } catch {
        // the PV may already be gone
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Resizer (external-resizer's expandAndRecover, with ControllerExpandVolume of Azure Disk)

  private boundaryOf(sc: SimStorageClass): number | undefined {
    return this.boundaryOverrides.has(sc.name) ? this.boundaryOverrides.get(sc.name) : sc.growthBoundaryBytes;
  }

  /** The size the resizer works towards, or undefined when there is nothing for the controller side to do. */
  private targetSize(key: string, pvc: k8s.V1PersistentVolumeClaim, pvBytes: number): number | undefined {
    const spec = parseQuantity(storageRequest(pvc) ?? '0');
    const capacity = parseQuantity(storageCapacity(pvc) ?? '0');
    const allocatedText = allocatedStorage(pvc);
    const allocated = allocatedText === undefined ? undefined : parseQuantity(allocatedText);
    const status = storageResizeStatus(pvc);
    switch (status) {
      case resizeStatus.nodePending:
      case resizeStatus.nodeInProgress:
        // kubelet's turn, unless the user asked for more than what the controller already did
        return spec > pvBytes && spec !== allocated ? spec : undefined;
      case resizeStatus.nodeInfeasible:
        // kubelet will not retry this size; only a new request restarts the expansion
        return spec !== allocated ? spec : undefined;
      case resizeStatus.controllerInProgress:
        return this.finalErrors.has(key) ? spec : (allocated ?? spec);
      case resizeStatus.controllerInfeasible:
        return spec;
      default:
        return spec > capacity ? spec : undefined;
    }
  }

  /** The PVC, its PV and class, when this driver's resizer is responsible for the claim. */
  private resizable(key: string): { pvc: k8s.V1PersistentVolumeClaim; pv: k8s.V1PersistentVolume; sc: SimStorageClass; pvBytes: number } | undefined {
    const pvc = this.latestPvc(key);
    const volumeName = pvc?.spec?.volumeName;
    if (!pvc || pvc.status?.phase !== 'Bound' || !volumeName) return undefined;
    const pv = this.pvs.get(volumeName);
    if (pv?.spec?.csi?.driver !== driverName || pv.spec.claimRef?.uid !== pvc.metadata?.uid) return undefined;
    const sc = this.classOf(pv.spec.storageClassName);
    return sc ? { pvc, pv, sc, pvBytes: parseQuantity(pv.spec.capacity?.storage ?? '0') } : undefined;
  }

  /** An infeasible size is retried only after the slow-set delay (unless the request changed). */
  private checkSlowSet(key: string, pvc: k8s.V1PersistentVolumeClaim, target: number): void {
    const allocated = allocatedStorage(pvc);
    const retryAt = this.slowSet.get(key);
    if (storageResizeStatus(pvc) !== resizeStatus.controllerInfeasible || allocated === undefined || retryAt === undefined) return;
    if (parseQuantity(allocated) === target && Date.now() < retryAt) throw new RetryAfter(retryAt - Date.now());
  }

  /** markControllerResizeInProgress, unless the PVC already says so for this size. */
  private async markInProgress(pvc: k8s.V1PersistentVolumeClaim, pvName: string, target: number): Promise<k8s.V1PersistentVolumeClaim> {
    const allocated = allocatedStorage(pvc);
    const marked = allocated !== undefined && parseQuantity(allocated) === target
      && storageResizeStatus(pvc) === resizeStatus.controllerInProgress && hasCondition(pvc, conditionTypes.resizing);
    if (marked) return pvc;
    const current = this.rememberPvc(await patchPvcStatus(this.ctx.clients, pvc, controllerResizeInProgress(pvc, formatQuantity(target), new Date())));
    recordEvent(this.ctx.clients, { component: 'external-resizer disk.csi.azure.com' }, refTo('PersistentVolumeClaim', 'v1', current.metadata), {
      type: 'Normal', reason: 'Resizing', message: `External resizer is resizing volume ${pvName}`,
    });
    return current;
  }

  private async syncResize(key: string): Promise<void> {
    const work = this.resizable(key);
    if (!work) return;
    const { pvc, pv, sc, pvBytes } = work;
    const target = this.targetSize(key, pvc, pvBytes);
    this.ctx.log.debug(`resizer ${key}`, { request: storageRequest(pvc), capacity: storageCapacity(pvc), allocated: allocatedStorage(pvc), status: storageResizeStatus(pvc), pv: pvBytes, target });
    if (target === undefined) return;
    this.checkSlowSet(key, pvc, target);
    const current = await this.markInProgress(pvc, pv.metadata?.name ?? '', target);
    if (this.faults.match(current, ['stuck'], false)) throw new RetryAfter(250);
    await sleep(this.latency.controllerMs);
    const error = this.controllerExpandError(current, sc, pvBytes, target, pv.metadata?.name ?? '');
    if (error) {
      await this.failControllerExpansion(key, current, error);
      return;
    }
    this.finalErrors.delete(key);
    this.slowSet.delete(key);
    await this.completeControllerExpansion(current, pv, roundUp(target, sc.granularityBytes));
  }

  /** ControllerExpandVolume's verdict: undefined for success. */
  private controllerExpandError(
    pvc: k8s.V1PersistentVolumeClaim, sc: SimStorageClass, pvBytes: number, target: number, pvName: string,
  ): { infeasible: boolean; message: string } | undefined {
    const rounded = roundUp(target, sc.granularityBytes);
    // Expanding to a size the disk already has is a no-op that succeeds (e.g. a request lowered back after a failure).
    if (rounded <= pvBytes) return undefined;
    if (rounded > sc.maxSizeBytes) {
      return { infeasible: true, message: `rpc error: code = OutOfRange desc = the requested size ${formatQuantity(rounded)} exceeds the maximum ${formatQuantity(sc.maxSizeBytes)} of ${sc.skuName}` };
    }
    const boundary = this.boundaryOf(sc);
    if (boundary !== undefined && pvBytes <= boundary && rounded > boundary && this.attached(pvName)) {
      const gb = (bytes: number): number => Math.ceil(bytes / GiB);
      return {
        infeasible: false,
        message: `rpc error: code = Internal desc = failed to resize disk(${pvName}) with error(PUT https://management.azure.com/.../disks/${pvName}\n`
          + `RESPONSE 409: 409 Conflict\nERROR CODE: OperationNotAllowed\nMessage: Cannot resize disk ${pvName} from ${gb(pvBytes)} GB to ${gb(rounded)} GB `
          + `while it is attached to a running VM: disks of ${gb(boundary)} GB or less can only be resized past ${gb(boundary)} GB when detached or the VM is deallocated.)`,
      };
    }
    const fault = this.faults.match(pvc, ['controllerInfeasible', 'transientControllerError'], true);
    if (fault?.kind === 'controllerInfeasible') {
      return { infeasible: true, message: `rpc error: code = OutOfRange desc = ${fault.message ?? `the requested size ${formatQuantity(rounded)} is not supported by disk ${pvName}`}` };
    }
    if (fault?.kind === 'transientControllerError') {
      return { infeasible: false, message: `rpc error: code = Internal desc = ${fault.message ?? `failed to resize disk(${pvName}): the Azure API is temporarily unavailable (429 TooManyRequests)`}` };
    }
    return undefined;
  }

  private async failControllerExpansion(key: string, pvc: k8s.V1PersistentVolumeClaim, error: { infeasible: boolean; message: string }): Promise<void> {
    this.finalErrors.add(key);
    const now = new Date();
    // Not guarded by resourceVersion, like markControllerExpansionFailed: the failure must be recorded.
    const updated = this.rememberPvc(error.infeasible
      ? await patchPvcStatus(this.ctx.clients, pvc, controllerResizeInfeasible(pvc, error.message, now), false)
      : await patchPvcStatus(this.ctx.clients, pvc, controllerResizeFailed(pvc, error.message, now), false));
    recordEvent(this.ctx.clients, { component: 'external-resizer disk.csi.azure.com' }, refTo('PersistentVolumeClaim', 'v1', updated.metadata), {
      type: 'Warning', reason: 'VolumeResizeFailed', message: `resize volume "${pvc.spec?.volumeName ?? ''}" by resizer "${driverName}" failed: ${error.message}`,
    });
    if (error.infeasible) {
      this.slowSet.set(key, Date.now() + this.infeasibleRetryMs);
      throw new RetryAfter(this.infeasibleRetryMs);
    }
    throw new Error(error.message);
  }

  private async completeControllerExpansion(pvc: k8s.V1PersistentVolumeClaim, pv: k8s.V1PersistentVolume, newBytes: number): Promise<void> {
    const pvName = pv.metadata?.name ?? '';
    const pvBytes = parseQuantity(pv.spec?.capacity?.storage ?? '0');
    if (newBytes > pvBytes) {
      const disk = this.disks.get(pvName);
      if (disk) disk.sizeBytes = Math.max(disk.sizeBytes, newBytes);
      await this.ctx.clients.core.patchPersistentVolume({ name: pvName, body: { spec: { capacity: { storage: formatQuantity(newBytes) } } } }, mergePatch);
    }
    try {
      this.rememberPvc(await patchPvcStatus(this.ctx.clients, pvc, nodeResizePending(pvc, new Date())));
    } catch (err) {
      // A newer PVC: the next sync sees the PV already expanded and only records the pending node expansion.
      if (isConflict(err)) throw new RetryAfter(0);
      throw err;
    }
    recordEvent(this.ctx.clients, { component: 'external-resizer disk.csi.azure.com' }, refTo('PersistentVolumeClaim', 'v1', pvc.metadata), {
      type: 'Normal', reason: 'FileSystemResizeRequired', message: 'Require file system resize of volume on node',
    });
  }

  /**
   * The newest PVC known: the informer's copy, or the one this process wrote last if the informer has not seen it yet
   * (external-resizer updates its cache after each write for the same reason: never act twice on a stale object).
   */
  latestPvc(key: string): k8s.V1PersistentVolumeClaim | undefined {
    const { namespace, name } = splitKey(key);
    const cached = this.pvcs.get(name, namespace);
    const mine = this.written.get(key);
    if (!mine) return cached;
    if (cached && Number(cached.metadata?.resourceVersion ?? 0) >= Number(mine.metadata?.resourceVersion ?? 0)) {
      this.written.delete(key);
      return cached;
    }
    return cached ? mine : undefined;
  }

  /** Records a PVC returned by a write, see latestPvc(). */
  rememberPvc(pvc: k8s.V1PersistentVolumeClaim): k8s.V1PersistentVolumeClaim {
    this.written.set(keyOf(pvc), pvc);
    return pvc;
  }

  /** Requeues a PVC for the resizer (the kubelet stand-in calls this after node expansion changes). */
  touch(key: string): void {
    this.resizeQueue.add(key);
  }

  async stop(): Promise<void> {
    await Promise.all([this.provisionQueue.stop(), this.resizeQueue.stop(), this.deleteQueue.stop()]);
  }
}

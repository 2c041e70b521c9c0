/**
 * Which CNPG volumes are on this node, and where kubelet mounted them.
 *
 * `resolveTargets` is pure: pods + PVC and PV lookups -> VolumeTargets. `KubeDiscovery` feeds it from the API server: an
 * informer on the pods of this node (field selector `spec.nodeName`, label `cnpg.io/cluster`), an informer on CNPG's PVCs
 * (label `cnpg.io/cluster`), and PVs read one by one when a PVC on this node is bound to one (a PV's volume source and mode
 * never change, and watching every PV of a large cluster would cost far more memory than the few this node needs).
 *
 * The informers (kube/informer.ts) relist after a 410 and restart after any other error with jittered exponential backoff,
 * keeping their last cache meanwhile so probing carries on through API server outages.
 */
import path from 'node:path';
import { errorMessage } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { cnpgLabels, roleOfPvcRole, type VolumeRole } from '../shared/cnpg.ts';
import type { VolumeIdentity } from '../shared/readings.ts';
import { retryBackoff, type Backoff } from '../shared/backoff.ts';
import type { KubeClient } from './kube/client.ts';
import { Informer } from './kube/informer.ts';
import { trimPod, trimPv, trimPvc } from './kube/trim.ts';
import type { PersistentVolume, PersistentVolumeClaim, Pod, PodVolume } from './kube/types.ts';
import type { VolumeTarget } from './prober.ts';

const { cluster: clusterLabel, instanceName: instanceNameLabel, pvcRole: pvcRoleLabel, tablespaceName: tablespaceNameLabel, podRole: podRoleLabel } = cnpgLabels;

/**
 * In-tree volume sources that kubelet hands to a CSI driver (CSI migration, GA since Kubernetes 1.25..1.27): they are mounted
 * under `kubernetes.io~csi` like any CSI volume.
 */
const migratedSources = [
  'awsElasticBlockStore', 'gcePersistentDisk', 'azureDisk', 'azureFile', 'cinder', 'vsphereVolume', 'portworxVolume',
] as const;

export interface Lookups {
  pvc(namespace: string, name: string): PersistentVolumeClaim | undefined;
  pv(name: string): PersistentVolume | undefined;
}

export interface Waiting {
  pod: string;
  pvc: string;
  reason: 'PvcNotFound' | 'PvcNotBound' | 'PvNotFound';
}

export interface Resolution {
  targets: VolumeTarget[];
  /** Volumes that cannot be placed yet, and why. */
  waiting: Waiting[];
  /** PV names the lookups did not know (the caller fetches them and resolves again). */
  missingPvs: string[];
}

function roleOf(pvc: PersistentVolumeClaim, volumeName: string): VolumeRole | undefined {
  const label = pvc.metadata?.labels?.[pvcRoleLabel];
  if (label !== undefined) return roleOfPvcRole(label);
  if (volumeName === 'pgdata') return 'data';
  if (volumeName === 'pg-wal') return 'wal';
  if (volumeName.startsWith('tbs-')) return 'tablespace';
  return undefined;
}

/** Where kubelet mounts the PV for this pod, or why the agent cannot probe it. */
export function placement(pv: PersistentVolume, pvc: PersistentVolumeClaim, podDir: string):
  Pick<VolumeTarget, 'unsupported' | 'requireMountPoint'> & { path: string } {
  const pvName = pv.metadata?.name ?? '';
  const spec = pv.spec ?? {};
  const csiPath = path.join(podDir, 'volumes', 'kubernetes.io~csi', pvName, 'mount');
  if (spec.volumeMode === 'Block' || pvc.spec?.volumeMode === 'Block') {
    return {
      path: csiPath, requireMountPoint: false,
      unsupported: { reason: 'BlockMode', message: `PV ${pvName} is a raw block device: it has no filesystem to measure` },
    };
  }
  if (spec.csi || migratedSources.some((source) => spec[source] !== undefined)) {
    return { path: csiPath, requireMountPoint: true };
  }
  if (spec.local) {
    return { path: path.join(podDir, 'volumes', 'kubernetes.io~local-volume', pvName), requireMountPoint: false };
  }
  const source = Object.keys(spec).find((k) => !['accessModes', 'capacity', 'claimRef', 'mountOptions', 'nodeAffinity',
    'persistentVolumeReclaimPolicy', 'storageClassName', 'volumeMode', 'volumeAttributesClassName'].includes(k)) ?? 'unknown';
  return {
    path: csiPath, requireMountPoint: false,
    unsupported: { reason: 'UnsupportedVolumeSource', message: `PV ${pvName} uses volume source ${source}, which the agent cannot probe` },
  };
}

function isActive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

/** Higher is better when two pods on the node mount the same PVC (a job and an instance, an old and a new pod). */
function preference(pod: Pod): number {
  let score = 0;
  if (pod.metadata?.labels?.[podRoleLabel] === 'instance') score += 4;
  if (!pod.metadata?.deletionTimestamp) score += 2;
  if (pod.status?.phase === 'Running') score += 1;
  return score;
}

interface Candidate { target: VolumeTarget; pod: Pod }

function better(a: Candidate, b: Candidate): boolean {
  const pa = preference(a.pod);
  const pb = preference(b.pod);
  if (pa !== pb) return pa > pb;
  const ta = new Date(a.pod.metadata?.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.pod.metadata?.creationTimestamp ?? 0).getTime();
  return ta > tb;
}

interface PodContext { pod: Pod; namespace: string; podName: string; podUid: string; podDir: string; node: string }

function targetOf(ctx: PodContext, volume: PodVolume, lookups: Lookups, result: Resolution): VolumeTarget | undefined {
  const claimName = volume.persistentVolumeClaim?.claimName;
  if (!claimName) return undefined;
  const pvc = lookups.pvc(ctx.namespace, claimName);
  if (!pvc) {
    result.waiting.push({ pod: ctx.podName, pvc: claimName, reason: 'PvcNotFound' });
    return undefined;
  }
  const role = roleOf(pvc, volume.name);
  if (!role) return undefined; // not a PostgreSQL volume
  const pvName = pvc.spec?.volumeName;
  if (!pvName) {
    result.waiting.push({ pod: ctx.podName, pvc: claimName, reason: 'PvcNotBound' });
    return undefined;
  }
  const pv = lookups.pv(pvName);
  if (!pv) {
    result.waiting.push({ pod: ctx.podName, pvc: claimName, reason: 'PvNotFound' });
    result.missingPvs.push(pvName);
    return undefined;
  }
  const labels = pvc.metadata?.labels ?? {};
  const podLabels = ctx.pod.metadata?.labels ?? {};
  const where = placement(pv, pvc, ctx.podDir);
  const identity: VolumeIdentity = {
    key: `${ctx.namespace}/${claimName}`, namespace: ctx.namespace,
    cluster: labels[clusterLabel] ?? podLabels[clusterLabel] ?? '',
    instance: labels[instanceNameLabel] ?? podLabels[instanceNameLabel] ?? ctx.podName,
    role, pvc: claimName, pv: pvName, podName: ctx.podName, podUid: ctx.podUid, node: ctx.node, path: where.path,
  };
  if (role === 'tablespace') identity.tablespace = labels[tablespaceNameLabel] ?? volume.name.replace(/^tbs-/, '');
  const target: VolumeTarget = { identity, requireMountPoint: where.requireMountPoint };
  if (where.unsupported) target.unsupported = where.unsupported;
  return target;
}

/** Every CNPG volume that the given pods mount on `node`, one per PVC. */
export function resolveTargets(pods: readonly Pod[], lookups: Lookups, kubeletRoot: string, node: string): Resolution {
  const result: Resolution = { targets: [], waiting: [], missingPvs: [] };
  const chosen = new Map<string, Candidate>();
  for (const pod of pods) {
    const namespace = pod.metadata?.namespace;
    const podUid = pod.metadata?.uid;
    if (!namespace || !podUid || pod.spec?.nodeName !== node || !isActive(pod)) continue;
    const ctx: PodContext = {
      pod, namespace, podName: pod.metadata?.name ?? '', podUid, node, podDir: path.join(kubeletRoot, 'pods', podUid),
    };
    for (const volume of pod.spec.volumes ?? []) {
      const target = targetOf(ctx, volume, lookups, result);
      if (!target) continue;
      const candidate = { target, pod };
      const current = chosen.get(target.identity.key);
      if (!current || better(candidate, current)) chosen.set(target.identity.key, candidate);
    }
  }
  result.targets = [...chosen.values()].map((c) => c.target).sort((a, b) => a.identity.key.localeCompare(b.identity.key));
  result.missingPvs = [...new Set(result.missingPvs)].sort();
  return result;
}

export interface DiscoveryOptions {
  kube: KubeClient;
  node: string;
  kubeletRoot: string;
  logger: Logger;
  onTargets: (targets: VolumeTarget[]) => void;
  backoff?: Backoff;
  /** Coalesces bursts of events into one resolution (default 20 ms). */
  debounceMs?: number;
  /** Resolves again periodically even without events, e.g. to retry PV reads (default 30 s). */
  resyncMs?: number;
}

export interface DiscoveryStatus {
  synced: boolean;
  connected: boolean;
  pods: number;
  targets: number;
  waiting: Waiting[];
}

export class KubeDiscovery {
  private readonly pods: Informer<Pod>;
  private readonly pvcs: Informer<PersistentVolumeClaim>;
  private readonly pvCache = new Map<string, PersistentVolume>();
  private readonly options: DiscoveryOptions;
  private debounceTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private last: Resolution = { targets: [], waiting: [], missingPvs: [] };
  private stopped = false;
  private resolving = false;
  private resolveAgain = false;

  constructor(options: DiscoveryOptions) {
    this.options = options;
    const common = {
      client: options.kube, backoff: options.backoff ?? retryBackoff, logger: options.logger,
      labelSelector: clusterLabel, onChange: () => { this.schedule(); },
    };
    this.pods = new Informer<Pod>({
      ...common, name: 'pods', path: '/api/v1/pods', fieldSelector: `spec.nodeName=${options.node}`, trim: trimPod,
    });
    this.pvcs = new Informer<PersistentVolumeClaim>({
      ...common, name: 'persistentvolumeclaims', path: '/api/v1/persistentvolumeclaims', trim: trimPvc,
    });
  }

  /** Lists and starts watching; resolves after the first attempt (failures are retried in the background). */
  async start(): Promise<void> {
    await Promise.all([this.pods.start(), this.pvcs.start()]);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    await Promise.all([this.pods.stop(), this.pvcs.stop()]);
  }

  status(): DiscoveryStatus {
    return {
      synced: this.pods.synced && this.pvcs.synced, connected: this.pods.connected && this.pvcs.connected,
      pods: this.pods.list().length, targets: this.last.targets.length, waiting: this.last.waiting,
    };
  }

  private schedule(delayMs = this.options.debounceMs ?? 20): void {
    if (this.stopped || this.debounceTimer) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.resolve();
    }, delayMs);
  }

  private async resolve(): Promise<void> {
    if (this.resolving) {
      this.resolveAgain = true;
      return;
    }
    this.resolving = true;
    try {
      let resolution = this.resolveOnce();
      if (resolution.missingPvs.length > 0 && await this.fetchPvs(resolution.missingPvs)) resolution = this.resolveOnce();
      this.publish(resolution);
    } catch (err) {
      this.options.logger.error('volume discovery failed', { err });
    } finally {
      this.resolving = false;
      if (this.resolveAgain) {
        this.resolveAgain = false;
        this.schedule(0);
      }
      this.scheduleResync();
    }
  }

  private resolveOnce(): Resolution {
    const lookups: Lookups = {
      pvc: (namespace, name) => this.pvcs.get(name, namespace),
      pv: (name) => this.pvCache.get(name),
    };
    const resolution = resolveTargets(this.pods.list(), lookups, this.options.kubeletRoot, this.options.node);
    // Keep only the PVs still in use.
    const used = new Set(resolution.targets.map((t) => t.identity.pv));
    for (const name of this.pvCache.keys()) if (!used.has(name)) this.pvCache.delete(name);
    return resolution;
  }

  /** Reads the named PVs; true when at least one was found. */
  private async fetchPvs(names: readonly string[]): Promise<boolean> {
    const results = await Promise.all(names.map(async (name) => {
      try {
        const pv = await this.options.kube.get<PersistentVolume>(`/api/v1/persistentvolumes/${encodeURIComponent(name)}`);
        this.pvCache.set(name, trimPv(pv));
        return true;
      } catch (err) {
        this.options.logger.warn('cannot read PV', { pv: name, err: errorMessage(err) });
        return false;
      }
    }));
    return results.some(Boolean);
  }

  private publish(resolution: Resolution): void {
    const before = this.last.targets.length;
    this.last = resolution;
    if (before !== resolution.targets.length) {
      this.options.logger.info('volumes on node', { volumes: resolution.targets.length, waiting: resolution.waiting.length });
    }
    this.options.onTargets(resolution.targets);
  }

  private scheduleResync(): void {
    if (this.stopped) return;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    // Sooner while a PV could not be read: the volume is on the node but not yet probed.
    const delay = this.last.missingPvs.length > 0 ? 2000 : this.options.resyncMs ?? 30_000;
    this.resyncTimer = setTimeout(() => { this.schedule(0); }, delay);
    this.resyncTimer.unref();
  }
}

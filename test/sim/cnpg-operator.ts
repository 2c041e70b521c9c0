/**
 * A stand-in for the CloudNativePG operator, doing what CNPG does for storage:
 *
 * - installs the Cluster CRD (cnpg-crd.yaml) and, as a ValidatingAdmissionPolicy, CNPG's webhook rule that storage sizes
 *   cannot shrink;
 * - creates instances `<cluster>-<serial>` one at a time: PVCs (data, WAL, one per tablespace) with CNPG's names,
 *   labels, annotations and owner reference, created at the size in the Cluster spec, then the instance pod
 *   (volumes `pgdata`, `pg-wal`, `tbs-<name>`); scale-up adds serial latestGeneratedNode+1, scale-down removes the highest
 *   replica with its PVCs;
 * - keeps the primary role labels (`cnpg.io/instanceRole`, `role`) and status.currentPrimary/targetPrimary; a deleted
 *   primary fails over to a ready replica; `failover()` promotes a chosen instance the way `kubectl cnpg promote` does;
 * - raising a size in the spec grows every smaller PVC of that volume (when resizeInUseVolumes is not false) and leaves
 *   larger ones alone ("cannot decrease storage requirement"), as CNPG's reconcilePVCQuantity does;
 * - writes the status fields the add-on reads (instances, readyInstances, instanceNames, currentPrimary, phase,
 *   conditions Ready and ContinuousArchiving, healthyPVC) through the status subresource;
 * - honours `cnpg.io/reconciliationLoop: disabled`.
 *
 * Not simulated: PostgreSQL itself, initdb/join Jobs, Services, PodDisruptionBudgets, backups, rolling updates.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { parseQuantity } from '../../shared/quantity.ts';
import {
  annotations, appName, cnpgApiVersion, cnpgGroup, cnpgVersion, databaseComponent, instanceName, instanceSerial, labels,
  managerName, mountPathInPod, podVolumeName, pvcLabels, pvcName, pvcStatuses, volumeOfPvc, type VolumeRef,
} from './cnpg-names.ts';
import { recordEvent } from './events.ts';
import {
  apiMessage, ignoreNotFound, isAlreadyExists, isNotFound, keyOf, mergePatch, rawRequest, RetryAfter, sleep, splitKey, waitUntil, WorkQueue,
  type Clients, type InformerHub, type SimLogger,
} from './kube.ts';

/** The parts of a PersistentVolumeClaimSpec a pvcTemplate typically sets (as plain JSON). */
export interface PvcTemplate {
  accessModes?: string[];
  storageClassName?: string;
  volumeMode?: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  [field: string]: unknown;
}

export interface StorageConfiguration {
  size?: string;
  storageClass?: string;
  resizeInUseVolumes?: boolean;
  pvcTemplate?: PvcTemplate;
}

export interface TablespaceConfiguration {
  name: string;
  storage: StorageConfiguration;
  owner?: { name?: string };
  temporary?: boolean;
}

export interface ClusterSpec {
  instances: number;
  imageName?: string;
  storage: StorageConfiguration;
  walStorage?: StorageConfiguration;
  tablespaces?: TablespaceConfiguration[];
  inheritedMetadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  affinity?: {
    enablePodAntiAffinity?: boolean; topologyKey?: string; podAntiAffinityType?: string; nodeSelector?: Record<string, string>;
    tolerations?: k8s.V1Toleration[];
  };
  backup?: Record<string, unknown>;
  plugins?: { name: string; enabled?: boolean; isWALArchiver?: boolean; parameters?: Record<string, string> }[];
  stopDelay?: number;
  [field: string]: unknown;
}

export interface ClusterCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ClusterStatus {
  instances?: number;
  readyInstances?: number;
  instanceNames?: string[];
  instancesStatus?: Record<string, string[]>;
  instancesReportedState?: Record<string, { isPrimary: boolean; timeLineID?: number; ip?: string }>;
  currentPrimary?: string;
  currentPrimaryTimestamp?: string;
  targetPrimary?: string;
  targetPrimaryTimestamp?: string;
  latestGeneratedNode?: number;
  phase?: string;
  phaseReason?: string;
  timelineID?: number;
  image?: string;
  writeService?: string;
  readService?: string;
  healthyPVC?: string[];
  conditions?: ClusterCondition[];
  [field: string]: unknown;
}

export interface Cluster {
  apiVersion: string;
  kind: 'Cluster';
  metadata: k8s.V1ObjectMeta;
  spec: ClusterSpec;
  status?: ClusterStatus;
}

export const phases = {
  healthy: 'Cluster in healthy state',
  firstPrimary: 'Setting up primary',
  creatingReplica: 'Creating a new replica',
  waitingForInstances: 'Waiting for the instances to become active',
  failingOver: 'Failing over',
  switchover: 'Switchover in progress',
} as const;

export const defaultImage = 'ghcr.io/cloudnative-pg/postgresql:17.5';
export const operatorVersion = '1.27.0';
const clustersPath = `/apis/${cnpgGroup}/${cnpgVersion}/clusters`;
const policyName = 'cnpg-ds-sim-cluster-storage';

export function loadClusterCrd(): k8s.V1CustomResourceDefinition {
  const file = fileURLToPath(new URL('./cnpg-crd.yaml', import.meta.url));
  return parseYaml(readFileSync(file, 'utf8'), { merge: true }) as k8s.V1CustomResourceDefinition;
}

const nowIso = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

function volumesOf(spec: ClusterSpec): { volume: VolumeRef; storage: StorageConfiguration }[] {
  const result: { volume: VolumeRef; storage: StorageConfiguration }[] = [{ volume: 'data', storage: spec.storage }];
  if (spec.walStorage) result.push({ volume: 'wal', storage: spec.walStorage });
  // Go's sort.Strings: byte order, as CNPG sorts tablespace volumes
  const tablespaces = [...(spec.tablespaces ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const tbs of tablespaces) result.push({ volume: { tablespace: tbs.name }, storage: tbs.storage });
  return result;
}

function storageFor(spec: ClusterSpec, volume: VolumeRef): StorageConfiguration | undefined {
  if (volume === 'data') return spec.storage;
  if (volume === 'wal') return spec.walStorage;
  return spec.tablespaces?.find((t) => t.name === volume.tablespace)?.storage;
}

function archivingConfigured(spec: ClusterSpec): boolean {
  return spec.backup?.barmanObjectStore !== undefined || (spec.plugins ?? []).some((p) => p.isWALArchiver === true && p.enabled !== false);
}

const podReady = (pod: k8s.V1Pod): boolean =>
  pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

export interface CnpgOptions {
  /** Delay of a promotion (switchover or failover), default 100 ms. */
  promotionMs?: number;
}

export class CnpgOperator {
  private readonly ctx: { clients: Clients; hub: InformerHub; log: SimLogger };
  private readonly queue: WorkQueue;
  private readonly archiving = new Map<string, { ok: boolean; message: string }>();
  private readonly options: CnpgOptions;
  private clusters!: k8s.ObjectCache<Cluster & k8s.KubernetesObject>;
  private pods!: k8s.ObjectCache<k8s.V1Pod>;
  private pvcs!: k8s.ObjectCache<k8s.V1PersistentVolumeClaim>;

  constructor(ctx: { clients: Clients; hub: InformerHub; log: SimLogger }, options: CnpgOptions = {}) {
    this.ctx = ctx;
    this.options = options;
    this.queue = new WorkQueue({
      name: 'cnpg', sync: (k) => this.reconcile(k),
      onError: (key, err) => { ctx.log.debug(`cnpg ${key}: ${apiMessage(err)}`); }, maxDelayMs: 2_000,
    });
  }

  /** Installs the CRD and the no-shrink policy; must run before register() (the informer lists clusters). */
  async install(): Promise<void> {
    const { extensions, admission } = this.ctx.clients;
    const crd = loadClusterCrd();
    try {
      // Raw JSON: the typed client would drop `default` and `x-kubernetes-preserve-unknown-fields` from the schema.
      await rawRequest(this.ctx.clients.kubeConfig, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    await waitUntil('the Cluster CRD to be established', async () => {
      const current = await extensions.readCustomResourceDefinition({ name: crd.metadata?.name ?? '' });
      return (current.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
    }, 30_000, 100);
    await ignoreNotFound(admission.deleteValidatingAdmissionPolicyBinding({ name: policyName }));
    await ignoreNotFound(admission.deleteValidatingAdmissionPolicy({ name: policyName }));
    await admission.createValidatingAdmissionPolicy({ body: noShrinkPolicy() });
    await admission.createValidatingAdmissionPolicyBinding({ body: {
      metadata: { name: policyName }, spec: { policyName, validationActions: ['Deny'] },
    } });
    // The API server applies a new policy within a second or so; wait until it rejects a shrink for real.
  }

  register(): void {
    const { hub, clients } = this.ctx;
    const enqueueCluster = (namespace: string | undefined, name: string | undefined): void => {
      if (namespace && name) this.queue.add(`${namespace}/${name}`);
    };
    this.clusters = hub.watch<Cluster & k8s.KubernetesObject>(clustersPath,
      () => clients.custom.listClusterCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: 'clusters' }) as Promise<k8s.KubernetesListObject<Cluster & k8s.KubernetesObject>>,
      { add: (c) => { this.queue.add(keyOf(c)); }, update: (c) => { this.queue.add(keyOf(c)); } });
    const byLabel = (obj: k8s.KubernetesObject): void => { enqueueCluster(obj.metadata?.namespace, obj.metadata?.labels?.[labels.cluster]); };
    this.pods = hub.watch<k8s.V1Pod>('/api/v1/pods', () => clients.core.listPodForAllNamespaces(), { add: byLabel, update: byLabel, delete: byLabel });
    this.pvcs = hub.watch<k8s.V1PersistentVolumeClaim>('/api/v1/persistentvolumeclaims',
      () => clients.core.listPersistentVolumeClaimForAllNamespaces(), { add: byLabel, update: byLabel, delete: byLabel });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // API for tests

  async createCluster(namespace: string, name: string, spec: ClusterSpec, metadata: Omit<k8s.V1ObjectMeta, 'name' | 'namespace'> = {}): Promise<Cluster> {
    const body: Cluster = { apiVersion: cnpgApiVersion, kind: 'Cluster', metadata: { ...metadata, name, namespace }, spec };
    return await this.ctx.clients.custom.createNamespacedCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace, body }) as Cluster;
  }

  async getCluster(namespace: string, name: string): Promise<Cluster> {
    return await this.ctx.clients.custom.getNamespacedCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace, name }) as Cluster;
  }

  /** A JSON merge patch of the Cluster (spec or metadata), as `kubectl patch --type merge` would send. */
  async patchCluster(namespace: string, name: string, patch: Record<string, unknown>): Promise<Cluster> {
    return await this.ctx.clients.custom.patchNamespacedCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace, name, body: patch }, mergePatch) as Cluster;
  }

  async scale(namespace: string, name: string, instances: number): Promise<Cluster> {
    return this.patchCluster(namespace, name, { spec: { instances } });
  }

  /** Sets the size of one volume in the Cluster spec (data, WAL or a tablespace). */
  async setStorageSize(namespace: string, name: string, volume: VolumeRef, size: string): Promise<Cluster> {
    if (volume === 'data') return this.patchCluster(namespace, name, { spec: { storage: { size } } });
    if (volume === 'wal') return this.patchCluster(namespace, name, { spec: { walStorage: { size } } });
    const cluster = await this.getCluster(namespace, name);
    const tablespaces = (cluster.spec.tablespaces ?? []).map((t) => (t.name === volume.tablespace ? { ...t, storage: { ...t.storage, size } } : t));
    return this.patchCluster(namespace, name, { spec: { tablespaces } });
  }

  async deleteCluster(namespace: string, name: string): Promise<void> {
    await ignoreNotFound(this.ctx.clients.custom.deleteNamespacedCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace, name }));
  }

  /** `kubectl cnpg promote`: sets status.targetPrimary; the operator moves the primary role there. */
  async promote(namespace: string, name: string, instance: string): Promise<void> {
    await this.ctx.clients.custom.patchNamespacedCustomObjectStatus({
      group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace, name,
      body: { status: { targetPrimary: instance, targetPrimaryTimestamp: nowIso(), phase: phases.switchover, phaseReason: `Switching over to ${instance}` } },
    }, mergePatch);
  }

  /** Fails over to `instance` (default: the ready replica with the lowest serial) and waits until the roles moved. */
  async failover(namespace: string, name: string, instance?: string, timeoutMs = 30_000): Promise<string> {
    const cluster = await this.getCluster(namespace, name);
    const current = cluster.status?.currentPrimary;
    const target = instance ?? this.instancePods(namespace, name).filter((p) => podReady(p) && p.metadata?.name !== current)
      .map((p) => p.metadata?.name ?? '').sort((a, b) => (instanceSerial(name, a) ?? 0) - (instanceSerial(name, b) ?? 0))[0];
    if (!target) throw new Error(`cluster ${namespace}/${name} has no ready replica to fail over to`);
    await this.promote(namespace, name, target);
    await waitUntil(`${target} to become primary of ${namespace}/${name}`, async () => {
      const c = await this.getCluster(namespace, name);
      const pod = this.pods.get(target, namespace);
      return c.status?.currentPrimary === target && pod?.metadata?.labels?.[labels.instanceRole] === 'primary';
    }, timeoutMs);
    return target;
  }

  /** Flips the ContinuousArchiving condition (only shown when archiving is configured, as in CNPG). */
  setArchiving(namespace: string, name: string, ok: boolean, message = ok ? 'Continuous archiving is working' : 'unexpected failure invoking barman-cloud-wal-archive: exit status 1'): void {
    this.archiving.set(`${namespace}/${name}`, { ok, message });
    this.queue.add(`${namespace}/${name}`);
  }

  instancePods(namespace: string, name: string): k8s.V1Pod[] {
    return this.pods.list(namespace).filter((p) => p.metadata?.labels?.[labels.cluster] === name && p.metadata.labels[labels.podRole] === 'instance');
  }

  clusterPvcs(namespace: string, name: string): k8s.V1PersistentVolumeClaim[] {
    return this.pvcs.list(namespace).filter((p) => p.metadata?.labels?.[labels.cluster] === name);
  }

  /** Waits until the cluster is healthy with all its instances ready. */
  async waitForReady(namespace: string, name: string, timeoutMs = 60_000): Promise<Cluster> {
    return waitUntil(`cluster ${namespace}/${name} to be ready`, async () => {
      const cluster = await this.getCluster(namespace, name);
      const status = cluster.status;
      return status?.phase === phases.healthy && status.readyInstances === cluster.spec.instances ? cluster : undefined;
    }, timeoutMs, 100);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Reconciler

  private async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const cluster = this.clusters.get(name, namespace);
    if (!cluster || cluster.metadata.deletionTimestamp) return;
    if (cluster.metadata.annotations?.[annotations.reconciliationLoop] === 'disabled') return;
    const serials = this.serials(cluster);
    const status = cluster.status ?? {};
    let primary = status.currentPrimary;
    if (serials.length === 0) {
      await this.createInstance(cluster, (status.latestGeneratedNode ?? 0) + 1, true);
      return;
    }
    primary = await this.ensurePrimary(cluster, serials, primary);
    // A promotion rewrote the status: carry on from the fresh object (the status event requeues this cluster).
    if (primary !== status.currentPrimary) return;
    await this.ensurePods(cluster, serials, primary);
    await this.ensureRoleLabels(cluster, primary);
    await this.ensurePvcMetadata(cluster);
    await this.resizePvcs(cluster);
    const allReady = serials.every((s) => { const pod = this.pods.get(instanceName(name, s), namespace); return pod !== undefined && podReady(pod); });
    if (allReady && serials.length < cluster.spec.instances) {
      await this.createInstance(cluster, Math.max(status.latestGeneratedNode ?? 0, ...serials) + 1, false);
      return;
    }
    if (allReady && serials.length > cluster.spec.instances) await this.scaleDown(cluster, serials, primary);
    await this.writeStatus(cluster, primary);
  }

  /** Serials of the instances that exist (have a data PVC that is not being deleted). */
  private serials(cluster: Cluster): number[] {
    const name = cluster.metadata.name ?? '';
    const serials = new Set<number>();
    for (const pvc of this.clusterPvcs(cluster.metadata.namespace ?? '', name)) {
      if (pvc.metadata?.deletionTimestamp || volumeOfPvc(pvc.metadata?.labels) !== 'data') continue;
      const serial = instanceSerial(name, pvc.metadata?.labels?.[labels.instanceName] ?? '');
      if (serial !== undefined) serials.add(serial);
    }
    return [...serials].sort((a, b) => a - b);
  }

  private ownerReference(cluster: Cluster): k8s.V1OwnerReference {
    return { apiVersion: cnpgApiVersion, kind: 'Cluster', name: cluster.metadata.name ?? '', uid: cluster.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
  }

  private async createInstance(cluster: Cluster, serial: number, first: boolean): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    const clusterName = cluster.metadata.name ?? '';
    const instance = instanceName(clusterName, serial);
    await this.ensureServiceAccount(cluster);
    for (const { volume, storage } of volumesOf(cluster.spec)) {
      try {
        await this.ctx.clients.core.createNamespacedPersistentVolumeClaim({ namespace, body: this.pvcObject(cluster, serial, volume, storage) });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    }
    // status first, so that a crash between the two never reuses a serial
    await this.patchStatus(cluster, {
      latestGeneratedNode: serial,
      ...(first ? { targetPrimary: instance, targetPrimaryTimestamp: nowIso(), phase: phases.firstPrimary, phaseReason: 'Creating primary instance' } : { phase: phases.creatingReplica, phaseReason: `Creating replica ${instance}` }),
    });
    await this.createPod(cluster, serial, first ? 'primary' : 'replica');
    recordEvent(this.ctx.clients, { component: 'cloudnative-pg' }, cluster, {
      type: 'Normal', reason: first ? 'CreatingInstance' : 'CreatingInstance', message: `Creating instance ${instance}`,
    });
  }

  private async ensureServiceAccount(cluster: Cluster): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    try {
      await this.ctx.clients.core.createNamespacedServiceAccount({ namespace, body: {
        metadata: { name: cluster.metadata.name, namespace, labels: { [labels.cluster]: cluster.metadata.name ?? '' }, ownerReferences: [this.ownerReference(cluster)] },
      } });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  private pvcObject(cluster: Cluster, serial: number, volume: VolumeRef, storage: StorageConfiguration): k8s.V1PersistentVolumeClaim {
    const clusterName = cluster.metadata.name ?? '';
    const instance = instanceName(clusterName, serial);
    const template: PvcTemplate = storage.pvcTemplate ?? {};
    const inherited = cluster.spec.inheritedMetadata ?? {};
    const size = storage.size ?? template.resources?.requests?.storage;
    if (!size) throw new Error(`cluster ${clusterName}: no size for the ${JSON.stringify(volume)} volume`);
    return {
      metadata: {
        name: pvcName(instance, volume),
        namespace: cluster.metadata.namespace,
        labels: { ...inherited.labels, ...pvcLabels(clusterName, instance, volume) },
        annotations: {
          ...inherited.annotations,
          [annotations.nodeSerial]: String(serial),
          [annotations.pvcStatus]: volume === 'data' ? pvcStatuses.initializing : pvcStatuses.ready,
          [annotations.operatorVersion]: operatorVersion,
        },
        ownerReferences: [this.ownerReference(cluster)],
      },
      spec: {
        ...template,
        accessModes: template.accessModes ?? ['ReadWriteOnce'],
        resources: { ...template.resources, requests: { ...template.resources?.requests, storage: size } },
        ...(storage.storageClass ? { storageClassName: storage.storageClass } : {}),
      },
    };
  }

  private async createPod(cluster: Cluster, serial: number, role: 'primary' | 'replica'): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    try {
      await this.ctx.clients.core.createNamespacedPod({ namespace, body: this.podObject(cluster, serial, role) });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  private podObject(cluster: Cluster, serial: number, role: 'primary' | 'replica'): k8s.V1Pod {
    const clusterName = cluster.metadata.name ?? '';
    const instance = instanceName(clusterName, serial);
    const spec = cluster.spec;
    const image = spec.imageName ?? defaultImage;
    const volumes = volumesOf(spec);
    const affinity = spec.affinity ?? {};
    const antiAffinityTerm: k8s.V1PodAffinityTerm = {
      topologyKey: affinity.topologyKey ?? 'kubernetes.io/hostname',
      labelSelector: { matchExpressions: [
        { key: labels.cluster, operator: 'In', values: [clusterName] },
        { key: labels.podRole, operator: 'In', values: ['instance'] },
      ] },
    };
    const antiAffinity: k8s.V1PodAntiAffinity | undefined = affinity.enablePodAntiAffinity === false ? undefined
      : affinity.podAntiAffinityType === 'required' ? { requiredDuringSchedulingIgnoredDuringExecution: [antiAffinityTerm] }
        : { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: antiAffinityTerm }] };
    const majorVersion = /:(\d+)/.exec(image)?.[1] ?? '17';
    return {
      metadata: {
        name: instance, namespace: cluster.metadata.namespace,
        labels: {
          ...spec.inheritedMetadata?.labels,
          [labels.cluster]: clusterName, [labels.instanceName]: instance, [labels.podRole]: 'instance',
          [labels.instanceRole]: role, [labels.legacyRole]: role,
          [labels.appName]: appName, [labels.appInstance]: clusterName, [labels.appVersion]: majorVersion,
          [labels.appComponent]: databaseComponent, [labels.appManagedBy]: managerName,
        },
        annotations: { ...spec.inheritedMetadata?.annotations, [annotations.nodeSerial]: String(serial), [annotations.operatorVersion]: operatorVersion },
        ownerReferences: [this.ownerReference(cluster)],
      },
      spec: {
        hostname: instance, subdomain: `${clusterName}-any`, serviceAccountName: clusterName, automountServiceAccountToken: false,
        terminationGracePeriodSeconds: spec.stopDelay ?? 1800,
        securityContext: { runAsNonRoot: true, runAsUser: 26, runAsGroup: 26, fsGroup: 26, seccompProfile: { type: 'RuntimeDefault' } },
        ...(antiAffinity ? { affinity: { podAntiAffinity: antiAffinity } } : {}),
        ...(affinity.nodeSelector ? { nodeSelector: affinity.nodeSelector } : {}),
        ...(affinity.tolerations ? { tolerations: affinity.tolerations } : {}),
        initContainers: [{
          name: 'bootstrap-controller', image: `ghcr.io/cloudnative-pg/cloudnative-pg:${operatorVersion}`,
          command: ['/manager', 'bootstrap', '/controller/manager'], volumeMounts: [{ name: 'scratch-data', mountPath: '/controller' }],
        }],
        containers: [{
          name: 'postgres', image,
          command: ['/controller/manager', 'instance', 'run', '--status-port-tls', '--log-level=info'],
          env: [{ name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' }, { name: 'POD_NAME', value: instance }, { name: 'NAMESPACE', value: cluster.metadata.namespace }, { name: 'CLUSTER_NAME', value: clusterName }],
          ports: [{ name: 'postgresql', containerPort: 5432, protocol: 'TCP' }, { name: 'metrics', containerPort: 9187, protocol: 'TCP' }, { name: 'status', containerPort: 8000, protocol: 'TCP' }],
          volumeMounts: [
            { name: 'pgdata', mountPath: mountPathInPod('data') },
            { name: 'scratch-data', mountPath: '/run' }, { name: 'scratch-data', mountPath: '/controller' }, { name: 'shm', mountPath: '/dev/shm' },
            ...volumes.filter((v) => v.volume !== 'data').map((v) => ({ name: podVolumeName(v.volume), mountPath: mountPathInPod(v.volume) })),
          ],
        }],
        volumes: [
          { name: 'pgdata', persistentVolumeClaim: { claimName: pvcName(instance, 'data') } },
          { name: 'scratch-data', emptyDir: {} },
          { name: 'shm', emptyDir: { medium: 'Memory' } },
          ...volumes.filter((v) => v.volume !== 'data').map((v) => ({ name: podVolumeName(v.volume), persistentVolumeClaim: { claimName: pvcName(instance, v.volume) } })),
        ],
      },
    };
  }

  /** The primary after handling a deleted/failed primary and pending promotions. */
  private async ensurePrimary(cluster: Cluster, serials: number[], current: string | undefined): Promise<string | undefined> {
    const namespace = cluster.metadata.namespace ?? '';
    const clusterName = cluster.metadata.name ?? '';
    const status = cluster.status ?? {};
    const target = status.targetPrimary;
    const live = (instance: string | undefined): boolean => {
      const pod = instance ? this.pods.get(instance, namespace) : undefined;
      return pod !== undefined && !pod.metadata?.deletionTimestamp && podReady(pod);
    };
    if (current === undefined) {
      if (target && live(target)) return this.switchPrimary(cluster, target, false);
      return target;
    }
    if (target && target !== current && live(target)) return this.switchPrimary(cluster, target, false);
    const pod = this.pods.get(current, namespace);
    if (!pod || pod.metadata?.deletionTimestamp) {
      // The primary is gone: fail over to the ready replica with the lowest serial, if there is one.
      const candidate = serials.map((s) => instanceName(clusterName, s)).find((i) => i !== current && live(i));
      if (candidate) {
        await this.patchStatus(cluster, { phase: phases.failingOver, phaseReason: `Failing over from ${current} to ${candidate}`, targetPrimary: candidate, targetPrimaryTimestamp: nowIso() });
        recordEvent(this.ctx.clients, { component: 'cloudnative-pg' }, cluster, { type: 'Warning', reason: 'FailingOver', message: `Current primary ${current} is not available, failing over to ${candidate}` });
        return this.switchPrimary(cluster, candidate, true);
      }
    }
    return current;
  }

  private async switchPrimary(cluster: Cluster, target: string, failover: boolean): Promise<string> {
    await sleep(this.options.promotionMs ?? 100);
    const timeline = (cluster.status?.timelineID ?? 1) + (cluster.status?.currentPrimary ? 1 : 0);
    await this.patchStatus(cluster, { currentPrimary: target, currentPrimaryTimestamp: nowIso(), targetPrimary: target, timelineID: timeline });
    await this.ensureRoleLabels(cluster, target);
    recordEvent(this.ctx.clients, { component: 'cloudnative-pg' }, cluster, {
      type: 'Normal', reason: failover ? 'FailoverCompleted' : 'SwitchoverCompleted', message: `Instance ${target} is now the primary`,
    });
    return target;
  }

  /** Recreates missing instance pods on their existing PVCs (PodWithExistingStorage). */
  private async ensurePods(cluster: Cluster, serials: number[], primary: string | undefined): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    for (const serial of serials) {
      const instance = instanceName(cluster.metadata.name ?? '', serial);
      if (this.pods.get(instance, namespace)) continue;
      await this.createPod(cluster, serial, instance === primary ? 'primary' : 'replica');
    }
  }

  private async ensureRoleLabels(cluster: Cluster, primary: string | undefined): Promise<void> {
    for (const pod of this.instancePods(cluster.metadata.namespace ?? '', cluster.metadata.name ?? '')) {
      if (pod.metadata?.deletionTimestamp) continue;
      const role = pod.metadata?.name === primary ? 'primary' : 'replica';
      if (pod.metadata?.labels?.[labels.instanceRole] === role && pod.metadata.labels[labels.legacyRole] === role) continue;
      await ignoreNotFound(this.ctx.clients.core.patchNamespacedPod({
        name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '',
        body: { metadata: { labels: { [labels.instanceRole]: role, [labels.legacyRole]: role } } },
      }, mergePatch));
    }
  }

  /** Adds CNPG's labels and inherited metadata when missing (never removes foreign ones) and marks PVCs ready. */
  private async ensurePvcMetadata(cluster: Cluster): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    for (const pvc of this.clusterPvcs(namespace, cluster.metadata.name ?? '')) {
      const patch = this.pvcMetadataPatch(cluster, pvc);
      if (!patch) continue;
      await ignoreNotFound(this.ctx.clients.core.patchNamespacedPersistentVolumeClaim({
        name: pvc.metadata?.name ?? '', namespace, body: { metadata: patch },
      }, mergePatch));
    }
  }

  private pvcMetadataPatch(cluster: Cluster, pvc: k8s.V1PersistentVolumeClaim): Record<string, unknown> | undefined {
    const meta = pvc.metadata ?? {};
    const volume = volumeOfPvc(meta.labels);
    const instance = meta.labels?.[labels.instanceName];
    if (!volume || !instance || meta.deletionTimestamp) return undefined;
    const wanted: Record<string, string> = { ...cluster.spec.inheritedMetadata?.labels, ...pvcLabels(cluster.metadata.name ?? '', instance, volume) };
    const missingLabels = Object.fromEntries(Object.entries(wanted).filter(([k, v]) => meta.labels?.[k] !== v));
    const pod = this.pods.get(instance, meta.namespace ?? '');
    const markReady = meta.annotations?.[annotations.pvcStatus] === pvcStatuses.initializing && pod !== undefined && podReady(pod);
    if (Object.keys(missingLabels).length === 0 && !markReady) return undefined;
    return { labels: missingLabels, ...(markReady ? { annotations: { [annotations.pvcStatus]: pvcStatuses.ready } } : {}) };
  }

  /** reconcilePVCQuantity: grow smaller PVCs to the spec size, leave larger ones alone. */
  private async resizePvcs(cluster: Cluster): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    for (const pvc of this.clusterPvcs(namespace, cluster.metadata.name ?? '')) {
      const size = this.grownSize(cluster, pvc);
      if (!size) continue;
      try {
        await this.ctx.clients.core.patchNamespacedPersistentVolumeClaim({
          name: pvc.metadata?.name ?? '', namespace, body: { spec: { resources: { requests: { storage: size } } } },
        }, mergePatch);
      } catch (err) {
        if (isNotFound(err)) continue;
        recordEvent(this.ctx.clients, { component: 'cloudnative-pg' }, cluster, {
          type: 'Warning', reason: 'ResizeFailed', message: `error while resizing PVC ${pvc.metadata?.name ?? ''}: ${apiMessage(err)}`,
        });
        throw new RetryAfter(5_000);
      }
    }
  }

  /** The size to patch a PVC to, or undefined when CNPG leaves it alone. */
  private grownSize(cluster: Cluster, pvc: k8s.V1PersistentVolumeClaim): string | undefined {
    const volume = volumeOfPvc(pvc.metadata?.labels);
    const storage = volume ? storageFor(cluster.spec, volume) : undefined;
    const requested = pvc.spec?.resources?.requests?.storage;
    if (!storage?.size || !requested || pvc.metadata?.deletionTimestamp) return undefined;
    const wanted = parseQuantity(storage.size);
    const current = parseQuantity(requested);
    if (wanted < current) {
      this.ctx.log.debug(`cnpg ${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.name ?? ''}: cannot decrease storage requirement`, { from: requested, to: storage.size });
    }
    return wanted > current && storage.resizeInUseVolumes !== false ? storage.size : undefined;
  }

  private async scaleDown(cluster: Cluster, serials: number[], primary: string | undefined): Promise<void> {
    const namespace = cluster.metadata.namespace ?? '';
    const clusterName = cluster.metadata.name ?? '';
    const victim = [...serials].reverse().map((s) => instanceName(clusterName, s)).find((i) => i !== primary);
    if (!victim) return;
    await ignoreNotFound(this.ctx.clients.core.deleteNamespacedPod({ name: victim, namespace }));
    for (const pvc of this.clusterPvcs(namespace, clusterName)) {
      if (pvc.metadata?.labels?.[labels.instanceName] === victim) {
        await ignoreNotFound(this.ctx.clients.core.deleteNamespacedPersistentVolumeClaim({ name: pvc.metadata.name ?? '', namespace }));
      }
    }
    recordEvent(this.ctx.clients, { component: 'cloudnative-pg' }, cluster, { type: 'Normal', reason: 'ScaleDown', message: `Scaling down: removing instance ${victim}` });
  }

  private conditions(cluster: Cluster, ready: boolean): ClusterCondition[] {
    const previous = cluster.status?.conditions ?? [];
    const next = (type: string, ok: boolean, reason: string, message: string): ClusterCondition => {
      const old = previous.find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      return { type, status, reason, message, lastTransitionTime: old?.status === status ? old.lastTransitionTime : nowIso() };
    };
    const result = [ready
      ? next('Ready', true, 'ClusterIsReady', 'Cluster is Ready')
      : next('Ready', false, 'ClusterIsNotReady', 'Cluster Is Not Ready')];
    if (archivingConfigured(cluster.spec)) {
      const archiving = this.archiving.get(`${cluster.metadata.namespace ?? ''}/${cluster.metadata.name ?? ''}`) ?? { ok: true, message: 'Continuous archiving is working' };
      result.push(next('ContinuousArchiving', archiving.ok, archiving.ok ? 'ContinuousArchivingSuccess' : 'ContinuousArchivingFailing', archiving.message));
    }
    return result;
  }

  private async writeStatus(cluster: Cluster, primary: string | undefined): Promise<void> {
    const next = this.computeStatus(cluster, primary);
    const changed = Object.entries(next).some(([k, v]) => JSON.stringify(v) !== JSON.stringify(cluster.status?.[k]));
    if (changed) await this.patchStatus(cluster, next);
  }

  private computeStatus(cluster: Cluster, primary: string | undefined): ClusterStatus {
    const namespace = cluster.metadata.namespace ?? '';
    const clusterName = cluster.metadata.name ?? '';
    const previous = cluster.status ?? {};
    const serials = this.serials(cluster);
    const names = serials.map((s) => instanceName(clusterName, s));
    const pods = names.map((n) => this.pods.get(n, namespace)).filter((p): p is k8s.V1Pod => p !== undefined && !p.metadata?.deletionTimestamp);
    const ready = pods.filter(podReady).map((p) => p.metadata?.name ?? '');
    const notReady = pods.map((p) => p.metadata?.name ?? '').filter((n) => !ready.includes(n));
    const healthy = ready.length === cluster.spec.instances && names.length === cluster.spec.instances && primary !== undefined && ready.includes(primary);
    const next: ClusterStatus = {
      instances: pods.length, readyInstances: ready.length, instanceNames: names,
      instancesStatus: { healthy: ready, ...(notReady.length > 0 ? { failed: notReady } : {}) },
      instancesReportedState: reportedState(pods, primary, previous.timelineID ?? 1),
      latestGeneratedNode: Math.max(previous.latestGeneratedNode ?? 0, ...serials),
      phase: healthy ? phases.healthy : this.unhealthyPhase(previous),
      phaseReason: healthy ? '' : (previous.phaseReason ?? ''),
      timelineID: previous.timelineID ?? 1,
      image: cluster.spec.imageName ?? defaultImage,
      writeService: `${clusterName}-rw`, readService: `${clusterName}-r`,
      healthyPVC: this.clusterPvcs(namespace, clusterName).filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name ?? '').sort(),
      conditions: this.conditions(cluster, healthy),
      ...(primary ? { currentPrimary: primary } : {}),
    };
    if (healthy && !previous.currentPrimaryTimestamp) next.currentPrimaryTimestamp = nowIso();
    return next;
  }

  private unhealthyPhase(previous: ClusterStatus): string {
    return previous.phase === undefined || previous.phase === phases.healthy ? phases.waitingForInstances : previous.phase;
  }

  private async patchStatus(cluster: Cluster, status: ClusterStatus): Promise<void> {
    await this.ctx.clients.custom.patchNamespacedCustomObjectStatus({
      group: cnpgGroup, version: cnpgVersion, plural: 'clusters', namespace: cluster.metadata.namespace ?? '', name: cluster.metadata.name ?? '',
      body: { status },
    }, mergePatch);
  }

  async stop(): Promise<void> {
    await this.queue.stop();
  }
}

function reportedState(pods: k8s.V1Pod[], primary: string | undefined, timeline: number): NonNullable<ClusterStatus['instancesReportedState']> {
  return Object.fromEntries(pods.map((pod) => [pod.metadata?.name ?? '', { isPrimary: pod.metadata?.name === primary, timeLineID: timeline, ip: pod.status?.podIP ?? '' }]));
}

/** CNPG's webhook refuses to shrink storage; the same rule as a ValidatingAdmissionPolicy. */
function noShrinkPolicy(): k8s.V1ValidatingAdmissionPolicy {
  const rule = (field: 'storage' | 'walStorage'): k8s.V1Validation => ({
    expression: `!has(oldObject.spec.${field}) || !has(oldObject.spec.${field}.size) || !has(object.spec.${field}) || !has(object.spec.${field}.size) `
      + `|| !isQuantity(object.spec.${field}.size) || !isQuantity(oldObject.spec.${field}.size) `
      + `|| quantity(object.spec.${field}.size).compareTo(quantity(oldObject.spec.${field}.size)) >= 0`,
    messageExpression: `"spec.${field}.size: Invalid value: \\"" + object.spec.${field}.size + "\\": can't shrink existing storage from " + oldObject.spec.${field}.size + " to " + object.spec.${field}.size`,
    reason: 'Invalid',
  });
  return {
    metadata: { name: policyName },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: { resourceRules: [{ apiGroups: [cnpgGroup], apiVersions: [cnpgVersion], operations: ['UPDATE'], resources: ['clusters'] }] },
      validations: [rule('storage'), rule('walStorage')],
    },
  };
}

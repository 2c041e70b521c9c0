/**
 * What the reconciles read: the informer caches of DynamicStorages, CNPG Clusters, their PVCs and pods, and
 * StorageClasses, kept by one list+watch each. Reads cost no API request; writes still go to the API server.
 *
 * A cache lags behind the controller's own writes (the watch event arrives after the write's answer). A reconcile that
 * read its own PVC patch or status write as not yet done would decide the same action twice, so every object the
 * controller wrote is kept (`FreshObjects`) and served instead of the cached copy until the cache has caught up.
 */
import * as k8s from '@kubernetes/client-node';
import { dynamicStorageGroup, dynamicStoragePlural, dynamicStorageVersion, type DynamicStorage } from '../../shared/api/dynamicstorage.generated.ts';
import { backoffDelay, retryBackoff } from '../../shared/backoff.ts';
import { isApiCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { cnpgClusterPlural, cnpgGroup, cnpgLabels, cnpgVersion } from '../../shared/cnpg.ts';

export type Handle = { stop(): Promise<void> | void };

/** The resources the controller writes and reads back. */
export type WrittenResource = 'dynamicstorages' | 'clusters' | 'persistentvolumeclaims';

/**
 * Where a reconcile reads the cluster's state: the caches (`ClusterCache`) or, without them, the API server
 * (`ApiState`). `wrote` is told of every object the controller wrote, as the API server returned it.
 */
export interface StateReader {
  dynamicStorage(namespace: string, name: string): Promise<DynamicStorage | undefined>;
  dynamicStorages(namespace: string): Promise<DynamicStorage[]>;
  cluster(namespace: string, name: string): Promise<k8s.KubernetesObject | undefined>;
  /** PVCs of the namespace carrying every label given. */
  pvcs(namespace: string, labels: Readonly<Record<string, string>>): Promise<k8s.V1PersistentVolumeClaim[]>;
  /** Pods of the namespace labelled with the CNPG cluster's name. */
  clusterPods(namespace: string, cluster: string): Promise<k8s.V1Pod[]>;
  storageClass(name: string): Promise<k8s.V1StorageClass | undefined>;
  wrote(resource: WrittenResource, object: k8s.KubernetesObject): void;
}

async function orUndefined<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isApiCode(err, 404)) return undefined;
    throw err;
  }
}

function selector(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}

/** Reads straight from the API server: one request per read (tools and tests that run no informers). */
export class ApiState implements StateReader {
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly storage: k8s.StorageV1Api;

  constructor(kubeConfig: k8s.KubeConfig) {
    this.custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.storage = kubeConfig.makeApiClient(k8s.StorageV1Api);
  }

  async dynamicStorage(namespace: string, name: string): Promise<DynamicStorage | undefined> {
    const base = { group: dynamicStorageGroup, version: dynamicStorageVersion, plural: dynamicStoragePlural };
    return await orUndefined(this.custom.getNamespacedCustomObject({ ...base, namespace, name }) as Promise<DynamicStorage>);
  }

  async dynamicStorages(namespace: string): Promise<DynamicStorage[]> {
    const base = { group: dynamicStorageGroup, version: dynamicStorageVersion, plural: dynamicStoragePlural };
    return (await this.custom.listNamespacedCustomObject({ ...base, namespace }) as { items: DynamicStorage[] }).items;
  }

  async cluster(namespace: string, name: string): Promise<k8s.KubernetesObject | undefined> {
    const base = { group: cnpgGroup, version: cnpgVersion, plural: cnpgClusterPlural };
    return await orUndefined(this.custom.getNamespacedCustomObject({ ...base, namespace, name }) as Promise<k8s.KubernetesObject>);
  }

  async pvcs(namespace: string, labels: Readonly<Record<string, string>>): Promise<k8s.V1PersistentVolumeClaim[]> {
    return (await this.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: selector(labels) })).items;
  }

  async clusterPods(namespace: string, cluster: string): Promise<k8s.V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: `${cnpgLabels.cluster}=${cluster}` })).items;
  }

  async storageClass(name: string): Promise<k8s.V1StorageClass | undefined> {
    return await orUndefined(this.storage.readStorageClass({ name }));
  }

  wrote(): void {
    // Every read goes to the API server: nothing to remember.
  }
}

/**
 * `a` is older than `b`, by resourceVersion: both read as integers (etcd revisions, what kube-apiserver gives, and what
 * KEP-5504 makes comparable), else only an equal version is known not to be newer.
 */
export function olderVersion(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) < BigInt(b);
  return false;
}

/**
 * The objects the controller wrote, each served in place of the cached copy while that copy is older. Forgotten as soon
 * as the cache holds the written version or a newer one (or the object is gone from it), and after `ttlMs` whatever
 * happens (a watch that never delivers is restarted by then, and the copy would hide later changes).
 */
export class FreshObjects {
  private readonly written = new Map<string, { object: k8s.KubernetesObject; at: number; stale: Set<string> }>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: { ttlMs?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  static keyOf(resource: string, object: k8s.KubernetesObject): string {
    return `${resource}/${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
  }

  /** `before`: the version the write started from (known stale once the write succeeded), when there was one. */
  remember(resource: string, object: k8s.KubernetesObject, before?: string): void {
    const key = FreshObjects.keyOf(resource, object);
    const stale = this.written.get(key)?.stale ?? new Set<string>();
    if (before !== undefined) stale.add(before);
    this.written.set(key, { object, at: this.now(), stale });
  }

  /** The object to use: the written one while `cached` is older than it, else `cached`. */
  pick<T extends k8s.KubernetesObject>(resource: string, cached: T | undefined, namespace: string, name: string): T | undefined {
    const key = `${resource}/${namespace}/${name}`;
    const entry = this.written.get(key);
    if (!entry) return cached;
    const cachedVersion = cached?.metadata?.resourceVersion;
    const writtenVersion = entry.object.metadata?.resourceVersion;
    const cacheBehind = cached !== undefined && cachedVersion !== writtenVersion
      && (olderVersion(cachedVersion, writtenVersion) || (cachedVersion !== undefined && entry.stale.has(cachedVersion)));
    if (cacheBehind && this.now() - entry.at < this.ttlMs) return entry.object as T;
    this.written.delete(key);
    return cached;
  }

  get size(): number {
    return this.written.size;
  }
}

type Store<T extends k8s.KubernetesObject> = k8s.Informer<T> & k8s.ObjectCache<T>;

/** A list+watch that is restarted with backoff after any error (client-node's informer stops on errors but 410). */
export function supervised<T extends k8s.KubernetesObject>(name: string, informer: Store<T>, log: Logger): Handle & { synced: Promise<void> } {
  let stopped = false;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let signalSynced: () => void = () => undefined;
  const synced = new Promise<void>((resolve) => { signalSynced = resolve; });
  const start = (): void => {
    // start() resolves once the list is in the cache and the watch is open.
    informer.start().then(() => { failures = 0; signalSynced(); }, (err: unknown) => { restart(err); });
  };
  const restart = (err: unknown): void => {
    if (stopped || timer) return;
    failures += 1;
    const delay = backoffDelay(retryBackoff, failures);
    log.warn('watch failed; restarting', { informer: name, err, failures, retryInMs: delay });
    timer = setTimeout(() => { timer = undefined; if (!stopped) start(); }, delay);
  };
  informer.on('error', (err: unknown) => { restart(err); });
  start();
  return {
    synced,
    async stop() {
      stopped = true;
      signalSynced();
      if (timer) clearTimeout(timer);
      await informer.stop();
    },
  };
}

/**
 * Keeps of each cached object only what the controller reads, in place (the object handed to handlers is the one the
 * cache keeps). managedFields are most of a PVC's bytes and nothing here reads them (nor sends them back: a status
 * replace without them leaves them as they are). Of a CNPG pod only where it runs, what it mounts and whether it ended;
 * of a Cluster its metadata, the storage part of its spec and its conditions (our condition is patched by index). A
 * Cluster's and a pod's full objects are tens of kilobytes each; a fleet holds thousands.
 */
/** Every kind: managedFields are most of a PVC's bytes, and nothing here reads them. */
export function dropManagedFields(object: k8s.KubernetesObject): void {
  if (object.metadata?.managedFields) delete object.metadata.managedFields;
}

export function slimPod(object: k8s.KubernetesObject): void {
  const pod = object as k8s.V1Pod;
  dropManagedFields(pod);
  const claims = (pod.spec?.volumes ?? []).filter((v) => v.persistentVolumeClaim !== undefined)
    .map((v) => ({ name: v.name, persistentVolumeClaim: v.persistentVolumeClaim }));
  pod.spec = { nodeName: pod.spec?.nodeName, volumes: claims, containers: [] };
  pod.status = pod.status?.phase === undefined ? {} : { phase: pod.status.phase };
}

export function slimCluster(object: k8s.KubernetesObject): void {
  const cluster = object as k8s.KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };
  dropManagedFields(cluster);
  const spec = cluster.spec;
  if (spec) {
    cluster.spec = Object.fromEntries(['instances', 'storage', 'walStorage', 'tablespaces'].filter((k) => spec[k] !== undefined).map((k) => [k, spec[k]]));
  }
  if (cluster.status) cluster.status = cluster.status.conditions === undefined ? {} : { conditions: cluster.status.conditions };
}

function hasLabels(object: k8s.KubernetesObject, labels: Readonly<Record<string, string>>): boolean {
  const own = object.metadata?.labels ?? {};
  return Object.entries(labels).every(([k, v]) => own[k] === v);
}

/**
 * The names of the cached objects of each CNPG cluster (`namespace/cluster` -> names), kept from the informer's events,
 * so that a reconcile looks at its own cluster's PVCs and pods, not at every one of the namespace.
 */
export class ClusterIndex {
  private readonly byCluster = new Map<string, Set<string>>();
  private readonly clusterOf = new Map<string, string>();

  upsert(object: k8s.KubernetesObject): void {
    const namespace = object.metadata?.namespace ?? '';
    const name = object.metadata?.name ?? '';
    const own = `${namespace}/${name}`;
    const cluster = object.metadata?.labels?.[cnpgLabels.cluster];
    const key = cluster === undefined ? undefined : `${namespace}/${cluster}`;
    const before = this.clusterOf.get(own);
    if (before === key) return;
    if (before !== undefined) this.removeName(before, name);
    if (key === undefined) {
      this.clusterOf.delete(own);
      return;
    }
    this.clusterOf.set(own, key);
    const names = this.byCluster.get(key) ?? new Set<string>();
    names.add(name);
    this.byCluster.set(key, names);
  }

  remove(object: k8s.KubernetesObject): void {
    const own = `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
    const before = this.clusterOf.get(own);
    if (before === undefined) return;
    this.clusterOf.delete(own);
    this.removeName(before, object.metadata?.name ?? '');
  }

  names(namespace: string, cluster: string): readonly string[] {
    return [...(this.byCluster.get(`${namespace}/${cluster}`) ?? [])];
  }

  private removeName(key: string, name: string): void {
    const names = this.byCluster.get(key);
    names?.delete(name);
    if (names?.size === 0) this.byCluster.delete(key);
  }
}

/** The informers a leader reads from, scoped to `namespace` (all namespaces when empty). */
export class ClusterCache implements StateReader {
  readonly dynamicStorageInformer: Store<k8s.KubernetesObject>;
  readonly clusterInformer: Store<k8s.KubernetesObject>;
  readonly pvcInformer: Store<k8s.V1PersistentVolumeClaim>;
  readonly podInformer: Store<k8s.V1Pod>;
  readonly storageClassInformer: Store<k8s.V1StorageClass>;
  private readonly fresh = new FreshObjects();
  private readonly pvcIndex = new ClusterIndex();
  private readonly podIndex = new ClusterIndex();
  private readonly handles: (Handle & { synced: Promise<void> })[] = [];

  constructor(kubeConfig: k8s.KubeConfig, namespace: string) {
    const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    const storage = kubeConfig.makeApiClient(k8s.StorageV1Api);
    const customInformer = (group: string, version: string, plural: string): Store<k8s.KubernetesObject> => {
      const path = namespace ? `/apis/${group}/${version}/namespaces/${namespace}/${plural}` : `/apis/${group}/${version}/${plural}`;
      return k8s.makeInformer<k8s.KubernetesObject>(kubeConfig, path, async () =>
        (namespace ? await custom.listNamespacedCustomObject({ group, version, plural, namespace }) : await custom.listClusterCustomObject({ group, version, plural })) as k8s.KubernetesListObject<k8s.KubernetesObject>);
    };
    this.dynamicStorageInformer = customInformer(dynamicStorageGroup, dynamicStorageVersion, dynamicStoragePlural);
    this.clusterInformer = customInformer(cnpgGroup, cnpgVersion, cnpgClusterPlural);
    // Only what CloudNativePG labels with a cluster: the PVCs and pods of every Cluster, nothing else of the namespace.
    const labelSelector = cnpgLabels.cluster;
    const ns = namespace ? `/api/v1/namespaces/${namespace}` : '/api/v1';
    this.pvcInformer = k8s.makeInformer<k8s.V1PersistentVolumeClaim>(kubeConfig, `${ns}/persistentvolumeclaims`, () =>
      namespace ? core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector }) : core.listPersistentVolumeClaimForAllNamespaces({ labelSelector }), labelSelector);
    this.podInformer = k8s.makeInformer<k8s.V1Pod>(kubeConfig, `${ns}/pods`, () =>
      namespace ? core.listNamespacedPod({ namespace, labelSelector }) : core.listPodForAllNamespaces({ labelSelector }), labelSelector);
    this.storageClassInformer = k8s.makeInformer<k8s.V1StorageClass>(kubeConfig, '/apis/storage.k8s.io/v1/storageclasses', () => storage.listStorageClass());
    // Registered first, so every other handler sees (and the cache keeps) the slim object.
    const slimmed: [Store<k8s.KubernetesObject>, (object: k8s.KubernetesObject) => void][] = [
      [this.dynamicStorageInformer, dropManagedFields], [this.clusterInformer, slimCluster], [this.pvcInformer, dropManagedFields],
      [this.podInformer, slimPod], [this.storageClassInformer, dropManagedFields],
    ];
    for (const [informer, slim] of slimmed) {
      informer.on('add', slim);
      informer.on('update', slim);
    }
    for (const [informer, index] of [[this.pvcInformer, this.pvcIndex], [this.podInformer, this.podIndex]] as const) {
      const on = informer as Store<k8s.KubernetesObject>;
      on.on('add', (object) => { index.upsert(object); });
      on.on('update', (object) => { index.upsert(object); });
      on.on('delete', (object) => { index.remove(object); });
    }
  }

  /** Starts every watch; resolves once each has listed (a reconcile never reads a cache that is still empty). */
  async start(log: Logger): Promise<void> {
    const all: [string, Store<k8s.KubernetesObject>][] = [
      ['dynamicstorages', this.dynamicStorageInformer], ['clusters', this.clusterInformer],
      ['persistentvolumeclaims', this.pvcInformer], ['pods', this.podInformer],
      ['storageclasses', this.storageClassInformer],
    ];
    for (const [name, informer] of all) this.handles.push(supervised(name, informer, log));
    await Promise.all(this.handles.map((h) => h.synced));
  }

  async stop(): Promise<void> {
    for (const handle of this.handles.splice(0)) await handle.stop();
  }

  dynamicStorage(namespace: string, name: string): Promise<DynamicStorage | undefined> {
    const cached = this.dynamicStorageInformer.get(name, namespace);
    return Promise.resolve(this.fresh.pick('dynamicstorages', cached, namespace, name) as DynamicStorage | undefined);
  }

  dynamicStorages(namespace: string): Promise<DynamicStorage[]> {
    return Promise.resolve(this.dynamicStorageInformer.list(namespace)
      .map((o) => this.fresh.pick('dynamicstorages', o, namespace, o.metadata?.name ?? '') as DynamicStorage));
  }

  cluster(namespace: string, name: string): Promise<k8s.KubernetesObject | undefined> {
    return Promise.resolve(this.fresh.pick('clusters', this.clusterInformer.get(name, namespace), namespace, name));
  }

  pvcs(namespace: string, labels: Readonly<Record<string, string>>): Promise<k8s.V1PersistentVolumeClaim[]> {
    const cluster = labels[cnpgLabels.cluster];
    // Every PVC cached carries a cluster label (the informer's selector): a cluster's own are found by the index.
    const candidates = cluster === undefined
      ? this.pvcInformer.list(namespace)
      : this.pvcIndex.names(namespace, cluster).map((name) => this.pvcInformer.get(name, namespace)).filter((pvc) => pvc !== undefined);
    const result: k8s.V1PersistentVolumeClaim[] = [];
    for (const cached of candidates) {
      const pvc = this.fresh.pick('persistentvolumeclaims', cached, namespace, cached.metadata?.name ?? '');
      if (pvc && hasLabels(pvc, labels)) result.push(pvc);
    }
    return Promise.resolve(result);
  }

  clusterPods(namespace: string, cluster: string): Promise<k8s.V1Pod[]> {
    return Promise.resolve(this.podIndex.names(namespace, cluster).map((name) => this.podInformer.get(name, namespace))
      .filter((pod) => pod !== undefined && pod.metadata?.labels?.[cnpgLabels.cluster] === cluster) as k8s.V1Pod[]);
  }

  storageClass(name: string): Promise<k8s.V1StorageClass | undefined> {
    return Promise.resolve(this.storageClassInformer.get(name));
  }

  wrote(resource: WrittenResource, object: k8s.KubernetesObject): void {
    const namespace = object.metadata?.namespace ?? '';
    const name = object.metadata?.name ?? '';
    const informer = resource === 'dynamicstorages' ? this.dynamicStorageInformer : resource === 'clusters' ? this.clusterInformer : this.pvcInformer;
    const cached = informer.get(name, namespace);
    this.fresh.remember(resource, object, cached?.metadata?.resourceVersion === object.metadata?.resourceVersion ? undefined : cached?.metadata?.resourceVersion);
  }
}

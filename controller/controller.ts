/**
 * The controller process: campaigns for leadership; the leader watches DynamicStorage objects, CNPG Clusters and PVCs,
 * follows the node agents' change streams, and reconciles each DynamicStorage through a keyed work queue. Event
 * handlers only enqueue `namespace/name`; the reconciler reads current state itself.
 */
import http from 'node:http';
import * as k8s from '@kubernetes/client-node';
import { dynamicStorageGroup, dynamicStoragePlural, dynamicStorageVersion, type DynamicStorage } from '../shared/api/dynamicstorage.generated.ts';
import { ConflictError } from '../shared/errors.ts';
import { listenOn } from '../shared/listen.ts';
import type { Logger } from '../shared/log.ts';
import { dfUsage, type FilesystemUsage, type VolumeReading } from '../shared/readings.ts';
import { ensureAgentTls } from './agent-tls.ts';
import { AgentFleet, type AgentEndpoints } from './agents.ts';
import { cnpgLabels } from '../shared/cnpg.ts';
import { EventRecorder } from './kube/events.ts';
import { LeaderElector, type LeaderElectionConfig } from './kube/leader.ts';
import { WorkQueue } from './kube/workqueue.ts';
import { reuseConnections } from './kube/connections.ts';
import { ClusterCache, type Handle } from './kube/cache.ts';
import { ChangeFilter, clusterFingerprint, podFingerprint, pvcFingerprint } from './triggers.ts';
import { createControllerMetrics, type ControllerMetrics } from './metrics.ts';
import { metricsGate, type MetricsAuthConfig } from './metrics-auth.ts';
import { gateRequest, type GateOptions } from '../shared/auth.ts';
import { ReadingsStore } from './readings.ts';
import { Reconciler } from './reconcile.ts';
import { StatusWriter } from './status.ts';
import { ClusterStatusWriter, type ClusterStatusOptions } from './cluster-status-writer.ts';
import { startPluginServer, type PluginServer } from './cnpgi/server.ts';
import { dynamicStorageStatusSource } from './cnpgi/status-source.ts';
import { ensurePluginTls, type PluginTls, type PluginTlsSecrets } from './cnpgi/tls.ts';
import { startWebhookServer, type WebhookServer } from './webhook.ts';
import { ensureWebhookTls, syncCaBundles, type WebhookTls, type WebhookTlsOptions } from './webhook-tls.ts';

export interface ControllerConfig {
  /** Identity used for the lease and events. */
  identity: string;
  leaderElection: (Omit<LeaderElectionConfig, 'identity'> & { enabled: boolean });
  /** Watch DynamicStorage objects in this namespace only; all namespaces when empty. */
  watchNamespace: string;
  workers: number;
  resyncMs: number;
  busyRequeueMs: number;
  /** Reconcile a DynamicStorage for reading changes at most this often, unless a volume is nearly full. */
  readingIntervalMs: number;
  /** How the node agents are found and reached. */
  agents: AgentEndpoints;
  /** Address of /metrics, /healthz and /readyz; port 0 picks a free port; undefined disables it. */
  listen?: { host: string; port: number } | undefined;
  /** /metrics needs a token (TokenReview) allowed `get` on /metrics (SubjectAccessReview); undefined leaves it open. */
  metricsAuth?: MetricsAuthConfig | undefined;
  /** The time decisions are made at; tests shift it to open windows or refill budgets without waiting. */
  clock?: (() => Date) | undefined;
  /**
   * The admission webhooks (new replicas at the effective size, DynamicStorage validation); served by every replica,
   * leader or not. The certificate: `managed`, the one the controller keeps in a Secret (and the configurations'
   * caBundle with it, controller/webhook-tls.ts); else `certPem`/`keyPem`, re-read from `certFile`/`keyFile` when given
   * (cert-manager).
   */
  webhook?: WebhookConfig | undefined;
  /**
   * The CNPG-I plugin (status.pluginStatus on Clusters that opt in); served by every replica, leader or not. Its
   * certificates come from `tls` when given, else from the Secrets the controller keeps (`secrets`).
   */
  plugin?: { host: string; port: number; secrets: PluginTlsSecrets; tls?: PluginTls | undefined } | undefined;
  /** The summary on each managed Cluster (condition, annotation); undefined writes nothing there. */
  clusterStatus?: ClusterStatusOptions | undefined;
}

export interface WebhookConfig {
  host: string;
  port: number;
  certPem?: string | undefined;
  keyPem?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** The controller's own certificate: checked, renewed and its CA put on the configurations every `checkMs` (60 s). */
  managed?: (WebhookTlsOptions & { checkMs?: number | undefined }) | undefined;
}

export interface RunningController {
  readonly metrics: ControllerMetrics;
  readonly readings: ReadingsStore;
  /** Address the HTTP endpoints listen on, when enabled. */
  readonly address: { host: string; port: number } | undefined;
  /** Port of the admission webhook, when enabled. */
  readonly webhookPort: number | undefined;
  /** Port of the CNPG-I plugin, when served. */
  readonly pluginPort: number | undefined;
  isLeader(): boolean;
  /** Resolves when the controller stopped by itself (lost leadership). */
  readonly lost: Promise<void>;
  stop(): Promise<void>;
}

export async function startController(kubeConfig: k8s.KubeConfig, config: ControllerConfig, log: Logger): Promise<RunningController> {
  if (!reuseConnections(kubeConfig)) log.warn('this @kubernetes/client-node cannot share connections: one connection per API request');
  const metrics = createControllerMetrics();
  const readings = new ReadingsStore();
  const queue = new WorkQueue();
  const handles: Handle[] = [];
  let leading = false;
  let signalLost: () => void = () => undefined;
  const lost = new Promise<void>((resolve) => { signalLost = resolve; });
  /** namespace/cluster -> DynamicStorage keys naming it (kept from the DynamicStorage watch). */
  const byCluster = new Map<string, Set<string>>();
  /** namespace/name -> the last spec generation seen by the DynamicStorage watch. */
  const generations = new Map<string, number>();

  // Reconciles read from these caches (started when leading); writes go to the API server.
  const cache = new ClusterCache(kubeConfig, config.watchNamespace);
  const reconciler = new Reconciler({
    kubeConfig, readings, log, clock: config.clock ?? (() => new Date()), resyncMs: config.resyncMs, busyRequeueMs: config.busyRequeueMs,
    state: cache,
    status: new StatusWriter(kubeConfig),
    clusterStatus: config.clusterStatus && (config.clusterStatus.condition || config.clusterStatus.annotation)
      ? new ClusterStatusWriter(kubeConfig, config.clusterStatus, (cluster) => { cache.wrote('clusters', cluster); })
      : undefined,
    events: new EventRecorder(kubeConfig, { component: 'cnpg-dynamic-storage', instance: config.identity, log }),
    onVolumeStatus: (key, status) => { metrics.observeVolume(key, status); },
    onPolicy: (key, validity) => { metrics.observePolicy(key, validity); },
  });

  const enqueueCluster = (namespace: string, cluster: string): void => {
    for (const key of byCluster.get(`${namespace}/${cluster}`) ?? []) queue.add(key);
  };
  /**
   * Agents report every change of every volume, up to once a second each. A volume getting full is looked at at once;
   * other changes at most every readingIntervalMs per DynamicStorage, so that busy clusters do not turn into a steady
   * stream of API requests.
   */
  const enqueueForReading = (namespace: string, cluster: string, reading: VolumeReading | undefined): void => {
    const urgent = reading?.usage === undefined || isNearlyFull(dfUsage(reading.usage));
    for (const key of byCluster.get(`${namespace}/${cluster}`) ?? []) {
      // Ahead of the routine reconciles (readings, resyncs): an emergency does not wait behind them.
      if (urgent) queue.addFirst(key);
      else queue.addAfter(key, Math.max(0, (lastStarted.get(key) ?? 0) + config.readingIntervalMs - Date.now()));
    }
  };
  const lastStarted = new Map<string, number>();

  const workers: Promise<void>[] = [];
  const runWorkers = (): void => {
    for (let i = 0; i < config.workers; i += 1) workers.push(worker(queue, reconciler, { metrics, log, lastStarted }));
  };

  const startLeading = async (): Promise<void> => {
    leading = true;
    log.info('starting to reconcile');
    watchDynamicStorage(cache, {
      upsert: (obj) => {
        const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
        // Our own status writes change nothing the reconcile reads from the spec: no reconcile for those.
        const generation = obj.metadata?.generation;
        if (generation !== undefined && generations.get(key) === generation) return;
        if (generation !== undefined) generations.set(key, generation);
        for (const keys of byCluster.values()) keys.delete(key);
        const clusterKey = `${obj.metadata?.namespace ?? ''}/${obj.spec.cluster.name}`;
        byCluster.set(clusterKey, (byCluster.get(clusterKey) ?? new Set<string>()).add(key));
        queue.add(key);
      },
      remove: (obj) => {
        const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
        for (const keys of byCluster.values()) keys.delete(key);
        generations.delete(key);
        metrics.forgetCluster(obj.metadata?.namespace ?? '', obj.spec.cluster.name);
      },
    });
    watchTriggers(cache, enqueueCluster);
    handles.push(cache);
    await cache.start(log);
    const fleet = new AgentFleet({
      kubeConfig, ...config.agents, ...await agentTrust(kubeConfig, config.agents, log), store: readings, log: log.child({ component: 'agents' }),
      onChange: (volume, reading) => { enqueueForReading(volume.namespace, volume.cluster, reading); },
    });
    handles.push(fleet);
    await fleet.start();
    runWorkers();
  };

  let elector: LeaderElector | undefined;
  if (config.leaderElection.enabled) {
    elector = new LeaderElector(kubeConfig, { ...config.leaderElection, identity: config.identity }, log);
    elector.start({
      onStartedLeading: () => { void startLeading(); },
      onStoppedLeading: () => { leading = false; signalLost(); },
    });
  } else {
    await startLeading();
  }

  metrics.setLeader(() => leading);
  // Every replica is ready once it serves: non-leaders answer the PVC webhook too. Who leads shows in the Lease and in
  // the cnpg_dynamic_storage_controller_leader metric.
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let webhook: WebhookServer | undefined;
  let plugin: PluginServer | undefined;
  const stopAll = async (): Promise<void> => {
    // Finish the reconciles in flight (a PVC patch and its status write belong together) before giving up the Lease.
    queue.shutdown();
    await Promise.all(workers);
    await elector?.stop();
    for (const handle of handles.splice(0)) await handle.stop();
    await server?.close();
    await webhook?.close();
    await plugin?.close();
  };
  try {
    const gate = config.metricsAuth ? metricsGate(kubeConfig, config.metricsAuth, log.child({ component: 'metrics' })) : undefined;
    server = config.listen ? await serve(config.listen, metrics, gate) : undefined;
    webhook = config.webhook ? await startPvcWebhook(kubeConfig, config.webhook, config.clock ?? (() => new Date()), log.child({ component: 'webhook' })) : undefined;
    plugin = config.plugin ? await startPlugin(kubeConfig, config.plugin, log.child({ component: 'cnpgi' })) : undefined;
  } catch (err) {
    // A port already taken: stop what was started rather than leave it running behind a failed start.
    await stopAll();
    throw err;
  }

  return {
    metrics, readings,
    address: server?.address,
    webhookPort: webhook?.port,
    pluginPort: plugin?.port,
    isLeader: () => leading,
    lost,
    stop: stopAll,
  };
}

/**
 * The CNPG-I plugin. Its certificates could not be made or read (no RBAC for the Secrets, say): the controller runs
 * without it, and says so; sizing does not depend on it.
 */
async function startPlugin(kubeConfig: k8s.KubeConfig, options: NonNullable<ControllerConfig['plugin']>, log: Logger): Promise<PluginServer | undefined> {
  let tls = options.tls;
  try {
    tls ??= await ensurePluginTls(kubeConfig, options.secrets, new Date(), log);
  } catch (err) {
    log.error('CNPG-I plugin not served: its certificates are not available', { err, ...options.secrets });
    return undefined;
  }
  return startPluginServer({ host: options.host, port: options.port, tls, statusFor: dynamicStorageStatusSource(kubeConfig), version: productVersion, log });
}

/** The version the plugin reports to the operator (GetPluginMetadata). */
const productVersion = '0.1.0';

/** The CA and name to check agents against: the Secret the controller keeps for them, unless a CA was given. */
async function agentTrust(kubeConfig: k8s.KubeConfig, agents: AgentEndpoints, log: Logger): Promise<Pick<AgentEndpoints, 'ca' | 'tlsServerName'>> {
  if (agents.scheme !== 'https' || agents.ca !== undefined || agents.tlsSecret === undefined) return {};
  const trust = await ensureAgentTls(kubeConfig, agents.tlsSecret, new Date(), log.child({ component: 'agent-tls' }));
  return { ca: trust.caPem, tlsServerName: trust.serverName };
}

/**
 * The controller's own webhook certificate, checked (and renewed) now and the configurations' caBundle set; a
 * configuration that cannot be patched yet is tried again at the next check.
 */
async function managedCertificate(kubeConfig: k8s.KubeConfig, options: WebhookTlsOptions, clock: () => Date, log: Logger): Promise<WebhookTls> {
  const tls = await ensureWebhookTls(kubeConfig, options, clock(), log);
  try {
    await syncCaBundles(kubeConfig, options, tls.caBundlePem, log);
  } catch (err) {
    log.warn('could not set the webhook configurations\' caBundle; trying again at the next check', { err, mutating: options.mutatingConfiguration, validating: options.validatingConfiguration });
  }
  return tls;
}

/**
 * The admission webhooks. The controller's own certificate could not be made or read (no RBAC for the Secret, say):
 * the controller runs without the webhooks, and says so; sizing does not depend on them (failurePolicy Ignore).
 */
async function startPvcWebhook(kubeConfig: k8s.KubeConfig, options: WebhookConfig, clock: () => Date, log: Logger): Promise<WebhookServer | undefined> {
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const { managed, ...served } = options;
  let pair = { certPem: served.certPem ?? '', keyPem: served.keyPem ?? '' };
  if (managed) {
    try {
      pair = await managedCertificate(kubeConfig, managed, clock, log);
    } catch (err) {
      log.error('webhooks not served: their certificate is not available', { err, namespace: managed.namespace, secret: managed.secret });
      return undefined;
    }
  }
  return startWebhookServer({
    ...served, ...pair, log,
    certificate: managed ? () => managedCertificate(kubeConfig, managed, clock, log) : undefined,
    reloadMs: managed ? managed.checkMs ?? 60_000 : undefined,
    listDynamicStorages: async (namespace) => {
      const list = await custom.listNamespacedCustomObject({ group: dynamicStorageGroup, version: dynamicStorageVersion, plural: dynamicStoragePlural, namespace }) as { items: DynamicStorage[] };
      return list.items;
    },
  });
}

/** At or above this, a reading is urgent whatever the policy: it is the lowest criticalThreshold allowed (80). */
const nearlyFullPercent = 80;

function isNearlyFull(usage: FilesystemUsage): boolean {
  return usage.percentUsed >= nearlyFullPercent || usage.inodesPercentUsed >= nearlyFullPercent;
}

async function worker(queue: WorkQueue, reconciler: Reconciler, context: { metrics: ControllerMetrics; log: Logger; lastStarted: Map<string, number> }): Promise<void> {
  const { metrics, log, lastStarted } = context;
  for (;;) {
    const key = await queue.get();
    if (key === undefined) return;
    lastStarted.set(key, Date.now());
    const [namespace = '', name = ''] = key.split('/');
    const started = process.hrtime.bigint();
    try {
      const result = await reconciler.reconcile(namespace, name);
      queue.forget(key);
      if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      metrics.observeReconcile(Number(process.hrtime.bigint() - started) / 1e9, false);
    } catch (err) {
      const delay = queue.addRateLimited(key, { atOnce: retriesAtOnce(err) });
      metrics.observeReconcile(Number(process.hrtime.bigint() - started) / 1e9, true);
      log.warn('reconcile failed; retrying', { namespace, dynamicStorage: name, err, retryInMs: delay });
      await reconciler.reportFailure(namespace, name, err);
    } finally {
      queue.done(key);
    }
  }
}

/** A status write that lost to a newer one is retried at once (it reads the newer object); anything else backs off. */
export function retriesAtOnce(err: unknown): boolean {
  return err instanceof ConflictError;
}

interface DynamicStorageHandlers {
  upsert: (obj: DynamicStorage) => void;
  remove: (obj: DynamicStorage) => void;
}

function keyOf(obj: k8s.KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

function watchDynamicStorage(cache: ClusterCache, handlers: DynamicStorageHandlers): void {
  // The informer only hands over raw JSON; our generated type describes it (timestamps stay strings).
  const asDynamicStorage = (obj: k8s.KubernetesObject): DynamicStorage => obj as unknown as DynamicStorage;
  const informer = cache.dynamicStorageInformer;
  informer.on('add', (obj) => { handlers.upsert(asDynamicStorage(obj)); });
  informer.on('update', (obj) => { handlers.upsert(asDynamicStorage(obj)); });
  informer.on('delete', (obj) => { handlers.remove(asDynamicStorage(obj)); });
}

/**
 * Changes to Clusters, to CNPG PVCs (resize progress, new replicas) and to CNPG pods (which node mounts a volume) wake
 * the DynamicStorage of their cluster, when they change something a reconcile reads (controller/triggers.ts).
 */
function watchTriggers(cache: ClusterCache, enqueueCluster: (namespace: string, cluster: string) => void): void {
  const relevant = <T extends k8s.KubernetesObject>(kind: string, fingerprint: (obj: T) => string, cluster: (obj: T) => string | undefined) => {
    const filter = new ChangeFilter();
    return {
      upsert: (obj: T): void => {
        const name = cluster(obj);
        if (name && filter.changed(`${kind}/${keyOf(obj)}`, fingerprint(obj))) enqueueCluster(obj.metadata?.namespace ?? '', name);
      },
      remove: (obj: T): void => {
        filter.forget(`${kind}/${keyOf(obj)}`);
        const name = cluster(obj);
        if (name) enqueueCluster(obj.metadata?.namespace ?? '', name);
      },
    };
  };
  const labelled = (obj: k8s.KubernetesObject): string | undefined => obj.metadata?.labels?.[cnpgLabels.cluster];
  const clusters = relevant<k8s.KubernetesObject>('cluster', clusterFingerprint, (obj) => obj.metadata?.name);
  const pvcs = relevant<k8s.V1PersistentVolumeClaim>('pvc', pvcFingerprint, labelled);
  const pods = relevant<k8s.V1Pod>('pod', podFingerprint, labelled);
  for (const [informer, handlers] of [[cache.clusterInformer, clusters], [cache.pvcInformer, pvcs], [cache.podInformer, pods]] as const) {
    const on = informer as k8s.Informer<k8s.KubernetesObject>;
    const h = handlers;
    on.on('add', h.upsert);
    on.on('update', h.upsert);
    on.on('delete', h.remove);
  }
}

/** Every replica is ready once it serves (non-leaders answer the webhooks too); /metrics behind `gate` when given. */
async function serve(listen: { host: string; port: number }, metrics: ControllerMetrics, gate: GateOptions | undefined): Promise<{ address: { host: string; port: number }; close(): Promise<void> }> {
  const exposeMetrics = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (gate && await gateRequest(gate, req, res, '/metrics') === undefined) return;
    try {
      const text = await metrics.expose();
      res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' }).end(text);
    } catch {
      res.writeHead(500).end();
    }
  };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://controller').pathname;
    if (path === '/healthz' || path === '/readyz') {
      res.writeHead(200).end('ok');
    } else if (path === '/metrics') {
      void exposeMetrics(req, res);
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listenOn(server, listen.port, listen.host);
  return {
    address: { host: listen.host, port },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
}

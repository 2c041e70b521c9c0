/**
 * The controller's link to the node agents: finds the agent pods and keeps one change stream open to each, feeding the
 * readings store. A failure on one node is that node's problem (its volumes go stale and are reported as such), never
 * the whole fleet's.
 */
import type { AgentTlsSecret } from './agent-tls.ts';
import * as k8s from '@kubernetes/client-node';
import { AgentClient } from '../shared/agent-client.ts';
import type { Logger } from '../shared/log.ts';
import type { VolumeEvent, VolumeIdentity, VolumeReading } from '../shared/readings.ts';
import { agentAudience, audienceTokenSource } from './agent-token.ts';
import { ReadingsStore } from './readings.ts';
import { backoffDelay, retryBackoff } from '../shared/backoff.ts';
import { sleep } from '../shared/sleep.ts';
import { supervised, type Handle } from './kube/cache.ts';
import { readingChangesDecision } from './triggers.ts';

export interface AgentEndpoints {
  /** Namespace of the agent DaemonSet; all namespaces when empty. */
  namespace: string;
  labelSelector: string;
  port: number;
  scheme: 'http' | 'https';
  /** The bearer token for agents; when absent, `tokenRequest` says which ServiceAccount to request one for. */
  token?: (() => string | Promise<string>) | undefined;
  /** Request audience-bound, short-lived tokens for this ServiceAccount (controller/agent-token.ts). */
  tokenRequest?: { namespace: string; serviceAccount: string; audience?: string | undefined } | undefined;
  /** Only pods controlled by this DaemonSet (name, in `namespace`) and running as this ServiceAccount are agents. */
  daemonSet?: { name: string; serviceAccount: string } | undefined;
  ca?: string | undefined;
  /** The name the agents' certificate is checked against (they are reached by pod IP). */
  tlsServerName?: string | undefined;
  /** With https and no `ca`: the Secret the controller keeps the agents' CA and certificate in (controller/agent-tls.ts). */
  tlsSecret?: AgentTlsSecret | undefined;
  insecureSkipVerify?: boolean | undefined;
  /** Overrides the URL of an agent pod (tests that run agents on loopback ports). */
  urlFor?: ((pod: k8s.V1Pod) => string | undefined) | undefined;
}

export interface AgentFleetOptions extends AgentEndpoints {
  kubeConfig: k8s.KubeConfig;
  store: ReadingsStore;
  /**
   * Called for every volume whose reading changed something a reconcile decides from (with the reading) or went away
   * (without). A reading that only repeats the previous one is stored, and not reported.
   */
  onChange: (volume: VolumeIdentity, reading: VolumeReading | undefined) => void;
  log: Logger;
  /** How long after the last one the agent DaemonSet is read again while it could not be read (default 10 s). */
  resyncMs?: number;
  /** A repeated reading is reported anyway when the one it replaces is this old (default 60 s). */
  refreshReadingAfterMs?: number;
  /** Readings dated further than this ahead of the controller's clock are refused (default 30 s). */
  maxFutureSkewMs?: number;
  now?: () => number;
}

/** True when the pod is one of our agents: controlled by our DaemonSet (by UID) and running as our ServiceAccount. */
export function isAgentPod(pod: k8s.V1Pod, daemonSet: { name: string; uid: string | undefined; serviceAccount: string }): boolean {
  if (!daemonSet.uid || pod.spec?.serviceAccountName !== daemonSet.serviceAccount) return false;
  return (pod.metadata?.ownerReferences ?? []).some((ref) =>
    ref.controller === true && ref.kind === 'DaemonSet' && ref.apiVersion === 'apps/v1' && ref.name === daemonSet.name && ref.uid === daemonSet.uid);
}

interface Connection {
  url: string;
  abort: AbortController;
  done: Promise<void>;
}

export class AgentFleet {
  private readonly options: AgentFleetOptions;
  private readonly core: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;
  private readonly token: () => string | Promise<string>;
  private readonly connections = new Map<string, Connection>();
  private readonly refused = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private pods: (k8s.Informer<k8s.V1Pod> & k8s.ObjectCache<k8s.V1Pod>) | undefined;
  private podWatch: (Handle & { synced: Promise<void> }) | undefined;
  /** The agent DaemonSet's UID, read once and again only when a pod names another one (a re-created DaemonSet). */
  private daemonSetUid: string | undefined;
  private daemonSetReadAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;

  constructor(options: AgentFleetOptions) {
    this.options = options;
    this.core = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.apps = options.kubeConfig.makeApiClient(k8s.AppsV1Api);
    const request = options.tokenRequest;
    this.token = options.token ?? (request
      ? audienceTokenSource(options.kubeConfig, { namespace: request.namespace, serviceAccount: request.serviceAccount, audience: request.audience ?? agentAudience })
      : () => '');
  }

  get connectedNodes(): string[] {
    return [...this.connections.keys()].sort();
  }

  /** Watches the agent pods (no polling: a pod event refreshes the connections) and connects to those listed. */
  async start(): Promise<void> {
    const { namespace, labelSelector, kubeConfig } = this.options;
    const path = namespace ? `/api/v1/namespaces/${namespace}/pods` : '/api/v1/pods';
    const pods = k8s.makeInformer<k8s.V1Pod>(kubeConfig, path, () =>
      namespace ? this.core.listNamespacedPod({ namespace, labelSelector }) : this.core.listPodForAllNamespaces({ labelSelector }), labelSelector);
    for (const event of ['add', 'update', 'delete'] as const) pods.on(event, () => { this.scheduleRefresh(); });
    this.pods = pods;
    this.podWatch = supervised('agent pods', pods, this.options.log);
    // Not waited for when the pods cannot be listed (RBAC, say): the watch is retried, and says why, meanwhile.
    await Promise.race([this.podWatch.synced, new Promise<void>((resolve) => { setTimeout(resolve, 10_000).unref(); })]);
    this.scheduleRefresh();
    await this.refreshing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.podWatch?.stop();
    await this.refreshing;
    const all = [...this.connections.values()];
    this.connections.clear();
    for (const c of all) c.abort.abort();
    await Promise.all(all.map((c) => c.done));
  }

  /** One refresh at a time; events during one cause one more after it. */
  private scheduleRefresh(): void {
    if (this.stopped) return;
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = this.refresh().finally(() => {
      this.refreshing = undefined;
      if (this.refreshAgain) {
        this.refreshAgain = false;
        this.scheduleRefresh();
      }
    });
  }

  private async refresh(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      this.reconcileConnections(await this.agentPods(this.pods?.list() ?? []));
    } catch (err) {
      this.options.log.warn('could not refresh the agent connections', { err });
    }
    // The DaemonSet could not be read: no agent is trusted until it can; try again later (pod events also do).
    if (!this.stopped && this.options.daemonSet && this.daemonSetUid === undefined) {
      this.timer = setTimeout(() => { this.scheduleRefresh(); }, this.options.resyncMs ?? 10_000);
    }
  }

  /**
   * The agent DaemonSet's UID: read when not known yet, or when a pod says it is controlled by a DaemonSet of that name
   * with another UID (re-created), at most once per resync period.
   */
  private async daemonSetIdentity(pods: readonly k8s.V1Pod[], name: string): Promise<string | undefined> {
    const owners = pods.flatMap((pod) => (pod.metadata?.ownerReferences ?? []).filter((ref) => ref.kind === 'DaemonSet' && ref.name === name));
    const unknownOwner = owners.some((ref) => ref.uid !== this.daemonSetUid);
    const now = Date.now();
    if ((this.daemonSetUid === undefined || unknownOwner) && now - this.daemonSetReadAt >= (this.options.resyncMs ?? 10_000)) {
      this.daemonSetReadAt = now;
      try {
        const ds = await this.apps.readNamespacedDaemonSet({ name, namespace: this.options.namespace });
        this.daemonSetUid = ds.metadata?.uid;
      } catch (err) {
        this.daemonSetUid = undefined;
        this.options.log.warn('could not read the agent DaemonSet; no agent is trusted', { err, daemonSet: name });
      }
    }
    return this.daemonSetUid;
  }

  /** The pods that are really our agents; any other pod with the label is refused (and logged once). */
  private async agentPods(pods: readonly k8s.V1Pod[]): Promise<k8s.V1Pod[]> {
    const wanted = this.options.daemonSet;
    if (!wanted) return [...pods];
    const uid = await this.daemonSetIdentity(pods, wanted.name);
    const identity = { ...wanted, uid };
    return pods.filter((pod) => {
      if (isAgentPod(pod, identity)) return true;
      const key = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}/${pod.metadata?.uid ?? ''}`;
      if (!this.refused.has(key) && uid) {
        if (this.refused.size > 10_000) this.refused.clear();
        this.refused.add(key);
        this.options.log.warn('ignoring a pod that looks like an agent but is not one of the agent DaemonSet\'s', {
          pod: pod.metadata?.name, podNamespace: pod.metadata?.namespace, serviceAccount: pod.spec?.serviceAccountName,
        });
      }
      return false;
    });
  }

  private urlOf(pod: k8s.V1Pod): string | undefined {
    if (this.options.urlFor) return this.options.urlFor(pod);
    const ip = pod.status?.podIP;
    if (!ip || pod.status?.phase !== 'Running') return undefined;
    return `${this.options.scheme}://${ip.includes(':') ? `[${ip}]` : ip}:${this.options.port}`;
  }

  private reconcileConnections(pods: readonly k8s.V1Pod[]): void {
    const wanted = new Map<string, string>();
    for (const pod of pods) {
      const node = pod.spec?.nodeName;
      const url = this.urlOf(pod);
      if (node && url && !pod.metadata?.deletionTimestamp) wanted.set(node, url);
    }
    for (const [node, connection] of this.connections) {
      if (wanted.get(node) !== connection.url) {
        connection.abort.abort();
        this.connections.delete(node);
      }
    }
    for (const [node, url] of wanted) {
      if (!this.connections.has(node)) this.connect(node, url);
    }
  }

  private connect(node: string, url: string): void {
    const abort = new AbortController();
    const client = new AgentClient({
      baseUrl: url, token: this.token, ca: this.options.ca, tlsServerName: this.options.tlsServerName, insecureSkipVerify: this.options.insecureSkipVerify,
    });
    const log = this.options.log.child({ node, agent: url });
    const done = this.follow(client, node, abort.signal, log).finally(() => client.close());
    this.connections.set(node, { url, abort, done });
  }

  private async follow(client: AgentClient, node: string, signal: AbortSignal, log: Logger): Promise<void> {
    let failures = 0;
    // A function, not the property: the signal is aborted from elsewhere while this loop awaits.
    const aborted = (): boolean => signal.aborted;
    while (!aborted()) {
      try {
        for await (const event of client.watch({ signal })) {
          failures = 0;
          this.apply(node, event, log);
        }
      } catch (err) {
        if (aborted()) break;
        failures += 1;
        const delay = backoffDelay(retryBackoff, failures);
        log.warn('agent stream failed; reconnecting', { err, failures, retryInMs: delay });
        await sleep(delay, signal);
      }
    }
  }

  /**
   * An agent speaks for its own node only, and only about the present: a reading that names another node or is dated
   * in the future is refused (and logged). That the volume is really mounted on this node is checked at reconcile time
   * against the pods that use it (see Reconciler).
   */
  private acceptable(node: string, volume: VolumeReading, log: Logger): boolean {
    if (volume.node !== node) {
      log.warn('refusing a reading for another node', { namespace: volume.namespace, pvc: volume.pvc, claimedNode: volume.node });
      return false;
    }
    const sampled = Date.parse(volume.sampledAt);
    const now = (this.options.now ?? Date.now)();
    if (!Number.isFinite(sampled) || sampled > now + (this.options.maxFutureSkewMs ?? 30_000)) {
      log.warn('refusing a reading dated in the future', { namespace: volume.namespace, pvc: volume.pvc, sampledAt: volume.sampledAt });
      return false;
    }
    return true;
  }

  /** Stores the reading (history for fill rates) and reports it when it changes a decision input. */
  private store(node: string, volume: VolumeReading): void {
    const { store, onChange } = this.options;
    const before = store.rawFrom(volume.namespace, volume.pvc, node);
    store.update(volume);
    if (readingChangesDecision(before, volume, this.options.refreshReadingAfterMs ?? 60_000)) onChange(volume, volume);
  }

  private apply(node: string, event: VolumeEvent, log: Logger): void {
    const { store, onChange } = this.options;
    switch (event.type) {
      case 'SNAPSHOT': {
        const volumes = event.volumes.filter((v) => this.acceptable(node, v, log));
        const present = new Set(volumes.map((v) => ReadingsStore.keyOf(v.namespace, v.pvc)));
        for (const key of store.keysOfNode(node)) {
          if (present.has(key)) continue;
          const gone = store.removeKey(key, node);
          if (gone) onChange(gone, undefined);
        }
        for (const volume of volumes) this.store(node, volume);
        return;
      }
      case 'UPDATED':
        if (!this.acceptable(node, event.volume, log)) return;
        this.store(node, event.volume);
        return;
      case 'REMOVED': {
        // Only what this node reported may be removed by it.
        if (store.remove(event.identity.namespace, event.identity.pvc, node)) onChange(event.identity, undefined);
        return;
      }
      case 'HEARTBEAT':
        return;
    }
  }
}

/**
 * The controller's link to the node agents: finds the agent pods and keeps one change stream open to each, feeding the
 * readings store. A failure on one node is that node's problem (its volumes go stale and are reported as such), never
 * the whole fleet's.
 */
import * as k8s from '@kubernetes/client-node';
import { AgentClient } from '../shared/agent-client.ts';
import type { Logger } from '../shared/log.ts';
import type { VolumeEvent, VolumeIdentity, VolumeReading } from '../shared/readings.ts';
import { ReadingsStore } from './readings.ts';
import { backoffDelay, retryBackoff } from '../shared/backoff.ts';

export interface AgentEndpoints {
  /** Namespace of the agent DaemonSet; all namespaces when empty. */
  namespace: string;
  labelSelector: string;
  port: number;
  scheme: 'http' | 'https';
  token: () => string | Promise<string>;
  ca?: string | undefined;
  insecureSkipVerify?: boolean | undefined;
  /** Overrides the URL of an agent pod (tests that run agents on loopback ports). */
  urlFor?: ((pod: k8s.V1Pod) => string | undefined) | undefined;
}

export interface AgentFleetOptions extends AgentEndpoints {
  kubeConfig: k8s.KubeConfig;
  store: ReadingsStore;
  /** Called for every volume whose reading changed (with the reading) or went away (without). */
  onChange: (volume: VolumeIdentity, reading: VolumeReading | undefined) => void;
  log: Logger;
  /** How often the pod list is refreshed (default 10 s). */
  resyncMs?: number;
}

interface Connection {
  url: string;
  abort: AbortController;
  done: Promise<void>;
}

export class AgentFleet {
  private readonly options: AgentFleetOptions;
  private readonly core: k8s.CoreV1Api;
  private readonly connections = new Map<string, Connection>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: AgentFleetOptions) {
    this.options = options;
    this.core = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
  }

  get connectedNodes(): string[] {
    return [...this.connections.keys()].sort();
  }

  async start(): Promise<void> {
    await this.refresh();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const all = [...this.connections.values()];
    this.connections.clear();
    for (const c of all) c.abort.abort();
    await Promise.all(all.map((c) => c.done));
  }

  private async refresh(): Promise<void> {
    try {
      const { namespace, labelSelector } = this.options;
      const list = namespace
        ? await this.core.listNamespacedPod({ namespace, labelSelector })
        : await this.core.listPodForAllNamespaces({ labelSelector });
      this.reconcileConnections(list.items);
    } catch (err) {
      this.options.log.warn('could not list agent pods', { err });
    }
    if (!this.stopped) this.timer = setTimeout(() => { void this.refresh(); }, this.options.resyncMs ?? 10_000);
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
      baseUrl: url, token: this.options.token, ca: this.options.ca, insecureSkipVerify: this.options.insecureSkipVerify,
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
          this.apply(node, event);
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

  private apply(node: string, event: VolumeEvent): void {
    const { store, onChange } = this.options;
    switch (event.type) {
      case 'SNAPSHOT': {
        const present = new Set(event.volumes.map((v) => ReadingsStore.keyOf(v.namespace, v.pvc)));
        for (const key of store.keysOfNode(node)) {
          if (present.has(key)) continue;
          const gone = store.removeKey(key);
          if (gone) onChange(gone, undefined);
        }
        for (const volume of event.volumes) {
          store.update(volume);
          onChange(volume, volume);
        }
        return;
      }
      case 'UPDATED':
        store.update(event.volume);
        onChange(event.volume, event.volume);
        return;
      case 'REMOVED':
        store.remove(event.identity.namespace, event.identity.pvc);
        onChange(event.identity, undefined);
        return;
      case 'HEARTBEAT':
        return;
    }
  }
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

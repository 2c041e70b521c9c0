/**
 * One connection pool per API server for every request the controller makes.
 *
 * @kubernetes/client-node 2.0.1 builds a new undici Agent in `KubeConfig.applySecurityAuthentication` for every request
 * and watch (`createDispatcher`), so no connection is ever reused: each request opens its own TCP and TLS connection,
 * and each idle Agent keeps its socket and TLS state until undici's keep-alive timeout lets it go. Here the dispatcher
 * is built once per set of connection options and handed out again; a changed client certificate or CA (a rotated
 * kubeconfig, exec credentials) gets a new pool, and the previous one is closed once its requests are done.
 */
import type * as k8s from '@kubernetes/client-node';

/** The part of KubeConfig this patches (a public but undocumented method of client-node 2.x). */
interface DispatcherFactory {
  createDispatcher(cluster: k8s.Cluster | null, agentOptions: Record<string, unknown>): unknown;
}

interface Closable {
  close?: () => Promise<void>;
}

const reused = new WeakSet<object>();

/**
 * Makes every API client made from `kubeConfig` share one connection pool (per set of TLS options). Idempotent.
 * Returns false when this client-node has no `createDispatcher` to wrap (another major version): nothing is changed.
 */
export function reuseConnections(kubeConfig: k8s.KubeConfig): boolean {
  if (reused.has(kubeConfig)) return true;
  const factory = kubeConfig as unknown as Partial<DispatcherFactory>;
  const original = factory.createDispatcher;
  if (typeof original !== 'function') return false;
  let current: { key: string; dispatcher: unknown } | undefined;
  factory.createDispatcher = (cluster, agentOptions): unknown => {
    const key = optionsKey(cluster, agentOptions);
    if (current?.key === key) return current.dispatcher;
    const previous = current?.dispatcher as Closable | undefined;
    current = { key, dispatcher: original.call(kubeConfig, cluster, agentOptions) };
    // Requests in flight on the previous pool finish; close() only stops it taking new ones.
    void previous?.close?.().catch(() => undefined);
    return current.dispatcher;
  };
  reused.add(kubeConfig);
  return true;
}

/** What decides the connection: the server, the proxy and the TLS material (Buffers compared by content). */
export function optionsKey(cluster: Pick<k8s.Cluster, 'server' | 'proxyUrl' | 'skipTLSVerify'> | null, agentOptions: Record<string, unknown>): string {
  const entries = Object.keys(agentOptions).sort().map((name) => {
    const value = agentOptions[name];
    return [name, Buffer.isBuffer(value) ? value.toString('base64') : value];
  });
  return JSON.stringify([cluster?.server ?? '', cluster?.proxyUrl ?? '', cluster?.skipTLSVerify ?? false, entries]);
}

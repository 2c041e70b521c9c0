/**
 * The agent's API client from what tests already hold: a loaded @kubernetes/client-node `KubeConfig` (matched by shape),
 * or a server, CA and token; and an agent started on such a KubeConfig, which closes its client when it stops.
 */
import { readFileSync } from 'node:fs';
import { startAgent, type AgentDeps, type RunningAgent } from '../../agent/agent.ts';
import type { AgentConfig } from '../../agent/config.ts';
import { createKubeClient, type KubeClient, type KubeConnection } from '../../agent/kube/client.ts';
import { DynamicStorageError } from '../../shared/errors.ts';

/** The part of client-node's `KubeConfig` the adapter reads. */
export interface KubeConfigLike {
  getCurrentCluster(): { server: string; caData?: string; caFile?: string; skipTLSVerify?: boolean } | null;
  getCurrentUser(): { token?: string; certData?: string; certFile?: string; keyData?: string; keyFile?: string } | null;
}

function pem(data: string | undefined, file: string | undefined): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFileSync(file);
  return undefined;
}

export function connectionFromKubeConfig(kc: KubeConfigLike): KubeConnection {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new DynamicStorageError('KubeConfigInvalid', 'the KubeConfig has no current cluster');
  const user = kc.getCurrentUser();
  const connection: KubeConnection = { server: cluster.server };
  const ca = pem(cluster.caData, cluster.caFile);
  if (ca) connection.ca = ca;
  if (cluster.skipTLSVerify) connection.insecureSkipTlsVerify = true;
  const cert = pem(user?.certData, user?.certFile);
  const key = pem(user?.keyData, user?.keyFile);
  if (cert && key) {
    connection.cert = cert;
    connection.key = key;
  }
  const token = user?.token;
  if (token) connection.token = () => token;
  return connection;
}

/** A client from a loaded client-node `KubeConfig`. */
export function kubeClientFromKubeConfig(kc: KubeConfigLike): KubeClient {
  return createKubeClient(connectionFromKubeConfig(kc));
}

/** A client for a server, its CA (PEM) and a bearer token (a string, or asked for on each request). */
export function kubeClientFor(options: { server: string; ca?: string | Buffer; token: string | (() => string | Promise<string>) }): KubeClient {
  const { token } = options;
  return createKubeClient({
    server: options.server, ...(options.ca ? { ca: options.ca } : {}), token: typeof token === 'string' ? () => token : token,
  });
}

/** startAgent with a client made of `kubeConfig`, closed when the agent stops (or fails to start). */
export async function startAgentOnKubeConfig(config: AgentConfig, deps: Omit<AgentDeps, 'kube'> & { kubeConfig: KubeConfigLike }): Promise<RunningAgent> {
  const { kubeConfig, ...rest } = deps;
  const kube = kubeClientFromKubeConfig(kubeConfig);
  let agent: RunningAgent;
  try {
    agent = await startAgent(config, { ...rest, kube });
  } catch (err) {
    await kube.close();
    throw err;
  }
  return { ...agent, stop: async () => { await agent.stop(); await kube.close(); } };
}

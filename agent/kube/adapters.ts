/**
 * Connections from what tests already hold: a loaded @kubernetes/client-node `KubeConfig` (matched by shape, so the agent
 * never imports that library), or a server, CA and token.
 */
import { readFileSync } from 'node:fs';
import { DynamicStorageError } from '../../shared/errors.ts';
import { createKubeClient, type KubeClient, type KubeConnection } from './client.ts';

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

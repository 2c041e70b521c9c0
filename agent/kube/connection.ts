/**
 * Where the agent's API server connection comes from. main.ts passes the environment in; nothing here reads it.
 *
 * - `KUBECONFIG` set: that kubeconfig file (local runs, tests).
 * - `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` set (every pod): in-cluster, with the ServiceAccount's CA and
 *   token files. The token file is read again for every request, because kubelet rotates projected tokens.
 * - otherwise `~/.kube/config`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DynamicStorageError } from '../../shared/errors.ts';
import type { KubeConnection } from './client.ts';

export const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

export type KubeSource =
  | { kind: 'kubeconfig'; path: string }
  | { kind: 'in-cluster'; host: string; port: string; tokenFile: string; caFile: string };

export function kubeSourceFromEnv(env: Record<string, string | undefined>, homeDir: string): KubeSource {
  const kubeconfig = env.KUBECONFIG?.split(path.delimiter).find(Boolean);
  if (kubeconfig) return { kind: 'kubeconfig', path: kubeconfig };
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host && port) {
    return { kind: 'in-cluster', host, port, tokenFile: path.join(serviceAccountDir, 'token'), caFile: path.join(serviceAccountDir, 'ca.crt') };
  }
  return { kind: 'kubeconfig', path: path.join(homeDir, '.kube', 'config') };
}

/** The in-cluster connection: `https://<host>:<port>`, the ServiceAccount CA, and its token read on every request. */
export async function inClusterConnection(source: Extract<KubeSource, { kind: 'in-cluster' }>): Promise<KubeConnection> {
  const host = source.host.includes(':') ? `[${source.host}]` : source.host;
  let ca: Buffer;
  try {
    ca = await readFile(source.caFile);
  } catch (err) {
    throw new DynamicStorageError('KubeConfigInvalid', `cannot read the ServiceAccount CA ${source.caFile}: ${(err as Error).message}`, { cause: err });
  }
  return { server: `https://${host}:${source.port}`, ca, token: async () => (await readFile(source.tokenFile, 'utf8')).trim() };
}

/** The connection for a source; kubeconfig files are parsed by a module loaded only for them (it needs a YAML parser). */
export async function loadConnection(source: KubeSource): Promise<KubeConnection> {
  if (source.kind === 'in-cluster') return inClusterConnection(source);
  const { connectionFromKubeconfigFile } = await import('./kubeconfig.ts');
  return connectionFromKubeconfigFile(source.path);
}

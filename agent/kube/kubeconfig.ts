/**
 * The part of a kubeconfig file the agent understands: the current context's cluster (`server`, `certificate-authority`
 * or `-data`, `insecure-skip-tls-verify`) and user (`client-certificate`/`client-key` or their `-data`, `token`,
 * `tokenFile`). Exec plugins and auth providers are refused with a clear error: in a cluster the agent uses its
 * ServiceAccount, and test kubeconfig files carry certificates or tokens.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { DynamicStorageError } from '../../shared/errors.ts';
import type { KubeConnection } from './client.ts';

interface Named { name?: string }
interface KubeconfigCluster {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
}
interface KubeconfigUser {
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  token?: string;
  tokenFile?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
  username?: string;
}
interface Kubeconfig {
  'current-context'?: string;
  clusters?: (Named & { cluster?: KubeconfigCluster })[];
  users?: (Named & { user?: KubeconfigUser })[];
  contexts?: (Named & { context?: { cluster?: string; user?: string } })[];
}

function invalid(message: string): DynamicStorageError {
  return new DynamicStorageError('KubeConfigInvalid', message);
}

async function material(data: string | undefined, file: string | undefined, baseDir: string): Promise<Buffer | undefined> {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFile(path.resolve(baseDir, file));
  return undefined;
}

async function withUser(connection: KubeConnection, name: string, user: KubeconfigUser, baseDir: string): Promise<KubeConnection> {
  if (user.exec !== undefined || user['auth-provider'] !== undefined || user.username !== undefined) {
    throw invalid(`user ${name}: only client certificates and tokens are supported (not exec, auth-provider or basic auth)`);
  }
  const cert = await material(user['client-certificate-data'], user['client-certificate'], baseDir);
  const key = await material(user['client-key-data'], user['client-key'], baseDir);
  if (cert && key) {
    connection.cert = cert;
    connection.key = key;
  }
  if (user.token) {
    const token = user.token;
    connection.token = () => token;
  } else if (user.tokenFile) {
    const tokenFile = path.resolve(baseDir, user.tokenFile);
    connection.token = async () => (await readFile(tokenFile, 'utf8')).trim();
  }
  return connection;
}

/**
 * A connection from kubeconfig text. `baseDir` resolves relative file references (the kubeconfig's directory);
 * `context` overrides `current-context`.
 */
export async function connectionFromKubeconfig(text: string, baseDir: string, context?: string): Promise<KubeConnection> {
  const config = (parse(text) ?? {}) as Kubeconfig;
  const contextName = context ?? config['current-context'];
  if (!contextName) throw invalid('the kubeconfig has no current-context');
  const ctx = config.contexts?.find((c) => c.name === contextName)?.context;
  if (!ctx) throw invalid(`the kubeconfig has no context ${contextName}`);
  const cluster = config.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster?.server) throw invalid(`the kubeconfig has no cluster ${ctx.cluster ?? ''} with a server`);
  const connection: KubeConnection = { server: cluster.server };
  const ca = await material(cluster['certificate-authority-data'], cluster['certificate-authority'], baseDir);
  if (ca) connection.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) connection.insecureSkipTlsVerify = true;
  const user = config.users?.find((u) => u.name === ctx.user)?.user ?? {};
  return withUser(connection, ctx.user ?? '', user, baseDir);
}

export async function connectionFromKubeconfigFile(file: string, context?: string): Promise<KubeConnection> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DynamicStorageError('KubeConfigInvalid', `cannot read kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
  }
  return connectionFromKubeconfig(text, path.dirname(file), context);
}

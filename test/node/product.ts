/**
 * The product installed on the real stack the way a user installs it (`kubectl apply -f crds/ && kubectl apply -k
 * daemonset/`: the webhooks included, their certificate and caBundle made by the controller), and removed again.
 * CloudNativePG's install creates the cnpg-system namespace; when the operator is not there, the test creates it (and
 * removes it again).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import { agentAudience } from '../../controller/agent-token.ts';
import { eventually } from '../harness/eventually.ts';
import { repoRoot, type RealStack } from './stack.ts';

export const systemNamespace = 'cnpg-system';
export const agentSelector = 'app.kubernetes.io/name=cnpg-dynamic-storage-agent';
export const controllerSelector = 'app.kubernetes.io/name=cnpg-dynamic-storage-controller';
export const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' } as const;

export interface InstalledProduct {
  /** Removes everything the install created (and the namespace, when the install created it). */
  remove(): Promise<void>;
}

/**
 * The product's images as the sources are now, in the node's containerd: a stack brought up before a change would
 * otherwise run the images of the sources it started with (built again only when an input changed; same tags).
 */
async function importProductImages(stack: RealStack): Promise<void> {
  await promisify(execFile)(path.join(repoRoot, 'hack/images/import.sh'), ['--address', stack.settings.CONTAINERD_SOCK, 'agent', 'controller'],
    { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 });
}

export async function installProduct(stack: RealStack): Promise<InstalledProduct> {
  await importProductImages(stack);
  await stack.kubectl(['apply', '-f', path.join(repoRoot, 'crds')]);
  const createdNamespace = await stack.kubectl(['create', 'namespace', systemNamespace]).then(() => true, () => false);
  await stack.kubectl(['apply', '-k', path.join(repoRoot, 'daemonset')]);
  return {
    async remove() {
      await stack.kubectl(['delete', '-k', path.join(repoRoot, 'daemonset'), '--ignore-not-found', '--wait=true', '--timeout=120s']);
      await stack.kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', '-l', 'app.kubernetes.io/part-of=cnpg-dynamic-storage', '--ignore-not-found']);
      await stack.kubectl(['delete', 'mutatingwebhookconfiguration', 'cnpg-dynamic-storage', '--ignore-not-found']);
      // The Secrets the controller made (the webhooks', the agents', the plugin's) outlive `delete -k`; so do the webhook
      // Service and Secret an install before the controller made its own certificate left behind.
      await stack.kubectl(['delete', '-n', systemNamespace, 'service/cnpg-dynamic-storage-webhook', 'secret/cnpg-dynamic-storage-webhook-tls',
        'secret/cnpg-dynamic-storage-webhook-server', 'secret/cnpg-dynamic-storage-agent-tls', 'secret/cnpg-dynamic-storage-plugin-server', 'secret/cnpg-dynamic-storage-plugin-client', '--ignore-not-found']);
      if (createdNamespace) await stack.kubectl(['delete', 'namespace', systemNamespace, '--ignore-not-found', '--wait=true', '--timeout=120s']);
      await stack.kubectl(['delete', '-f', path.join(repoRoot, 'crds'), '--ignore-not-found', '--wait=true', '--timeout=60s']);
    },
  };
}

/** The pods of a selector in the product's namespace once `count` are Ready; throws (with their states) until then. */
export async function podsReady(stack: RealStack, selector: string, count: number): Promise<k8s.V1Pod[]> {
  const pods = (await stack.core.listNamespacedPod({ namespace: systemNamespace, labelSelector: selector })).items;
  const ready = pods.filter((p) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
  if (ready.length < count) {
    const states = pods.map((p) => `${p.metadata?.name ?? ''}: ${p.status?.phase ?? ''} ${JSON.stringify(p.status?.containerStatuses?.map((s) => s.state) ?? [])}`);
    throw new Error(`${ready.length}/${count} pods ${selector} Ready\n${states.join('\n')}`);
  }
  return ready;
}

/** Waits until the agent and both controller replicas are Ready. */
export async function waitForProduct(stack: RealStack): Promise<void> {
  await eventually(() => podsReady(stack, agentSelector, 1), { timeoutMs: 180_000, intervalMs: 1000 });
  await eventually(() => podsReady(stack, controllerSelector, 2), { timeoutMs: 180_000, intervalMs: 1000 });
}

/** A token of a ServiceAccount for the agents' audience (what the controller sends them). */
export async function agentToken(stack: RealStack, namespace: string, serviceAccount: string): Promise<string> {
  const response = await stack.core.createNamespacedServiceAccountToken({
    name: serviceAccount, namespace, body: { spec: { audiences: [agentAudience], expirationSeconds: 3600 } },
  });
  const token = response.status?.token;
  if (!token) throw new Error(`no token for ${namespace}/${serviceAccount}`);
  return token;
}

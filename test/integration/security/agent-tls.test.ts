/**
 * Traffic to the agents is encrypted without a manual step: the controller, as its ServiceAccount with the shipped RBAC,
 * keeps a CA and a serving certificate in a Secret of its namespace; an agent serves HTTPS with it; a client checking
 * the CA and the name in the certificate reads it, and refuses an agent with any other certificate.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { RunningAgent } from '../../../agent/agent.ts';
import { startAgentOnKubeConfig } from '../../harness/agent-kube.ts';
import { agentAudience } from '../../../controller/agent-token.ts';
import { ensureAgentTls, newAgentTlsData } from '../../../controller/agent-tls.ts';
import { AgentClient } from '../../../shared/agent-client.ts';
import { silentLogger } from '../../harness/log.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { repoRoot } from '../../stack/index.ts';

const namespace = 'cnpg-system';
const secret = { namespace, name: 'cnpg-dynamic-storage-agent-tls', serverName: 'cnpg-dynamic-storage-agent.cnpg-system.svc' };

async function createAll(kc: k8s.KubeConfig, file: string): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const doc of parseAllDocuments(await readFile(path.join(repoRoot, file), 'utf8'))) {
    const obj = doc.toJS() as k8s.KubernetesObject | null;
    if (obj) await client.create(obj);
  }
}

describe('agent TLS by default', function () {
  let plane: ControlPlane;
  let controllerKubeConfig: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let dir: string;
  const agents: RunningAgent[] = [];
  const clients: AgentClient[] = [];

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    for (const file of ['daemonset/serviceaccount.yaml', 'daemonset/rbac-agent.yaml', 'daemonset/rbac-callers.yaml', 'daemonset/rbac-controller.yaml']) {
      await createAll(plane.kubeConfig, file);
    }
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'cnpg-dynamic-storage-controller' } } }).catch(() => undefined);
    controllerKubeConfig = await plane.kubeConfigFor(namespace, 'cnpg-dynamic-storage-controller');
    dir = await mkdtemp(path.join(os.tmpdir(), 'agent-tls-'));
  });

  after(async function () {
    this.timeout(60_000);
    for (const client of clients) await client.close();
    for (const agent of agents) await agent.stop();
    await rm(dir, { recursive: true, force: true });
    await plane.stop();
  });

  /** An agent serving HTTPS with the given Secret data, as the DaemonSet mounts it. */
  async function agentWith(data: Record<string, string>, name: string): Promise<RunningAgent> {
    const certFile = path.join(dir, `${name}.crt`);
    const keyFile = path.join(dir, `${name}.key`);
    await writeFile(certFile, Buffer.from(data['tls.crt'] ?? '', 'base64'));
    await writeFile(keyFile, Buffer.from(data['tls.key'] ?? '', 'base64'));
    const agent = await startAgentOnKubeConfig({
      nodeName: name, kubeletRoot: '/nonexistent', probeIntervalMs: 1000, listenHost: '127.0.0.1', listenPort: 0, tls: { certFile, keyFile, reloadMs: 100 },
      heartbeatMs: 1000, authCacheTtlMs: 10_000, tokenAudiences: [agentAudience], statfs: 'node', processMetrics: false, logLevel: 'error',
    }, {
      kubeConfig: await plane.kubeConfigFor(namespace, 'cnpg-dynamic-storage-agent'), logger: silentLogger,
      discovery: () => ({ start: () => Promise.resolve(), stop: () => Promise.resolve(), status: () => ({ synced: true }) }),
    });
    agents.push(agent);
    return agent;
  }

  function client(url: string, caPem: string): AgentClient {
    const made = new AgentClient({
      baseUrl: url, token: () => plane.tokenFor(namespace, 'cnpg-dynamic-storage-controller', 600, [agentAudience]),
      ca: caPem, tlsServerName: secret.serverName, retries: 0, requestTimeoutMs: 5_000,
    });
    clients.push(made);
    return made;
  }

  it('creates the CA and certificate once, under the shipped RBAC, and keeps them', async () => {
    const trust = await ensureAgentTls(controllerKubeConfig, secret, new Date(), silentLogger);
    const stored = await core.readNamespacedSecret({ name: secret.name, namespace });
    assert.equal(stored.type, 'kubernetes.io/tls');
    assert.equal(Buffer.from(stored.data?.['ca.crt'] ?? '', 'base64').toString(), trust.caPem);
    const again = await ensureAgentTls(controllerKubeConfig, secret, new Date(), silentLogger);
    assert.equal(again.caPem, trust.caPem);
    assert.equal((await core.readNamespacedSecret({ name: secret.name, namespace })).metadata?.resourceVersion, stored.metadata?.resourceVersion, 'not rewritten');
  });

  it('lets the controller read an agent over HTTPS, checked against its CA and name, and refuses an agent with another certificate', async () => {
    const trust = await ensureAgentTls(controllerKubeConfig, secret, new Date(), silentLogger);
    const stored = await core.readNamespacedSecret({ name: secret.name, namespace });
    const agent = await agentWith(stored.data ?? {}, 'node-a');
    assert.match(agent.url, /^https:\/\//);
    assert.equal((await client(agent.url, trust.caPem).snapshot()).node, 'node-a');

    const impostor = await agentWith(newAgentTlsData(secret.serverName, new Date()), 'node-b');
    await assert.rejects(client(impostor.url, trust.caPem).snapshot(), (err: unknown) => {
      assert.match(`${(err as Error).message} ${String((err as Error).cause)}`, /certificate|self[- ]signed|unable to verify/i);
      return true;
    });
  });

  it('serves a replaced pair without a restart, as kubelet updates the mounted Secret', async () => {
    const first = await ensureAgentTls(controllerKubeConfig, secret, new Date(), silentLogger);
    const agent = await agentWith((await core.readNamespacedSecret({ name: secret.name, namespace })).data ?? {}, 'node-c');
    assert.equal((await client(agent.url, first.caPem).snapshot()).node, 'node-c');
    const renewed = newAgentTlsData(secret.serverName, new Date());
    await writeFile(path.join(dir, 'node-c.key'), Buffer.from(renewed['tls.key'] ?? '', 'base64'));
    await writeFile(path.join(dir, 'node-c.crt'), Buffer.from(renewed['tls.crt'] ?? '', 'base64'));
    const renewedCa = Buffer.from(renewed['ca.crt'] ?? '', 'base64').toString('utf8');
    await eventually(async () => { assert.equal((await client(agent.url, renewedCa).snapshot()).node, 'node-c'); }, { timeoutMs: 5_000 });
  });

  it('replaces a Secret that does not hold a usable pair', async () => {
    const stored = await core.readNamespacedSecret({ name: secret.name, namespace });
    stored.data = { ...stored.data, 'tls.crt': Buffer.from('garbage').toString('base64') };
    await core.replaceNamespacedSecret({ name: secret.name, namespace, body: stored });
    const trust = await ensureAgentTls(controllerKubeConfig, secret, new Date(), silentLogger);
    const replaced = await core.readNamespacedSecret({ name: secret.name, namespace });
    assert.equal(Buffer.from(replaced.data?.['ca.crt'] ?? '', 'base64').toString(), trust.caPem);
    assert.match(Buffer.from(replaced.data?.['tls.crt'] ?? '', 'base64').toString(), /BEGIN CERTIFICATE/);
  });
});

/**
 * One real agent (TokenReview and SubjectAccessReview against a real API server) under hostile clients: thousands of
 * idle connections, a hundred stream readers that never read, a token guesser. It must keep serving the controller,
 * accept only tokens for its own audience, and cost the API server nothing for the guesser beyond a few reviews.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { RunningAgent } from '../../../agent/agent.ts';
import { startAgentOnKubeConfig } from '../../harness/agent-kube.ts';
import { AgentClient } from '../../../shared/agent-client.ts';
import { silentLogger } from '../../harness/log.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { repoRoot } from '../../stack/index.ts';

const namespace = 'cnpg-system';
/** The audience of the tokens the controller requests for agents (controller/agent-token.ts). */
const agentAudience = 'cnpg-dynamic-storage-agent';

async function createAll(kc: k8s.KubeConfig, file: string): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const doc of parseAllDocuments(await readFile(path.join(repoRoot, file), 'utf8'))) {
    const obj = doc.toJS() as k8s.KubernetesObject | null;
    if (obj) await client.create(obj);
  }
}

/** Opens a TCP connection from `localAddress`; resolves once connected (or refused / reset). */
function connect(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    socket.on('error', () => undefined);
    socket.once('connect', () => { resolve(socket); });
    socket.once('close', () => { resolve(socket); });
  });
}

/** Sends a stream request and never reads past the status line: a reader that lets the agent's buffer fill. */
function slowReader(port: number, token: string, localAddress: string): Promise<{ socket: net.Socket; status: number }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => {
      socket.write(`GET /v1/volumes/watch HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    });
    socket.on('error', () => undefined);
    socket.once('close', () => { resolve({ socket, status: 0 }); });
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      resolve({ socket, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 0) });
    });
  });
}

describe('agent endpoints under hostile clients', function () {
  let plane: ControlPlane;
  let agent: RunningAgent;
  let controllerToken: string;
  let readerToken: string;
  const sockets: net.Socket[] = [];

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    for (const file of ['daemonset/serviceaccount.yaml', 'daemonset/rbac-agent.yaml', 'daemonset/rbac-callers.yaml']) await createAll(plane.kubeConfig, file);
    for (const name of ['cnpg-dynamic-storage-controller', 'reader']) await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    await plane.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api).createClusterRoleBinding({ body: {
      metadata: { name: 'reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cnpg-dynamic-storage-agent-status-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
    } });
    controllerToken = await plane.tokenFor(namespace, 'cnpg-dynamic-storage-controller', 600, [agentAudience]);
    readerToken = await plane.tokenFor(namespace, 'reader', 600, [agentAudience]);
    const agentKubeConfig = await plane.kubeConfigFor(namespace, 'cnpg-dynamic-storage-agent');
    agent = await startAgentOnKubeConfig({
      nodeName: 'node-a', kubeletRoot: '/nonexistent', probeIntervalMs: 1000, listenHost: '127.0.0.1', listenPort: 0,
      heartbeatMs: 1000, authCacheTtlMs: 10_000, tokenAudiences: [agentAudience], statfs: 'node', processMetrics: false, logLevel: 'error',
    }, {
      kubeConfig: agentKubeConfig, logger: silentLogger,
      discovery: () => ({ start: () => Promise.resolve(), stop: () => Promise.resolve(), status: () => ({ synced: true }) }),
    });
  });

  after(async function () {
    this.timeout(60_000);
    for (const socket of sockets.splice(0)) socket.destroy();
    await agent.stop();
    await plane.stop();
  });

  async function controllerSnapshot(): Promise<number> {
    const client = new AgentClient({ baseUrl: agent.url, token: () => controllerToken, retries: 0, requestTimeoutMs: 3_000 });
    const started = Date.now();
    try {
      const list = await client.snapshot();
      assert.equal(list.node, 'node-a');
      return Date.now() - started;
    } finally {
      await client.close();
    }
  }

  it('accepts only tokens for its own audience', async function () {
    await controllerSnapshot();
    const apiToken = await plane.tokenFor(namespace, 'cnpg-dynamic-storage-controller');
    const response = await fetch(`${agent.url}/v1/volumes`, { headers: { authorization: `Bearer ${apiToken}` } });
    assert.equal(response.status, 401, 'an ordinary ServiceAccount token (the API server\'s audience) is refused');
  });

  it('keeps serving the controller through 5,000 idle connections from one address, and drops them', async function () {
    this.timeout(120_000);
    for (let i = 0; i < 5_000; i += 1) sockets.push(await connect(agent.port, '127.0.0.2'));
    const tookMs = await controllerSnapshot();
    assert.ok(tookMs < 2_000, `the controller was answered in ${tookMs} ms`);
    await eventually(() => {
      const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
      assert.ok(open <= 32, `${open} idle connections still open`);
    }, { timeoutMs: 30_000, intervalMs: 500 });
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  it('caps stream subscribers per caller, and the controller still gets its stream', async function () {
    this.timeout(60_000);
    const readers = [];
    for (let i = 0; i < 100; i += 1) {
      // One identity (a shared token) from many pods: each reader from an address of its own.
      const reader = await slowReader(agent.port, readerToken, `127.0.4.${i + 1}`);
      sockets.push(reader.socket);
      readers.push(reader.status);
    }
    const accepted = readers.filter((s) => s === 200).length;
    assert.ok(accepted <= 4, `${accepted} slow streams accepted for one caller`);
    assert.equal(readers.filter((s) => s === 429).length, 100 - accepted);
    const client = new AgentClient({ baseUrl: agent.url, token: () => controllerToken, retries: 0 });
    try {
      const abort = new AbortController();
      for await (const event of client.watch({ signal: abort.signal })) {
        assert.equal(event.type, 'SNAPSHOT');
        abort.abort();
        break;
      }
    } finally {
      await client.close();
    }
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  it('answers a token guesser 429 after a few failures, without asking the API server each time', async function () {
    this.timeout(60_000);
    const statuses: number[] = [];
    for (let i = 0; i < 60; i += 1) {
      const socket = await new Promise<net.Socket>((resolve) => { const s = net.connect({ host: '127.0.0.1', port: agent.port, localAddress: '127.0.0.3' }, () => { resolve(s); }); });
      const status = await new Promise<number>((resolve) => {
        socket.once('data', (chunk: Buffer) => { resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 0)); });
        socket.write(`GET /v1/volumes HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer guess-${i}\r\nConnection: close\r\n\r\n`);
      });
      socket.destroy();
      statuses.push(status);
    }
    assert.ok(statuses.slice(0, 5).every((s) => s === 401), statuses.join(','));
    assert.ok(statuses.filter((s) => s === 429).length >= 30, `rate-limited: ${statuses.join(',')}`);
    await controllerSnapshot();
  });
});

/**
 * The node agent against a real control plane, with kubelet's directory layout and a real tmpfs per volume:
 * discovery of its node's CNPG volumes only, readings equal to df, exact metrics exposition, 401/403/200 with real
 * ServiceAccount tokens and the shipped RBAC, change-stream latency, pods and mounts coming and going, an API server
 * restart, and a clean SIGTERM shutdown of the real entry point.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { startAgent, type RunningAgent } from '../../../agent/agent.ts';
import { configDefaults, type AgentConfig } from '../../../agent/config.ts';
import { kubeClientFor } from '../../harness/agent-kube.ts';
import type { KubeClient } from '../../../agent/kube/client.ts';
import { AgentClient, AgentStatusError } from '../../../shared/agent-client.ts';
import { createLogger } from '../../../shared/log.ts';
import { silentLogger } from '../../harness/log.ts';
import type { VolumeEvent, VolumeReading } from '../../../shared/readings.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { freePort } from '../../harness/ports.ts';
import {
  applyManifests, createInstance, df, ensureNamespace, ensureServiceAccount, KubeletLayout, repoRoot, sleep, waitFor,
  type CreatedInstance,
} from './fixtures.ts';

const system = 'cnpg-system';
const ns = 'db';
const intervalMs = 1000;
const logger = process.env.AGENT_TEST_LOG ? createLogger({}, { level: 'debug' }) : silentLogger;

interface Received { at: number; event: VolumeEvent }

/** Reads a change stream in the background, recording each event with its arrival time. */
class Collector {
  readonly events: Received[] = [];
  private readonly abort = new AbortController();
  readonly done: Promise<unknown>;

  constructor(client: AgentClient) {
    this.done = (async () => {
      for await (const event of client.watch({ signal: this.abort.signal })) this.events.push({ at: performance.now(), event });
    })().catch((err: unknown) => err);
  }

  async waitFor(what: string, match: (event: VolumeEvent) => boolean, from = 0, timeoutMs = 10_000): Promise<Received> {
    return waitFor(what, () => this.events.slice(from).find((r) => match(r.event)), timeoutMs);
  }

  stop(): void {
    this.abort.abort();
  }
}

describe('agent on a real control plane', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  let layout: KubeletLayout;
  const cleanups: (() => Promise<void>)[] = [];
  let agent: RunningAgent | undefined;
  let agentKube: KubeClient | undefined;
  let tokens: Record<'controller' | 'prometheus' | 'nosy', string>;
  const instances: CreatedInstance[] = [];
  const clients: AgentClient[] = [];
  const paths = new Map<string, string>(); // pvc -> mount

  // One client per token, as the controller keeps one per agent: a new client per poll would leave an idle keep-alive
  // connection behind each time, and the agent serves at most 32 connections per address.
  const byToken = new Map<string, AgentClient>();
  const client = (token: string): AgentClient => {
    assert.ok(agent);
    const known = byToken.get(token);
    if (known) return known;
    const c = new AgentClient({ baseUrl: agent.url, token: () => token });
    clients.push(c);
    byToken.set(token, c);
    return c;
  };

  async function addInstance(serial: number, node: string, options: { blockData?: boolean } = {}): Promise<CreatedInstance> {
    const instance = await createInstance(core, { namespace: ns, cluster: 'pg', serial, node, wal: true, tablespaces: ['my_space'], ...options });
    for (const v of instance.volumes) {
      if (!v.block) paths.set(v.pvc, await layout.mount(instance.podUid, v.pv, v.role === 'data' ? 16 : 8));
    }
    instances.push(instance);
    return instance;
  }

  before(async () => {
    cp = await startControlPlane();
    cleanups.push(() => cp.stop());
    core = cp.kubeConfig.makeApiClient(k8s.CoreV1Api);
    layout = await KubeletLayout.create();
    cleanups.push(() => layout.cleanup());
    await ensureNamespace(core, ns);
    for (const [namespace, name] of [[system, 'cnpg-dynamic-storage-agent'], [system, 'cnpg-dynamic-storage-controller'], ['monitoring', 'prometheus-k8s'], [ns, 'nosy']] as const) {
      await ensureServiceAccount(core, namespace, name);
    }
    await applyManifests(cp.kubeConfig, ['rbac-agent.yaml', 'rbac-callers.yaml', 'monitoring/rbac.yaml']);
    tokens = {
      controller: await cp.tokenFor(system, 'cnpg-dynamic-storage-controller'),
      prometheus: await cp.tokenFor('monitoring', 'prometheus-k8s'),
      nosy: await cp.tokenFor(ns, 'nosy'),
    };
    await waitFor('the default ServiceAccount', () => core.readNamespacedServiceAccount({ name: 'default', namespace: ns }).then(() => true, () => undefined), 30_000);
    // A 3-instance cluster with WAL and a tablespace: two instances on node-a (one with a raw block data volume), one on node-b.
    await addInstance(1, 'node-a');
    await addInstance(2, 'node-b');
    await addInstance(3, 'node-a', { blockData: true });
    const config: AgentConfig = {
      ...configDefaults, nodeName: 'node-a', kubeletRoot: layout.root, probeIntervalMs: intervalMs, listenHost: '127.0.0.1', listenPort: 0,
      heartbeatMs: 2000, tokenAudiences: [], processMetrics: false,
    };
    // The agent runs with its own ServiceAccount and only the shipped RBAC.
    agentKube = kubeClientFor({ server: cp.server, ca: cp.caPem, token: await cp.tokenFor(system, 'cnpg-dynamic-storage-agent') });
    agent = await startAgent(config, { kube: agentKube, logger });
  });

  after(async () => {
    await agent?.stop();
    await agentKube?.close();
    await Promise.all(clients.map((c) => c.close()));
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('finds every CNPG volume on its node and none of another node\'s', async () => {
    const c = client(tokens.controller);
    const list = await waitFor('6 volumes', async () => {
      const l = await c.snapshot();
      return l.volumes.length === 6 && l.volumes.every((v) => v.status !== 'error') ? l : undefined;
    });
    const pg1 = instances[0]!;
    const pg3 = instances[2]!;
    assert.deepEqual(list.volumes.map((v) => [v.key, v.instance, v.role, v.tablespace ?? '', v.status]), [
      ['db/pg-1', 'pg-1', 'data', '', 'ok'],
      ['db/pg-1-tbs-my-space', 'pg-1', 'tablespace', 'my_space', 'ok'],
      ['db/pg-1-wal', 'pg-1', 'wal', '', 'ok'],
      ['db/pg-3', 'pg-3', 'data', '', 'unsupported'],
      ['db/pg-3-tbs-my-space', 'pg-3', 'tablespace', 'my_space', 'ok'],
      ['db/pg-3-wal', 'pg-3', 'wal', '', 'ok'],
    ]);
    const data = list.volumes[0]!;
    assert.equal(data.path, layout.csiPath(pg1.podUid, 'pvc-db-pg-1'));
    assert.deepEqual([data.namespace, data.cluster, data.pvc, data.pv, data.podName, data.podUid, data.node], ['db', 'pg', 'pg-1', 'pvc-db-pg-1', 'pg-1', pg1.podUid, 'node-a']);
    assert.deepEqual(list.volumes[3]!.unsupported, { reason: 'BlockMode', message: 'PV pvc-db-pg-3 is a raw block device: it has no filesystem to measure' });
    assert.equal(list.volumes[3]!.podUid, pg3.podUid);
    assert.ok(!list.volumes.some((v) => v.instance === 'pg-2'));
  });

  it('reads what df reads', async () => {
    await writeFile(path.join(paths.get('pg-1-wal')!, '000000010000000000000001'), Buffer.alloc(3 * 1024 * 1024 + 5));
    const wal = await waitFor('the WAL write', async () => {
      const v = (await client(tokens.controller).snapshot()).volumes.find((r) => r.key === 'db/pg-1-wal');
      return v?.usage && v.usage.usedBytes > 0 ? v : undefined;
    });
    for (const pvc of ['pg-1', 'pg-1-wal', 'pg-1-tbs-my-space']) {
      const reading = pvc === 'pg-1-wal' ? wal : (await client(tokens.controller).snapshot()).volumes.find((r) => r.pvc === pvc);
      const d = await df(paths.get(pvc)!);
      assert.deepEqual(reading?.usage && {
        size: reading.usage.totalBytes, used: reading.usage.usedBytes, avail: reading.usage.availableBytes, pcent: reading.usage.percentUsed,
        itotal: reading.usage.inodesTotal, iused: reading.usage.inodesUsed, iavail: reading.usage.inodesFree, ipcent: reading.usage.inodesPercentUsed,
      }, d, pvc);
    }
    assert.equal(wal.usage?.usedBytes, 3 * 1024 * 1024 + 4096, 'tmpfs counts whole pages');
  });

  it('exposes exactly the expected volume metrics to Prometheus', async () => {
    await writeFile(path.join(paths.get('pg-1')!, 'base'), Buffer.alloc(1024 * 1024));
    await waitFor('the data write', async () => (await client(tokens.controller).snapshot()).volumes.find((r) => r.key === 'db/pg-1')?.usage?.usedBytes === 1024 * 1024 || undefined);
    const text = await client(tokens.prometheus).metrics();
    const families = text.split('\n\n').filter((f) => f.includes('# TYPE cnpg_disk_'));
    const labels = (pvc: string, type: string, tbs = ''): string =>
      `namespace="db",cluster="pg",instance="${pvc.slice(0, 4)}",volume_type="${type}",tablespace="${tbs}",persistentvolumeclaim="${pvc}",node="node-a"`;
    const rows = [labels('pg-1', 'data'), labels('pg-1-tbs-my-space', 'tablespace', 'my_space'), labels('pg-1-wal', 'wal'),
      labels('pg-3-tbs-my-space', 'tablespace', 'my_space'), labels('pg-3-wal', 'wal')];
    const family = (name: string, help: string, values: number[]): string =>
      `# HELP ${name} ${help}\n# TYPE ${name} gauge\n` + rows.map((r, i) => `${name}{${r}} ${values[i]}`).join('\n') + '\n';
    const MiB = 1024 * 1024;
    assert.deepEqual(families, [
      family('cnpg_disk_total_bytes', 'Size of the volume\'s filesystem in bytes (f_blocks x f_frsize).', [16 * MiB, 8 * MiB, 8 * MiB, 8 * MiB, 8 * MiB]),
      family('cnpg_disk_used_bytes', 'Bytes used on the volume\'s filesystem (total - free).', [MiB, 0, 3 * MiB + 4096, 0, 0]),
      family('cnpg_disk_available_bytes', 'Bytes available to unprivileged writers (f_bavail x f_frsize).', [15 * MiB, 8 * MiB, 5 * MiB - 4096, 8 * MiB, 8 * MiB]),
      family('cnpg_disk_percent_used', 'Percent of the filesystem used, as df computes it: ceil(used x 100 / (used + available)).', [7, 0, 38, 0, 0]),
      family('cnpg_disk_inodes_total', 'Inodes of the volume\'s filesystem.', [1000, 1000, 1000, 1000, 1000]),
      family('cnpg_disk_inodes_used', 'Inodes in use on the volume\'s filesystem.', [2, 1, 2, 1, 1]),
      family('cnpg_disk_inodes_free', 'Free inodes on the volume\'s filesystem.', [998, 999, 998, 999, 999]),
    ].map((f) => f.trimEnd()));
    assert.match(text, /^cnpg_dynamic_storage_agent_volumes\{status="unsupported"\} 1$/m);
  });

  it('answers 401 without or with a bad token, 403 when RBAC does not allow it, 200 when it does', async () => {
    assert.ok(agent);
    const bare = await fetch(`${agent.url}/v1/volumes`);
    assert.equal(bare.status, 401);
    const isStatus = (code: number) => (err: unknown): boolean => err instanceof AgentStatusError && err.statusCode === code;
    await assert.rejects(client('not-a-token').snapshot(), isStatus(401));
    await assert.rejects(client(tokens.nosy).snapshot(), isStatus(403));
    await assert.rejects(client(tokens.nosy).metrics(), isStatus(403));
    await assert.rejects(client(tokens.prometheus).snapshot(), isStatus(403));
    await assert.rejects(client(tokens.prometheus).watch().next(), isStatus(403));
    assert.equal((await client(tokens.controller).snapshot()).volumes.length, 6);
    assert.match(await client(tokens.controller).metrics(), /cnpg_disk_total_bytes/);
    const first = await client(tokens.controller).watch().next();
    assert.equal(first.value?.type, 'SNAPSHOT');
    // A token of a deleted ServiceAccount stops working once the cached answer expires.
    await core.deleteNamespacedServiceAccount({ name: 'nosy', namespace: ns });
    await sleep(configDefaults.authCacheTtlMs);
    await assert.rejects(client(tokens.nosy).snapshot(), isStatus(401));
  });

  it('streams a write within one probe interval of it', async () => {
    const collector = new Collector(client(tokens.controller));
    try {
      await collector.waitFor('the snapshot', (e) => e.type === 'SNAPSHOT');
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const from = collector.events.length;
        await sleep(Math.random() * intervalMs);
        await appendFile(path.join(paths.get('pg-1')!, 'grow'), Buffer.alloc(64 * 1024));
        const wrote = performance.now();
        const seen = await collector.waitFor('the write', (e) => e.type === 'UPDATED' && e.volume.key === 'db/pg-1', from, 3 * intervalMs);
        latencies.push(seen.at - wrote);
      }
      process.stdout.write(`      change-stream latency after a write (ms): ${latencies.map((l) => l.toFixed(1)).join(', ')}\n`);
      for (const latency of latencies) assert.ok(latency <= intervalMs + 50, `latency ${latency} ms exceeds one probe interval`);
    } finally {
      collector.stop();
    }
  });

  it('follows pods coming and going and mounts disappearing', async () => {
    const collector = new Collector(client(tokens.controller));
    try {
      await collector.waitFor('the snapshot', (e) => e.type === 'SNAPSHOT');
      await addInstance(4, 'node-a');
      await collector.waitFor('pg-4 data', (e) => e.type === 'UPDATED' && e.volume.key === 'db/pg-4' && e.volume.status === 'ok');
      await core.deleteNamespacedPod({ name: 'pg-4', namespace: ns, gracePeriodSeconds: 0 });
      for (const pvc of ['pg-4', 'pg-4-wal', 'pg-4-tbs-my-space']) {
        await collector.waitFor(`${pvc} removed`, (e) => e.type === 'REMOVED' && e.key === `db/${pvc}`);
      }
      // pg-3's WAL volume is unmounted under the agent, then its directory goes: NotMounted, then ENOENT, never kubelet's disk.
      const wal = paths.get('pg-3-wal')!;
      await layout.unmount(wal);
      const notMounted = await collector.waitFor('NotMounted', (e) => e.type === 'UPDATED' && e.volume.key === 'db/pg-3-wal' && e.volume.status === 'error');
      assert.equal((notMounted.event as { volume: VolumeReading }).volume.error?.code, 'NotMounted');
      await rm(path.dirname(wal), { recursive: true });
      const gone = await collector.waitFor('ENOENT', (e) => e.type === 'UPDATED' && e.volume.key === 'db/pg-3-wal' && e.volume.error?.code === 'ENOENT');
      assert.ok(gone);
    } finally {
      collector.stop();
    }
  });

  it('keeps probing and streaming through an API server restart, then sees new pods again', async () => {
    const collector = new Collector(client(tokens.controller));
    try {
      await collector.waitFor('the snapshot', (e) => e.type === 'SNAPSHOT');
      const restart = cp.restartApiServer(3000);
      await sleep(500);
      const from = collector.events.length;
      await appendFile(path.join(paths.get('pg-1')!, 'during-outage'), Buffer.alloc(64 * 1024));
      await collector.waitFor('a write during the outage', (e) => e.type === 'UPDATED' && e.volume.key === 'db/pg-1', from, 3 * intervalMs);
      await restart;
      await addInstance(5, 'node-a');
      await collector.waitFor('pg-5 after the restart', (e) => e.type === 'UPDATED' && e.volume.key === 'db/pg-5' && e.volume.status === 'ok', 0, 60_000);
      assert.equal((await client(tokens.controller).snapshot()).volumes.filter((v) => v.instance === 'pg-5').length, 3);
    } finally {
      collector.stop();
    }
  });

  it('runs as a process from main.ts and shuts down cleanly on SIGTERM', async () => {
    const port = await freePort();
    const kubeconfig = path.join(cp.dir, 'agent.kubeconfig');
    writeFileSync(kubeconfig, (await cp.kubeConfigFor(system, 'cnpg-dynamic-storage-agent')).exportConfig());
    const child = spawn(process.execPath, [path.join(repoRoot, 'agent/main.ts')], {
      env: { ...process.env, NODE_NAME: 'node-a', KUBELET_ROOT: layout.root, LISTEN_HOST: '127.0.0.1', LISTEN_PORT: String(port), KUBECONFIG: kubeconfig, STATFS: 'node' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code); }));
    try {
      await waitFor('the agent process to be ready', () => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok || undefined, () => undefined), 30_000);
      // As shipped, the agent accepts only tokens for its own audience (what the controller requests).
      const audienceToken = await cp.tokenFor(system, 'cnpg-dynamic-storage-controller', 600, ['cnpg-dynamic-storage-agent']);
      const c = new AgentClient({ baseUrl: `http://127.0.0.1:${port}`, token: () => audienceToken });
      clients.push(c);
      const collector = new Collector(c);
      await collector.waitFor('the snapshot', (e) => e.type === 'SNAPSHOT');
      const signalled = performance.now();
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.ok(performance.now() - signalled < 5000);
      assert.equal(await collector.done, undefined, 'the stream ended cleanly');
      assert.match(stderr, /"msg":"shutting down","signal":"SIGTERM"/);
      assert.match(stderr, /"msg":"agent stopped"/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

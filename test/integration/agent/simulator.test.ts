/**
 * The node agent on the AKS stand-in (test/sim): two simulated nodes, a 3-instance CloudNativePG Cluster with WAL and a
 * tablespace provisioned and mounted by the simulated CSI driver and kubelets. One agent for the first node, in-process,
 * with its own ServiceAccount and the shipped RBAC: it reports exactly the volumes mounted on its node (and none of the
 * other's), its readings equal statfs of those mounts, and a workload write shows in its change stream within one probe
 * interval.
 */
import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { startAgent, type RunningAgent } from '../../../agent/agent.ts';
import { configDefaults, type AgentConfig } from '../../../agent/config.ts';
import { kubeClientFor } from '../../harness/agent-kube.ts';
import type { KubeClient } from '../../../agent/kube/client.ts';
import { AgentClient } from '../../../shared/agent-client.ts';
import { createLogger } from '../../../shared/log.ts';
import { silentLogger } from '../../harness/log.ts';
import type { VolumeEvent, VolumeReading } from '../../../shared/readings.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { startSimulation, type MountedVolume, type Simulation } from '../../sim/index.ts';
import { applyManifests, ensureNamespace, ensureServiceAccount, waitFor } from './fixtures.ts';

const system = 'cnpg-system';
const intervalMs = 1000;
const logger = process.env.AGENT_TEST_LOG ? createLogger({}, { level: 'debug' }) : silentLogger;

function roleOf(volumeName: string): string {
  if (volumeName === 'pgdata') return 'data';
  if (volumeName === 'pg-wal') return 'wal';
  return 'tablespace';
}

/** What the agent should report for a volume the simulator mounted. */
function expected(v: MountedVolume): (string | undefined)[] {
  return [`${v.podNamespace}/${v.pvcName}`, v.pvcName, v.pvName, v.path, roleOf(v.volumeName), v.podName, v.podUid, v.node,
    roleOf(v.volumeName) === 'tablespace' ? 'my_space' : undefined];
}

function reported(r: VolumeReading): (string | undefined)[] {
  return [r.key, r.pvc, r.pv, r.path, r.role, r.instance, r.podUid, r.node, r.tablespace];
}

/** Usage from statfs, in the agent's terms (df's arithmetic). */
function statfsOf(mount: string): Record<string, number> {
  const s = statfsSync(mount);
  return {
    totalBytes: s.blocks * s.bsize, freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize,
    inodesTotal: s.files, inodesFree: s.ffree,
  };
}

function usageOf(r: VolumeReading | undefined): Record<string, number> | undefined {
  const u = r?.usage;
  return u && { totalBytes: u.totalBytes, freeBytes: u.freeBytes, availableBytes: u.availableBytes, usedBytes: u.usedBytes, inodesTotal: u.inodesTotal, inodesFree: u.inodesFree };
}

describe('agent on the simulator', function () {
  this.timeout(180_000);
  let plane: ControlPlane | undefined;
  let sim: Simulation | undefined;
  let kube: KubeClient | undefined;
  let agent: RunningAgent | undefined;
  let client: AgentClient | undefined;
  let namespace = '';
  let onA: MountedVolume[] = [];
  let onB: MountedVolume[] = [];

  before(async () => {
    plane = await startControlPlane();
    sim = await startSimulation({ controlPlane: plane, nodes: 2 });
    namespace = await sim.createNamespace('agent');
    const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await ensureNamespace(core, system);
    await ensureServiceAccount(core, system, 'cnpg-dynamic-storage-controller');
    await applyManifests(plane.kubeConfig, ['serviceaccount.yaml', 'rbac-agent.yaml', 'rbac-callers.yaml']);

    const sc = 'managed-csi-mib';
    await sim.cnpg.createCluster(namespace, 'pg', {
      instances: 3, storage: { size: '64Mi', storageClass: sc }, walStorage: { size: '64Mi', storageClass: sc },
      tablespaces: [{ name: 'my_space', storage: { size: '64Mi', storageClass: sc } }],
    });
    await sim.cnpg.waitForReady(namespace, 'pg', 120_000);
    const [nodeA, nodeB] = sim.nodes;
    assert.ok(nodeA && nodeB);
    onA = nodeA.volumes().filter((v) => v.podNamespace === namespace);
    onB = nodeB.volumes().filter((v) => v.podNamespace === namespace);
    assert.equal(onA.length + onB.length, 9, 'three instances with data, WAL and a tablespace each');
    assert.ok(onA.length > 0 && onB.length > 0, `instances on both nodes (${onA.length} volumes on A, ${onB.length} on B)`);

    // The agent for node A, with its own ServiceAccount and only the shipped RBAC.
    kube = kubeClientFor({ server: plane.server, ca: plane.caPem, token: await plane.tokenFor(system, 'cnpg-dynamic-storage-agent') });
    const config: AgentConfig = {
      ...configDefaults, nodeName: nodeA.name, kubeletRoot: nodeA.kubeletRoot, probeIntervalMs: intervalMs, listenHost: '127.0.0.1',
      listenPort: 0, heartbeatMs: 2000, tokenAudiences: [], processMetrics: false,
    };
    agent = await startAgent(config, { kube, logger });
    const controllerToken = await plane.tokenFor(system, 'cnpg-dynamic-storage-controller');
    client = new AgentClient({ baseUrl: agent.url, token: () => controllerToken });
  });

  after(async () => {
    await client?.close();
    await agent?.stop();
    await kube?.close();
    await sim?.stop();
    await plane?.stop();
  });

  it('reports exactly the volumes mounted on its node, and none of the other node\'s', async () => {
    assert.ok(client);
    const c = client;
    const list = await waitFor(`${onA.length} volumes`, async () => {
      const l = await c.snapshot();
      return l.volumes.length === onA.length && l.volumes.every((v) => v.status === 'ok') ? l : undefined;
    }, 30_000);
    const byKey = (a: (string | undefined)[], b: (string | undefined)[]): number => (a[0] ?? '').localeCompare(b[0] ?? '');
    assert.deepEqual(list.volumes.map(reported).sort(byKey), onA.map(expected).sort(byKey));
    assert.deepEqual(list.volumes.map((v) => v.cluster), list.volumes.map(() => 'pg'));
    const theirs = new Set(onB.flatMap((v) => [`${v.podNamespace}/${v.pvcName}`, v.path]));
    assert.deepEqual(list.volumes.filter((v) => theirs.has(v.key) || theirs.has(v.path)), []);
  });

  it('reads what statfs reads on each of those mounts', async () => {
    assert.ok(client);
    const c = client;
    // Eventually equal for every volume at once (the simulated instances may still be writing their first files).
    await waitFor('readings equal to statfs', async () => {
      const { volumes } = await c.snapshot();
      const mismatched = onA.filter((v) => JSON.stringify(usageOf(volumes.find((r) => r.path === v.path))) !== JSON.stringify(statfsOf(v.path)));
      return mismatched.length === 0 || undefined;
    }, 10_000);
  });

  it('streams a workload fill within one probe interval', async () => {
    assert.ok(client && sim);
    const events: { at: number; event: VolumeEvent }[] = [];
    const abort = new AbortController();
    const c = client;
    const reading = (async () => {
      for await (const event of c.watch({ signal: abort.signal })) events.push({ at: performance.now(), event });
    })().catch(() => undefined);
    try {
      await waitFor('the snapshot', () => events.find((e) => e.event.type === 'SNAPSHOT'));
      const wal = onA.find((v) => v.volumeName === 'pg-wal');
      assert.ok(wal);
      const key = `${wal.podNamespace}/${wal.pvcName}`;
      const result = await sim.workload.fill({ namespace: wal.podNamespace, pvc: wal.pvcName }, { percent: 50 });
      const filled = performance.now();
      assert.ok(result.bytesWritten > 0);
      const after = statfsOf(wal.path);
      const seen = await waitFor('the fill in the stream', () => events.find((e) => e.event.type === 'UPDATED' && e.event.volume.key === key &&
        JSON.stringify(usageOf(e.event.volume)) === JSON.stringify(after)), 3 * intervalMs);
      const latency = Math.max(0, seen.at - filled);
      process.stdout.write(`      change-stream latency after the fill (ms): ${latency.toFixed(1)}\n`);
      assert.ok(latency <= intervalMs + 100, `latency ${latency} ms exceeds one probe interval`);
      assert.ok((seen.event.type === 'UPDATED' && seen.event.volume.usage?.percentUsed) !== undefined);
    } finally {
      abort.abort();
      await reading;
    }
  });
});

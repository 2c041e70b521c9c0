import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { MiB } from '../../../shared/quantity.ts';
import type { VolumeTarget } from '../../sim/index.ts';
import { mergePatch, waitUntil } from '../../sim/kube.ts';
import { useSimulation } from './helpers.ts';

const sc = 'managed-csi-mib';
const near = (actual: number, expected: number, tolerance: number, what: string): void => {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual.toFixed(2)} is not within ${tolerance} of ${expected}`);
};

describe('simulation: workload driver', function () {
  // one zone: pods may move between nodes with their disks
  const t = useSimulation({ nodes: 2, zones: 1 });

  async function cluster(instances = 1): Promise<void> {
    await t.sim.cnpg.createCluster(t.namespace, 'pg', {
      instances, storage: { size: '64Mi', storageClass: sc }, walStorage: { size: '48Mi', storageClass: sc },
      tablespaces: [{ name: 'analytics', storage: { size: '32Mi', storageClass: sc } }],
    });
    await t.sim.cnpg.waitForReady(t.namespace, 'pg');
  }

  it('fills data, WAL and tablespace volumes to a percentage within 1 point, and frees them again', async () => {
    await cluster();
    const targets: VolumeTarget[] = [
      { namespace: t.namespace, instance: 'pg-1', volume: 'data' },
      { namespace: t.namespace, instance: 'pg-1', volume: 'wal' },
      { namespace: t.namespace, instance: 'pg-1', volume: { tablespace: 'analytics' } },
    ];
    for (const target of targets) {
      const label = t.sim.workload.pvcOf(target);
      for (const percent of [37, 85, 99]) {
        const result = await t.sim.workload.fill(target, { percent });
        near(result.usedPercent, percent, 1, `${label} at ${percent}%`);
        near((await t.sim.workload.usage(target)).usedPercent, percent, 1, `${label} usage at ${percent}%`);
      }
      near((await t.sim.workload.fill(target, { percent: 20 })).usedPercent, 20, 1, `${label} down to 20%`);
      near((await t.sim.workload.free(target, { percent: 10 })).usedPercent, 10, 1, `${label} freed to 10%`);
      assert.ok((await t.sim.workload.free(target)).usedPercent < 1, `${label} freed entirely`);
    }
  });

  it('writes a number of bytes at a rate, and reports a full filesystem', async () => {
    await cluster();
    const wal: VolumeTarget = { namespace: t.namespace, instance: 'pg-1', volume: 'wal' };
    const started = Date.now();
    const result = await t.sim.workload.fill(wal, { bytes: 8 * MiB }, { rateBytesPerSec: 16 * MiB, chunkBytes: MiB });
    const elapsed = Date.now() - started;
    assert.equal(result.bytesWritten, 8 * MiB);
    assert.ok(elapsed >= 400, `8 MiB at 16 MiB/s took only ${elapsed} ms`);
    assert.equal(result.full, false);
    const full = await t.sim.workload.fill(wal, { bytes: 100 * MiB });
    assert.equal(full.full, true);
    assert.equal(full.availableBytes, 0);
    assert.ok(full.usedPercent > 99.9);
  });

  it('keeps filling in the background until stopped', async () => {
    await cluster();
    const data: VolumeTarget = { namespace: t.namespace, instance: 'pg-1', volume: 'data' };
    const filling = t.sim.workload.startFilling(data, { percent: 95 }, { rateBytesPerSec: 8 * MiB, chunkBytes: 256 * 1024 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stopped = await filling.stop();
    assert.ok(stopped.bytesWritten > 0 && stopped.usedPercent < 95, `wrote ${stopped.bytesWritten} bytes, ${stopped.usedPercent.toFixed(1)}%`);
  });

  it('proves with a sentinel that data survives a resize, a failover and a pod moving to another node', async () => {
    await cluster(2);
    const data: VolumeTarget = { namespace: t.namespace, instance: 'pg-1', volume: 'data' };
    const digest = await t.sim.workload.writeSentinel(data);
    assert.match(digest, /^[0-9a-f]{64}$/);
    await t.sim.workload.fill(data, { percent: 60 });

    await t.sim.clients.core.patchNamespacedPersistentVolumeClaim({ name: 'pg-1', namespace: t.namespace, body: { spec: { resources: { requests: { storage: '96Mi' } } } } }, mergePatch);
    await waitUntil('pg-1 to be 96Mi', async () => (await t.sim.clients.core.readNamespacedPersistentVolumeClaim({ name: 'pg-1', namespace: t.namespace })).status?.capacity?.storage === '96Mi');
    assert.equal((await t.sim.workload.verifySentinel(data)).ok, true);
    near((await t.sim.workload.usage(data)).usedPercent, 60 * 64 / 96, 2, 'usage after the resize');

    const node = t.sim.cnpg.instancePods(t.namespace, 'pg').find((p) => p.metadata?.name === 'pg-1')?.spec?.nodeName;
    await t.sim.nodes.find((n) => n.name === node)?.drain();
    await waitUntil('draining the primary\'s node to fail over to pg-2', async () => (await t.sim.cnpg.getCluster(t.namespace, 'pg')).status?.currentPrimary === 'pg-2');
    await waitUntil('pg-1 to run elsewhere', () => {
      const pod = t.sim.cnpg.instancePods(t.namespace, 'pg').find((p) => p.metadata?.name === 'pg-1');
      return pod?.status?.phase === 'Running' && pod.spec?.nodeName !== node;
    }, 30_000);
    assert.equal((await t.sim.workload.verifySentinel(data)).ok, true);

    // and a damaged sentinel is noticed
    await appendFile(path.join(await t.sim.workload.mountPath(data), 'cnpg-ds-sim-sentinel.bin'), 'x');
    const damaged = await t.sim.workload.verifySentinel(data);
    assert.equal(damaged.ok, false);
    assert.equal(damaged.expected, digest);
  });
});

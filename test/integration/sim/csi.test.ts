import assert from 'node:assert/strict';
import { existsSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { MiB } from '../../../shared/quantity.ts';
import { conditionTypes, resizeStatus, simulationMountPoints, type Simulation } from '../../sim/index.ts';
import { waitUntil } from '../../sim/kube.ts';
import { createPod, createPvc, readPvc, recordResizeViews, resizePvc, resizeView, useSimulation, waitForRunning } from './helpers.ts';

const fsBytes = (p: string): number => { const s = statfsSync(p); return s.blocks * s.bsize; };

let sharedSim: () => Simulation = () => { throw new Error('no simulation'); };

describe('simulation: nodes and Azure Disk CSI', function () {
  const t = useSimulation({ nodes: 2, csi: { latency: { controllerMs: 150, nodeMs: 150 } } });
  sharedSim = () => t.sim;

  it('creates AKS-like nodes and storage classes', async () => {
    const nodes = await t.sim.clients.core.listNode();
    const names = t.sim.nodes.map((n) => n.name);
    assert.deepEqual(nodes.items.map((n) => n.metadata?.name).filter((n) => names.includes(n ?? '')).sort(), [...names].sort());
    for (const node of nodes.items.filter((n) => names.includes(n.metadata?.name ?? ''))) {
      assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
      assert.match(node.metadata?.labels?.['topology.disk.csi.azure.com/zone'] ?? '', /^eastus-\d$/);
    }
    const classes = await t.sim.clients.storage.listStorageClass();
    const byName = new Map(classes.items.map((c) => [c.metadata?.name, c]));
    assert.equal(byName.get('managed-csi')?.provisioner, 'disk.csi.azure.com');
    assert.equal(byName.get('managed-csi')?.parameters?.skuname, 'StandardSSD_LRS');
    assert.equal(byName.get('managed-csi-premium')?.parameters?.skuname, 'Premium_LRS');
    assert.equal(byName.get('managed-csi-fixed-mib')?.allowVolumeExpansion, false);
  });

  it('provisions on first consumer, mounts at the kubelet path and rounds Azure sizes to whole GiB', async () => {
    const ns = t.namespace;
    await createPvc(t.sim, ns, 'gib', '1500Mi', 'managed-csi');
    await createPvc(t.sim, ns, 'mib', '64Mi');
    await sleepMs(300);
    assert.equal((await readPvc(t.sim, ns, 'mib')).status?.phase, 'Pending', 'WaitForFirstConsumer keeps the claim pending without a pod');
    const pod = await createPod(t.sim, ns, 'app', ['gib', 'mib']);
    const running = await waitForRunning(t.sim, ns, 'app');
    assert.match(running.status?.podIP ?? '', /^127\.0\.\d+\.\d+$/);
    const mib = await readPvc(t.sim, ns, 'mib');
    const gib = await readPvc(t.sim, ns, 'gib');
    assert.equal(mib.status?.capacity?.storage, '64Mi');
    assert.equal(gib.status?.capacity?.storage, '2Gi');
    assert.equal(mib.metadata?.annotations?.['volume.kubernetes.io/selected-node'], running.spec?.nodeName);
    const pvName = mib.spec?.volumeName ?? '';
    await assertProvisionedPv(pvName, mib.metadata?.uid);
    const node = t.sim.nodes.find((n) => n.name === running.spec?.nodeName);
    assert.ok(node);
    const expected = path.join(node.kubeletRoot, 'pods', pod.metadata?.uid ?? '', 'volumes', 'kubernetes.io~csi', pvName, 'mount');
    assert.equal(t.sim.volumePath(ns, 'mib'), expected);
    assert.ok(expected.includes('cnpg-ds-sim'));
    assert.ok(existsSync(path.join(path.dirname(expected), 'vol_data.json')));
    // a filesystem is a little smaller than its disk
    const size = fsBytes(expected);
    assert.ok(size <= 64 * MiB && size > 60 * MiB, `filesystem size ${size}`);
  });

  it('expands a PVC through the Kubernetes condition sequence and grows the mounted filesystem', async () => {
    const ns = t.namespace;
    await createPvc(t.sim, ns, 'data', '64Mi');
    await createPod(t.sim, ns, 'app', ['data']);
    await waitForRunning(t.sim, ns, 'app');
    const mount = t.sim.volumePath(ns, 'data') ?? '';
    const before = fsBytes(mount);
    const recorder = recordResizeViews(t.sim, ns, 'data');
    await resizePvc(t.sim, ns, 'data', '96Mi');
    const done = await waitUntil('the resize to finish', async () => {
      const pvc = await readPvc(t.sim, ns, 'data');
      return pvc.status?.capacity?.storage === '96Mi' && !pvc.status.allocatedResourceStatuses ? pvc : undefined;
    }, 20_000);
    const views = await recorder.stop();
    assert.deepEqual(views, [
      '-|-|64Mi',
      `${resizeStatus.controllerInProgress}|${conditionTypes.resizing}|64Mi`,
      `${resizeStatus.nodePending}|${conditionTypes.fileSystemResizePending}|64Mi`,
      `${resizeStatus.nodeInProgress}|${conditionTypes.fileSystemResizePending}|64Mi`,
      '-|-|96Mi',
    ]);
    assert.equal(done.status?.allocatedResources?.storage, '96Mi');
    assert.deepEqual(done.status.conditions ?? [], []);
    const pv = await t.sim.clients.core.readPersistentVolume({ name: done.spec?.volumeName ?? '' });
    assert.equal(pv.spec?.capacity?.storage, '96Mi');
    const after = fsBytes(mount);
    assert.ok(after > before + 30 * MiB, `statfs grew from ${before} to ${after}`);
  });

  it('leaves the file system resize pending until a pod mounts the volume', async () => {
    const ns = t.namespace;
    await createPvc(t.sim, ns, 'idle', '64Mi');
    await createPod(t.sim, ns, 'app', ['idle']);
    await waitForRunning(t.sim, ns, 'app');
    await t.sim.clients.core.deleteNamespacedPod({ name: 'app', namespace: ns });
    await waitUntil('the pod to be gone', async () => (await t.sim.clients.core.listNamespacedPod({ namespace: ns })).items.length === 0);
    assert.equal(t.sim.volumePath(ns, 'idle'), undefined, 'the volume is unmounted with the pod');
    await resizePvc(t.sim, ns, 'idle', '80Mi');
    const pending = await waitUntil('node expansion to be pending', async () => {
      const pvc = await readPvc(t.sim, ns, 'idle');
      return pvc.status?.allocatedResourceStatuses?.storage === resizeStatus.nodePending ? pvc : undefined;
    });
    assert.equal(resizeView(pending), `${resizeStatus.nodePending}|${conditionTypes.fileSystemResizePending}|64Mi`);
    assert.equal(pending.status?.conditions?.[0]?.message, 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.');
    await createPod(t.sim, ns, 'app2', ['idle']);
    await waitForRunning(t.sim, ns, 'app2');
    await waitUntil('capacity to reach 80Mi', async () => (await readPvc(t.sim, ns, 'idle')).status?.capacity?.storage === '80Mi');
    assert.ok(fsBytes(t.sim.volumePath(ns, 'idle') ?? '') > 70 * MiB);
  });

  it('keeps data when a pod moves to another node in the same zone', async () => {
    // all nodes in one zone, so that the disk can attach anywhere
    await t.sim.stop();
    const { startSimulation } = await import('../../sim/index.ts');
    const sim = await startSimulation({ controlPlane: t.cp, nodes: 2, zones: 1 });
    try {
      const ns = await sim.createNamespace('move');
      await createPvc(sim, ns, 'data', '64Mi');
      await createPod(sim, ns, 'app', ['data']);
      const first = await waitForRunning(sim, ns, 'app');
      const target = { namespace: ns, pvc: 'data' };
      await sim.workload.writeSentinel(target);
      await sim.nodes.find((n) => n.name === first.spec?.nodeName)?.cordon();
      await sim.clients.core.deleteNamespacedPod({ name: 'app', namespace: ns });
      await waitUntil('the pod to be gone', async () => (await sim.clients.core.listNamespacedPod({ namespace: ns })).items.length === 0);
      await createPod(sim, ns, 'app', ['data']);
      const second = await waitForRunning(sim, ns, 'app');
      assert.notEqual(second.spec?.nodeName, first.spec?.nodeName);
      assert.equal((await sim.workload.verifySentinel(target)).ok, true);
    } finally {
      await sim.stop();
    }
    assert.deepEqual(simulationMountPoints().filter((p) => p.startsWith(sim.dir)), []);
  });

  it('unmounts everything and removes its directory on stop', async () => {
    const ns = t.namespace;
    await createPvc(t.sim, ns, 'data', '64Mi');
    await createPod(t.sim, ns, 'app', ['data']);
    await waitForRunning(t.sim, ns, 'app');
    const dir = t.sim.dir;
    assert.ok(simulationMountPoints().some((p) => p.startsWith(dir)));
    await t.sim.stop();
    assert.deepEqual(simulationMountPoints().filter((p) => p.startsWith(dir)), []);
    assert.equal(existsSync(dir), false);
    const pvs = await t.sim.clients.core.listPersistentVolume();
    assert.deepEqual(pvs.items.filter((pv) => pv.spec?.claimRef?.namespace === ns).map((pv) => pv.metadata?.name), []);
  });
});

async function assertProvisionedPv(name: string, claimUid: string | undefined): Promise<void> {
  const pv = await sharedSim().clients.core.readPersistentVolume({ name });
  assert.equal(pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'], 'disk.csi.azure.com');
  assert.equal(pv.spec?.claimRef?.uid, claimUid);
  assert.equal(pv.spec?.csi?.driver, 'disk.csi.azure.com');
  assert.deepEqual(pv.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.key, 'topology.disk.csi.azure.com/zone');
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

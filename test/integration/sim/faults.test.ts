import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import { MiB } from '../../../shared/quantity.ts';
import { conditionTypes, resizeStatus } from '../../sim/index.ts';
import { apiMessage, apiStatus, waitUntil } from '../../sim/kube.ts';
import { createPod, createPvc, readPvc, recordResizeViews, resizePvc, resizeView, useSimulation, waitForRunning } from './helpers.ts';

const eq = (actual: unknown, expected: unknown, message?: string): void => { assert.equal(actual, expected, message); };
const condition = (pvc: k8s.V1PersistentVolumeClaim, type: string): k8s.V1PersistentVolumeClaimCondition | undefined =>
  (pvc.status?.conditions ?? []).find((c) => c.type === type);
const fsBytes = (p: string): number => { const s = statfsSync(p); return s.blocks * s.bsize; };

describe('simulation: resize faults', function () {
  const t = useSimulation({ nodes: 1, csi: { latency: { controllerMs: 30, nodeMs: 30, kubeletSyncMs: 30 }, retryBaseMs: 100, maxRetryMs: 400 } });

  async function mounted(name: string, size = '64Mi'): Promise<void> {
    await createPvc(t.sim, t.namespace, name, size);
    await createPod(t.sim, t.namespace, `${name}-pod`, [name]);
    await waitForRunning(t.sim, t.namespace, `${name}-pod`);
  }

  const until = (name: string, what: string, check: (pvc: k8s.V1PersistentVolumeClaim) => boolean, timeoutMs = 15_000): Promise<k8s.V1PersistentVolumeClaim> =>
    waitUntil(what, async () => { const pvc = await readPvc(t.sim, t.namespace, name); return check(pvc) ? pvc : undefined; }, timeoutMs);

  const finished = (size: string) => (pvc: k8s.V1PersistentVolumeClaim): boolean =>
    pvc.status?.capacity?.storage === size && pvc.status.allocatedResourceStatuses === undefined;

  it('controller infeasible: ControllerResizeInfeasible with ControllerResizeError, recoverable by lowering the request', async () => {
    await mounted('data');
    // Once: the resizer's slow retry (30 s by default) keeps it from retrying 96Mi on its own during the test.
    const fault = t.sim.csi.injectFault({ pvc: `${t.namespace}/data`, kind: 'controllerInfeasible', message: 'disk size 96Mi is not allowed for this SKU', times: 1 });
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    const failed = await until('data', 'ControllerResizeInfeasible', (p) => p.status?.allocatedResourceStatuses?.storage === resizeStatus.controllerInfeasible);
    eq(failed.status?.allocatedResources?.storage, '96Mi');
    eq(failed.status?.capacity?.storage, '64Mi');
    eq(condition(failed, conditionTypes.controllerResizeError)?.status, 'True');
    eq(condition(failed, conditionTypes.controllerResizeError)?.message, 'rpc error: code = OutOfRange desc = disk size 96Mi is not allowed for this SKU');
    eq(condition(failed, conditionTypes.resizing), undefined);
    eq(fault.hits, 1);
    // KEP-1790: a failed expansion may be lowered again, to more than the current capacity (not to it: 422)
    const toCapacity = await resizePvc(t.sim, t.namespace, 'data', '64Mi').then(() => undefined, (err: unknown) => err);
    eq(apiStatus(toCapacity), 422);
    await resizePvc(t.sim, t.namespace, 'data', '80Mi');
    const recovered = await until('data', 'the lowered resize to finish', finished('80Mi'));
    assert.deepEqual(recovered.status?.conditions ?? [], []);
    eq(recovered.status?.allocatedResources?.storage, '80Mi');
  });

  it('node infeasible: NodeResizeInfeasible with NodeResizeError; the PV grew, the filesystem did not', async () => {
    await mounted('data');
    const mount = t.sim.volumePath(t.namespace, 'data') ?? '';
    const before = fsBytes(mount);
    t.sim.csi.injectFault({ pvc: /\/data$/, kind: 'nodeInfeasible', message: 'filesystem is read-only' });
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    const failed = await until('data', 'NodeResizeInfeasible', (p) => p.status?.allocatedResourceStatuses?.storage === resizeStatus.nodeInfeasible);
    eq(condition(failed, conditionTypes.nodeResizeError)?.message, 'failed to expand pvc with rpc error: code = InvalidArgument desc = filesystem is read-only');
    eq(condition(failed, conditionTypes.fileSystemResizePending)?.status, 'True');
    eq(failed.status?.capacity?.storage, '64Mi');
    const pv = await t.sim.clients.core.readPersistentVolume({ name: failed.spec?.volumeName ?? '' });
    eq(pv.spec?.capacity?.storage, '96Mi');
    eq(fsBytes(mount), before);
  });

  it('transient controller errors: ControllerResizeError while retrying, then success', async () => {
    await mounted('data');
    const fault = t.sim.csi.injectFault({ pvc: `${t.namespace}/data`, kind: 'transientControllerError', times: 2 });
    const recorder = recordResizeViews(t.sim, t.namespace, 'data');
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    await until('data', 'the resize to finish', finished('96Mi'));
    const views = await recorder.stop();
    assert.ok(views.includes(`${resizeStatus.controllerInProgress}|${conditionTypes.controllerResizeError}+${conditionTypes.resizing}|64Mi`), views.join('\n'));
    eq(views.at(-1), '-|-|96Mi');
    eq(fault.hits, 2);
    eq(fault.active, false);
  });

  it('transient node errors: NodeResizeError while kubelet retries, then success', async () => {
    await mounted('data');
    t.sim.csi.injectFault({ pvc: `${t.namespace}/data`, kind: 'transientNodeError', message: 'resize2fs failed' });
    const recorder = recordResizeViews(t.sim, t.namespace, 'data');
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    await until('data', 'the resize to finish', finished('96Mi'));
    const views = await recorder.stop();
    assert.ok(views.includes(`${resizeStatus.nodeInProgress}|${conditionTypes.fileSystemResizePending}+${conditionTypes.nodeResizeError}|64Mi`), views.join('\n'));
  });

  it('stuck: the resize stays in progress until the fault is cleared', async () => {
    await mounted('data');
    const fault = t.sim.csi.injectFault({ pvc: `${t.namespace}/data`, kind: 'stuck' });
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    await until('data', 'the resize to start', (p) => p.status?.allocatedResourceStatuses?.storage === resizeStatus.controllerInProgress);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const held = await readPvc(t.sim, t.namespace, 'data');
    eq(resizeView(held), `${resizeStatus.controllerInProgress}|${conditionTypes.resizing}|64Mi`);
    fault.clear();
    await until('data', 'the resize to finish', finished('96Mi'));
  });

  it('stuck on the node: NodeResizeInProgress until the fault is cleared', async () => {
    await mounted('data');
    const fault = t.sim.csi.injectFault({ pvc: `${t.namespace}/data`, kind: 'stuckNode' });
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    await until('data', 'node expansion to start', (p) => p.status?.allocatedResourceStatuses?.storage === resizeStatus.nodeInProgress);
    await new Promise((resolve) => setTimeout(resolve, 800));
    eq((await readPvc(t.sim, t.namespace, 'data')).status?.allocatedResourceStatuses?.storage, resizeStatus.nodeInProgress);
    fault.clear();
    await until('data', 'the resize to finish', finished('96Mi'));
  });

  it('growth boundary: growing past it while attached fails like Azure, within it succeeds', async () => {
    await mounted('data');
    t.sim.csi.setGrowthBoundary('80Mi', 'managed-csi-mib');
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    const refused = await until('data', 'the Azure refusal', (p) => condition(p, conditionTypes.controllerResizeError) !== undefined);
    eq(refused.status?.allocatedResourceStatuses?.storage, resizeStatus.controllerInProgress, 'a final, not infeasible, error: retried');
    assert.match(condition(refused, conditionTypes.controllerResizeError)?.message ?? '', /OperationNotAllowed[\s\S]*while it is attached to a running VM/);
    await resizePvc(t.sim, t.namespace, 'data', '80Mi');
    await until('data', 'the resize to 80Mi', finished('80Mi'));
    assert.ok(fsBytes(t.sim.volumePath(t.namespace, 'data') ?? '') > 75 * MiB);
  });

  it('growth boundary: a detached disk may grow past it', async () => {
    await mounted('data');
    t.sim.csi.setGrowthBoundary('80Mi', 'managed-csi-mib');
    await t.sim.clients.core.deleteNamespacedPod({ name: 'data-pod', namespace: t.namespace });
    await waitUntil('the disk to be detached', () => t.sim.volumePath(t.namespace, 'data') === undefined);
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    await until('data', 'file system resize to be pending', (p) => p.status?.allocatedResourceStatuses?.storage === resizeStatus.nodePending);
    await createPod(t.sim, t.namespace, 'data-pod2', ['data']);
    await until('data', 'the resize to finish', finished('96Mi'));
  });

  it('quota: the API server rejects a PVC patch beyond the namespace storage quota', async () => {
    await mounted('data');
    await t.sim.quota.limit(t.namespace, '128Mi');
    await resizePvc(t.sim, t.namespace, 'data', '96Mi');
    const rejected = await resizePvc(t.sim, t.namespace, 'data', '160Mi').then(() => undefined, (err: unknown) => err);
    eq(apiStatus(rejected), 403);
    assert.match(apiMessage(rejected), /persistentvolumeclaims "data" is forbidden: exceeded quota: cnpg-ds-sim-storage, requested: requests.storage=64Mi, used: requests.storage=96Mi, limited: requests.storage=128Mi/);
    await until('data', 'the allowed resize to finish', finished('96Mi'));
  });

  it('a class without allowVolumeExpansion: the API server rejects the patch', async () => {
    await createPvc(t.sim, t.namespace, 'fixed', '64Mi', 'managed-csi-fixed-mib');
    await createPod(t.sim, t.namespace, 'fixed-pod', ['fixed']);
    await waitForRunning(t.sim, t.namespace, 'fixed-pod');
    const rejected = await resizePvc(t.sim, t.namespace, 'fixed', '96Mi').then(() => undefined, (err: unknown) => err);
    eq(apiStatus(rejected), 403);
    assert.match(apiMessage(rejected), /only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize/);
  });
});

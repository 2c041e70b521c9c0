/**
 * The product installed on a real node the way a user installs it (`kubectl apply -f crds/ && kubectl apply -k
 * daemonset/`), with our images, its shipped security context, RBAC and probes; then a CNPG-like instance on a volume of
 * the test CSI driver: the agent's reading equals `df` in the instance's pod, and a PVC the controller patches is grown
 * by Kubernetes' own resize flow (external-resizer, kubelet's NodeExpandVolume) while the pod keeps running; the API
 * server reaches the PVC webhook through its Service, and a new PVC of the Cluster is created at the grown size.
 *
 * CloudNativePG's install creates the cnpg-system namespace; without the operator here, the test creates it. The
 * webhook's certificate and the configurations' caBundle are the controller's own (the default install, no cert-manager).
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { AgentClient } from '../../../shared/agent-client.ts';
import type { VolumeReading } from '../../../shared/readings.ts';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';
import { eventually } from '../../harness/eventually.ts';
import { clusterOwner, createInstance, dataMountPath, installCnpgCrd, type Instance } from '../../node/cnpg.ts';
import { images, testStorageClass, removeTestStorageClass } from '../../node/fixtures.ts';
import { agentSelector, agentToken, dsApi, installProduct, podsReady, systemNamespace, waitForProduct, type InstalledProduct } from '../../node/product.ts';
import { createNamespace, dfInPod, execInPod, useRealStack, waitForPodReady } from '../../node/stack.ts';

describe('the product on a real node', function () {
  this.timeout(300_000);
  const stack = useRealStack();
  let namespace: { name: string; remove: () => Promise<void> } | undefined;
  let storageClass = '';
  let instance: Instance | undefined;
  let agent: AgentClient | undefined;
  let grownSize = 0;
  let product: InstalledProduct | undefined;

  before(async function () {
    this.timeout(600_000);
    const s = stack();
    product = await installProduct(s);
    await installCnpgCrd(s);
    storageClass = await testStorageClass(s);
  });

  after(async function () {
    this.timeout(300_000);
    const s = stack();
    await agent?.close();
    await namespace?.remove();
    await removeTestStorageClass(s);
    // Leave a stack that was up before this file as it was: no product, no CRDs.
    await product?.remove();
  });

  it('runs every product pod Ready under its shipped security context', async function () {
    const s = stack();
    await waitForProduct(s);
    const [agentPod] = await podsReady(s, agentSelector, 1);
    // Nothing was patched into the pods: the shipped template is what runs.
    const shipped = await s.kubectl(['get', 'daemonset', '-n', systemNamespace, 'cnpg-dynamic-storage-agent', '-o', 'jsonpath={.spec.template.spec.containers[0].securityContext}']);
    assert.deepEqual(JSON.parse(JSON.stringify(agentPod?.spec?.containers[0]?.securityContext)), JSON.parse(shipped));
    assert.equal(agentPod?.status?.containerStatuses?.[0]?.restartCount, 0, 'the agent never restarted');
  });

  it("reads a real pod's volume exactly as df inside that pod does", async function () {
    const s = stack();
    namespace = await createNamespace(s, 'install');
    instance = await createInstance(s, { namespace: namespace.name, cluster: 'pg', size: '64Mi', storageClass, image: images.workload });
    await execInPod(s, namespace.name, instance.name, ['dd', 'if=/dev/zero', `of=${dataMountPath}/seed`, 'bs=1M', 'count=10', 'conv=fsync']);
    const [agentPod] = await podsReady(s, agentSelector, 1);
    const controllerToken = await agentToken(s, systemNamespace, 'cnpg-dynamic-storage-controller');
    // HTTPS with the certificate the controller keeps for the agents, checked as the controller checks it.
    const tls = await s.core.readNamespacedSecret({ name: 'cnpg-dynamic-storage-agent-tls', namespace: systemNamespace });
    agent = new AgentClient({
      baseUrl: `https://${agentPod?.status?.podIP ?? ''}:9100`, token: () => controllerToken,
      ca: Buffer.from(tls.data?.['ca.crt'] ?? '', 'base64').toString('utf8'), tlsServerName: `cnpg-dynamic-storage-agent.${systemNamespace}.svc`,
    });
    const key = `${namespace.name}/${instance.pvc}`;
    const reading = await eventually(async () => {
      const list = await agent!.snapshot();
      const found = list.volumes.find((v) => v.key === key);
      if (found?.status !== 'ok' || (found.usage?.usedBytes ?? 0) < 10 * MiB) throw new Error(`no ok reading of ${key} yet: ${JSON.stringify(found ?? list.volumes)}`);
      return found;
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    const df = await dfInPod(s, namespace.name, instance.name, dataMountPath);
    const usage = reading.usage!;
    assert.deepEqual(
      { totalBytes: usage.totalBytes, usedBytes: usage.usedBytes, availableBytes: usage.availableBytes },
      df, `agent ${JSON.stringify(reading)} vs df ${JSON.stringify(df)}`);
    assert.equal(reading.podName, instance.name);
  });

  it('grows a PVC the controller patched through Kubernetes\' own resize flow, the pod sees it without a restart', async function () {
    const s = stack();
    assert.ok(namespace && instance, 'the instance of the previous test runs');
    const ns = namespace.name;
    const custom = s.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await custom.createNamespacedCustomObject({ ...dsApi, namespace: ns, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' },
      spec: {
        cluster: { name: 'pg' },
        storage: { request: '64Mi', limit: '256Mi', targetBuffer: 20, emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } },
      },
    } });
    const before = await dfInPod(s, ns, instance.name, dataMountPath);
    // 93%: past the 20% buffer (the target is then about 75Mi), short of critical.
    const fillMiB = Math.floor((before.totalBytes * 0.93 - before.usedBytes) / MiB);
    await execInPod(s, ns, instance.name, ['dd', 'if=/dev/zero', `of=${dataMountPath}/fill`, 'bs=1M', `count=${fillMiB}`, 'conv=fsync']);

    const grown = await eventually(async () => resizedPvc(await s.core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: instance!.pvc })),
      { timeoutMs: 120_000, intervalMs: 1000 });

    // kubelet's NodeExpandVolume reached the mounted filesystem: df in the same, never restarted container shows it.
    const after = await eventually(async () => {
      const df = await dfInPod(s, ns, instance!.name, dataMountPath);
      if (df.totalBytes <= before.totalBytes) throw new Error(`filesystem still ${df.totalBytes} bytes`);
      return df;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.ok(after.totalBytes >= grown.capacity * 0.9, `filesystem ${after.totalBytes} bytes for a ${grown.capacity}-byte volume`);
    const pod = await waitForPodReady(s, ns, instance.name);
    assert.equal(pod.metadata?.uid, instance.pod.metadata?.uid, 'the same pod');
    assert.equal(pod.status?.containerStatuses?.[0]?.restartCount, 0, 'the container never restarted');

    // And the agent reads the larger filesystem too.
    const key = `${ns}/${instance.pvc}`;
    await eventually(async () => {
      const reading: VolumeReading | undefined = (await agent!.snapshot()).volumes.find((v) => v.key === key);
      assert.equal(reading?.usage?.totalBytes, after.totalBytes);
    }, { timeoutMs: 30_000, intervalMs: 1000 });
    grownSize = pvcSize(await s.core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: instance.pvc }));
  });

  it('creates a new PVC of the Cluster at the grown size, through the webhook reached by its Service', async function () {
    const s = stack();
    assert.ok(namespace && grownSize, 'the volume of the previous test grew');
    const ns = namespace.name;
    const custom = s.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    // The policy's effective size is the grown one before a replica comes.
    await eventually(async () => {
      const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace: ns, name: 'pg' }) as { status?: { storageSizing?: { data?: { effectiveSize?: string } } } };
      assert.equal(parseQuantity(object.status?.storageSizing?.data?.effectiveSize ?? '0', 'effectiveSize'), grownSize);
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    const owner = await custom.getNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace: ns, name: 'pg' }) as k8s.KubernetesObject;
    const created = await s.core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: {
          name: 'pg-2',
          labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': 'pg-2', 'cnpg.io/pvcRole': 'PG_DATA' },
          ownerReferences: [clusterOwner('pg', owner.metadata?.uid ?? '')],
        },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: '64Mi' } } },
      },
    });
    assert.equal(pvcSize(created), grownSize, `created at ${created.spec?.resources?.requests?.storage ?? ''}`);
  });
});

function pvcSize(pvc: k8s.V1PersistentVolumeClaim): number {
  return parseQuantity(pvc.spec?.resources?.requests?.storage ?? '0', 'request');
}

/** The PVC's new size once the controller patched it and Kubernetes finished resizing it; throws until then. */
function resizedPvc(pvc: k8s.V1PersistentVolumeClaim): { requested: number; capacity: number } {
  const requestedText = pvc.spec?.resources?.requests?.storage ?? '0';
  const capacityText = pvc.status?.capacity?.storage ?? '0';
  const requested = parseQuantity(requestedText, 'request');
  const capacity = parseQuantity(capacityText, 'capacity');
  if (requested <= 64 * MiB) throw new Error(`PVC not patched yet (${requestedText})`);
  if (capacity < requested || pvc.status?.allocatedResourceStatuses?.storage !== undefined) {
    throw new Error(`resize to ${requestedText} not finished: capacity ${capacityText}, ${JSON.stringify(pvc.status?.conditions ?? [])}`);
  }
  return { requested, capacity };
}

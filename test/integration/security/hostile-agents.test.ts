/**
 * Impersonating agents, against the whole product on the local stand-in: a pod that only looks like an agent, and a
 * compromised pod of the agent DaemonSet that lies about another node's volume, about the future, and keeps the token the
 * controller sent it. Neither may make the controller grow a disk, and the captured token must be useless against the
 * API server.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { eventually } from '../../harness/eventually.ts';
import { startLocalStack, systemNamespace, type LocalStack } from '../../stack/index.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { parseQuantity } from '../../../shared/quantity.ts';
import { fakeReading, startFakeAgent, type FakeAgent } from './fake-agent.ts';

const agentLabels = { 'app.kubernetes.io/name': 'cnpg-dynamic-storage-agent', 'app.kubernetes.io/part-of': 'cnpg-dynamic-storage' };
const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' };
const closedWindow = { schedule: new Date().getUTCMonth() === 0 && new Date().getUTCDate() === 1 ? '0 3 2 1 *' : '0 3 1 1 *', duration: '1h', timezone: 'UTC' };

describe('hostile agents', function () {
  let stack: LocalStack;
  let core: k8s.CoreV1Api;
  const fakes: FakeAgent[] = [];

  before(async function () {
    this.timeout(240_000);
    stack = await startLocalStack({ nodes: 2 });
    core = stack.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
  });

  after(async function () {
    this.timeout(120_000);
    for (const fake of fakes.splice(0)) await fake.close();
    await stack.stop();
  });

  async function clusterWithPolicy(name: string): Promise<string> {
    const namespace = await stack.sim.createNamespace('hostile-agents');
    await stack.sim.cnpg.createCluster(namespace, name, { instances: 1, storage: { size: '64Mi', storageClass: 'managed-csi-mib' } });
    await stack.sim.cnpg.waitForReady(namespace, name, 90_000);
    await stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({ ...dsApi, namespace, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
      spec: { cluster: { name }, storage: { request: '64Mi', limit: '256Mi', maintenanceWindow: closedWindow, emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } } },
    } });
    return namespace;
  }

  /** A pod with the agents' labels on a node of its own, "running" at `ip` (no kubelet there: its status is set here). */
  async function posingPod(name: string, ip: string, owner?: k8s.V1OwnerReference): Promise<void> {
    await core.createNamespacedPod({ namespace: systemNamespace, body: {
      metadata: { name, labels: agentLabels, ...(owner ? { ownerReferences: [owner] } : {}) },
      spec: { nodeName: `${name}-node`, serviceAccountName: 'cnpg-dynamic-storage-agent', containers: [{ name: 'agent', image: 'evil:latest' }] },
    } });
    const pod = await core.readNamespacedPod({ name, namespace: systemNamespace });
    pod.status = { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: ip };
    await core.replaceNamespacedPodStatus({ name, namespace: systemNamespace, body: pod });
  }

  async function requested(namespace: string, pvc: string): Promise<number> {
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: pvc, namespace });
    return parseQuantity(claim.spec?.resources?.requests?.storage ?? '0');
  }

  async function sleep(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  it('does not believe a pod that only looks like an agent', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg');
    const port = stack.agents[0]?.port ?? 0;
    const fake = await startFakeAgent('127.0.200.1', port, 'impostor-node', () => [fakeReading({ namespace, cluster: 'pg', pvc: 'pg-1', node: 'impostor-node', percent: 99 })]);
    fakes.push(fake);
    await posingPod('impostor', '127.0.200.1');
    // The controller looks for agents every 10 s; give it two rounds and a few reconciles.
    await sleep(25_000);
    assert.equal(fake.watches(), 0, 'the controller never connected to the impostor');
    assert.equal(await requested(namespace, 'pg-1'), parseQuantity('64Mi'), 'nothing was grown on its word');
    assert.equal(stack.controller.readings.forPvc(namespace, 'pg-1', new Set(['impostor-node'])).raw, undefined, 'no reading taken from it');
  });

  it('lets a compromised agent speak only for its own node and the present, and its captured token opens nothing on the API server', async function () {
    this.timeout(180_000);
    const namespace = await clusterWithPolicy('pg-own');
    const instancePod = await core.readNamespacedPod({ name: 'pg-own-1', namespace });
    const realNode = instancePod.spec?.nodeName ?? '';
    const daemonSet = await stack.plane.kubeConfig.makeApiClient(k8s.AppsV1Api).readNamespacedDaemonSet({ name: 'cnpg-dynamic-storage-agent', namespace: systemNamespace });
    // A pod of the agent DaemonSet, with its ServiceAccount: what a compromised agent (or its node) has.
    const owner: k8s.V1OwnerReference = { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'cnpg-dynamic-storage-agent', uid: daemonSet.metadata?.uid ?? '', controller: true };
    const port = stack.agents[0]?.port ?? 0;
    const lies = (): ReturnType<typeof fakeReading>[] => [
      // Its own node's name, but the volume is mounted elsewhere.
      fakeReading({ namespace, cluster: 'pg-own', pvc: 'pg-own-1', node: 'compromised-node', percent: 99 }),
      // The real node's name: an agent speaks for its own node only.
      fakeReading({ namespace, cluster: 'pg-own', pvc: 'pg-own-1', node: realNode, percent: 99 }),
      // Dated in the future, so that it would outlive every true reading.
      fakeReading({ namespace, cluster: 'pg-own', pvc: 'pg-own-1', node: 'compromised-node', percent: 99, sampledAt: new Date(Date.now() + 3_600_000) }),
    ];
    const fake = await startFakeAgent('127.0.201.1', port, 'compromised-node', lies);
    fakes.push(fake);
    await posingPod('compromised', '127.0.201.1', owner);
    await eventually(() => { assert.ok(fake.watches() > 0, 'the controller connects to a pod of the DaemonSet'); }, { timeoutMs: 30_000 });
    await sleep(8_000);
    assert.equal(await requested(namespace, 'pg-own-1'), parseQuantity('64Mi'), 'nothing was grown on its word');
    const status = await eventually(async () => {
      const object = await stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({ ...dsApi, namespace, name: 'pg-own' }) as DynamicStorage;
      const instance = object.status?.storageSizing?.data?.instances?.['pg-own-1'];
      assert.equal(instance?.diskStatus, 'Reported');
      return instance;
    }, { timeoutMs: 15_000 });
    assert.ok((status.percentUsed ?? 100) < 90, `the real agent's reading stands (${status.percentUsed ?? '?'}% used)`);
    assert.equal(stack.controller.readings.forPvc(namespace, 'pg-own-1', new Set(['compromised-node'])).raw?.node, 'compromised-node', 'its lie was received, and set aside');

    const captured = fake.tokens.find((t) => t.startsWith('Bearer '));
    assert.ok(captured, 'the controller sent a token');
    const dispatcher = new Agent({ connect: { ca: stack.plane.caPem } });
    try {
      const replay = await request(`${stack.plane.server}/api/v1/namespaces/${namespace}/persistentvolumeclaims`, { headers: { authorization: captured }, dispatcher });
      await replay.body.dump();
      assert.equal(replay.statusCode, 401, 'the API server does not accept the token the controller gives agents');
    } finally {
      await dispatcher.close();
    }
  });
});

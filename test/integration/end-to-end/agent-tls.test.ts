/**
 * The product as it runs by default, over HTTPS to the agents: the controller keeps the agents' certificate in its
 * Secret, the agents serve with it, and the controller reads them (checking CA and name) well enough to grow a volume.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { eventually } from '../../harness/eventually.ts';
import { startLocalStack, type LocalStack } from '../../stack/index.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity } from '../../../shared/quantity.ts';

const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' };

describe('end to end over HTTPS to the agents', function () {
  let stack: LocalStack;

  before(async function () {
    this.timeout(240_000);
    stack = await startLocalStack({ nodes: 1, agentTls: true });
  });

  after(async function () {
    this.timeout(120_000);
    await stack.stop();
  });

  it('grows a nearly full volume in an emergency, reading the agent over HTTPS', async function () {
    this.timeout(180_000);
    assert.ok(stack.agents.every((a) => a.url.startsWith('https://')), 'the agents serve HTTPS');
    const custom = stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const namespace = await stack.sim.createNamespace('tls');
    await stack.sim.cnpg.createCluster(namespace, 'pg', { instances: 1, storage: { size: '64Mi', storageClass: 'managed-csi-mib' } });
    await stack.sim.cnpg.waitForReady(namespace, 'pg', 90_000);
    await custom.createNamespacedCustomObject({ ...dsApi, namespace, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' },
      spec: { cluster: { name: 'pg' }, storage: { request: '64Mi', limit: '256Mi', emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } } },
    } });
    await stack.sim.workload.fill({ namespace, instance: 'pg-1', volume: 'data' }, { percent: 97 });
    const status = await eventually(async () => {
      const object = await custom.getNamespacedCustomObject({ ...dsApi, namespace, name: 'pg' }) as DynamicStorage;
      const data = object.status?.storageSizing?.data;
      assert.equal(data?.lastAction?.result, 'Success', `${data?.state ?? ''}: ${data?.message ?? ''}`);
      return data;
    }, { timeoutMs: 90_000 });
    assert.ok(parseQuantity(status.lastAction?.to ?? '0') > 64 * MiB);
  });
});

/**
 * Proves the test control plane is a real Kubernetes: admission with CEL, RBAC, watches, namespace deletion and garbage
 * collection all behave as on a cluster, because they are the real kube-apiserver and kube-controller-manager.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { eventually } from '../../harness/eventually.ts';

const widgetCrd: k8s.V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.harness.test' },
  spec: {
    group: 'harness.test',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
    versions: [{
      name: 'v1', served: true, storage: true,
      schema: {
        openAPIV3Schema: {
          type: 'object',
          properties: {
            spec: {
              type: 'object',
              properties: { min: { type: 'integer' }, max: { type: 'integer' } },
              x_kubernetes_validations: [{ rule: 'self.min <= self.max', message: 'min must not exceed max' }],
            },
          },
        },
      },
    }],
  },
};

function statusCode(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

describe('local control plane', function () {
  let plane: ControlPlane;
  let core: k8s.CoreV1Api;

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane();
    core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    console.log(`      control plane: kube-apiserver ${plane.versions.kubernetes}, etcd ${plane.versions.etcd} from ${plane.binDir}`);
  });

  after(async function () {
    this.timeout(60_000);
    await plane.stop();
  });

  it('runs the pinned versions it built', async () => {
    assert.match(plane.versions.kubernetes, /^v1\.3[67]\.\d+$/);
    assert.match(plane.versions.etcd, /^3\.6\.\d+$/);
    const version = await plane.kubeConfig.makeApiClient(k8s.VersionApi).getCode();
    assert.equal(version.gitVersion, plane.versions.kubernetes);
  });

  it('rejects an object that breaks a CRD CEL rule with the rule message', async () => {
    const ext = plane.kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: widgetCrd });
    const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const create = (min: number, max: number): Promise<unknown> => custom.createNamespacedCustomObject({
      group: 'harness.test', version: 'v1', namespace: 'default', plural: 'widgets',
      body: { apiVersion: 'harness.test/v1', kind: 'Widget', metadata: { name: `w-${min}-${max}` }, spec: { min, max } },
    });
    // The CRD becomes servable asynchronously.
    await eventually(() => create(1, 2), { timeoutMs: 30_000 });
    await assert.rejects(create(3, 2), (err: unknown) => {
      assert.equal(statusCode(err), 422);
      assert.match((err as k8s.ApiException<string>).body, /"w-3-2\\" is invalid: spec: Invalid value: min must not exceed max/);
      return true;
    });
  });

  it('enforces RBAC for ServiceAccounts: 403 without a RoleBinding, 200 with one', async () => {
    const rbac = plane.kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespace({ body: { metadata: { name: 'rbac-check' } } });
    await core.createNamespacedServiceAccount({ namespace: 'rbac-check', body: { metadata: { name: 'reader' } } });
    const asReader = (await plane.kubeConfigFor('rbac-check', 'reader')).makeApiClient(k8s.CoreV1Api);

    await assert.rejects(asReader.listNamespacedConfigMap({ namespace: 'rbac-check' }), (err: unknown) => statusCode(err) === 403);

    await rbac.createNamespacedRole({ namespace: 'rbac-check', body: {
      metadata: { name: 'read-configmaps' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list'] }],
    } });
    await rbac.createNamespacedRoleBinding({ namespace: 'rbac-check', body: {
      metadata: { name: 'reader-reads' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-configmaps' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'rbac-check' }],
    } });
    const list = await eventually(() => asReader.listNamespacedConfigMap({ namespace: 'rbac-check' }), { timeoutMs: 10_000 });
    assert.ok(Array.isArray(list.items));
  });

  it('delivers an update to a watch', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'watched' }, data: { v: '1' } } });
    const watch = new k8s.Watch(plane.kubeConfig);
    const seen = new Promise<string>((resolve, reject) => {
      void watch.watch('/api/v1/namespaces/default/configmaps', { fieldSelector: 'metadata.name=watched' }, (type, obj: k8s.V1ConfigMap) => {
        if (type === 'MODIFIED') resolve(obj.data?.v ?? '');
      }, (err: unknown) => { if (err instanceof Error) reject(err); }).then((request) => {
        void seen.finally(() => { request.abort(); });
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await core.replaceNamespacedConfigMap({ name: 'watched', namespace: 'default', body: { metadata: { name: 'watched' }, data: { v: '2' } } });
    assert.equal(await seen, '2');
  });

  it('completes the deletion of a namespace that held objects', async () => {
    await core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'c1' } } });
    await core.createNamespacedSecret({ namespace: 'doomed', body: { metadata: { name: 's1' } } });
    await core.deleteNamespace({ name: 'doomed' });
    await eventually(async () => {
      await assert.rejects(core.readNamespace({ name: 'doomed' }), (err: unknown) => statusCode(err) === 404);
    }, { timeoutMs: 60_000 });
  });

  it('garbage-collects a child whose owner is deleted', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: {
      name: 'child',
      ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' }],
    } } });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: 'default' });
    await eventually(async () => {
      await assert.rejects(core.readNamespacedConfigMap({ name: 'child', namespace: 'default' }), (err: unknown) => statusCode(err) === 404);
    }, { timeoutMs: 60_000 });
  });
});

/** Processes whose command line mentions `text` (from /proc, so it needs no tool). */
function processesUsing(text: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text) ? [Number(pid)] : [];
    } catch {
      return [];
    }
  });
}

describe('control plane teardown', function () {
  it('leaves no process, port or directory behind', async function () {
    this.timeout(180_000);
    const plane = await startControlPlane({ controllerManager: false });
    const port = Number(new URL(plane.server).port);
    const dir = plane.dir;
    assert.ok(processesUsing(dir).length >= 2, 'etcd and kube-apiserver run with the temp dir in their arguments');
    await plane.stop();
    assert.deepEqual(processesUsing(dir), [], 'no process left');
    assert.equal(existsSync(dir), false, 'temp dir removed');
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); reject(new Error(`port ${port} still accepts connections`)); });
      socket.once('error', () => { resolve(); });
    });
  });
});

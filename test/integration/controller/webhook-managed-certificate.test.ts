/**
 * The webhooks without cert-manager, as the default install runs them: the controller (under its shipped RBAC) starts
 * with no certificate Secret, creates it, sets caBundle on the shipped MutatingWebhookConfiguration and
 * ValidatingWebhookConfiguration, and the API server calls it through the webhook Service (an EndpointSlice to this
 * host's address; the API server routes to endpoints since there is no kube-proxy): a new CNPG-labelled PVC is created
 * at the effective size. A hand-edited caBundle is put back; a certificate near expiry is replaced without a restart.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { startController, type RunningController } from '../../../controller/controller.ts';
import { DEFAULT_LEADER_TIMING } from '../../../controller/kube/leader.ts';
import { newWebhookTlsData, webhookCertRenewBeforeMs, webhookCertValidityMs } from '../../../controller/webhook-tls.ts';
import { silentLogger } from '../../harness/log.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { applyCrds } from '../../harness/crds.ts';
import { eventually } from '../../harness/eventually.ts';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ns = 'cnpg-system';
const service = 'cnpg-dynamic-storage-webhook';
const secretName = 'cnpg-dynamic-storage-webhook-server';
const ds = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' };

/** An address of this host the API server may route to (Kubernetes refuses loopback addresses in endpoints). */
function hostAddress(): string | undefined {
  return Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
}

function servedSerial(host: string, port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ca: caPem, servername: `${service}.${ns}.svc` }, () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber ?? '';
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

describe('webhooks with the certificate the controller keeps (no cert-manager)', function () {
  let plane: ControlPlane;
  let controller: RunningController | undefined;
  let core: k8s.CoreV1Api;
  let admission: k8s.AdmissionregistrationV1Api;
  const address = hostAddress();

  before(async function () {
    this.timeout(180_000);
    if (!address) this.skip();
    plane = await startControlPlane({ controllerManager: false, endpointRouting: true });
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    admission = plane.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'cnpg-dynamic-storage-controller' } } });
    const kubectl = (args: string[]): Promise<unknown> => run(path.join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfigPath, ...args]);
    await kubectl(['apply', '-f', path.join(repoRoot, 'daemonset/rbac-controller.yaml')]);
    // The shipped webhook manifests, as the default install applies them (no caBundle); the Service without its
    // selector, since the endpoints are this host's and written below.
    const docs = parseAllDocuments(await readFile(path.join(repoRoot, 'daemonset/webhook.yaml'), 'utf8')).map((d) => d.toJS() as k8s.KubernetesObject & { spec?: { selector?: unknown } });
    assert.deepEqual(docs.map((d) => d.kind), ['Service', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    for (const doc of docs) {
      if (doc.kind === 'Service') delete doc.spec?.selector;
      assert.equal(JSON.stringify(doc).includes('caBundle'), false);
    }
    await new Promise<void>((resolve, reject) => {
      const child = execFile(path.join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfigPath, 'apply', '-f', '-'], (err) => { if (err) reject(new Error(err.message)); else resolve(); });
      child.stdin?.end(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }));
    });
  });

  after(async function () {
    this.timeout(60_000);
    await controller?.stop();
    if (address) await plane.stop();
  });

  async function caBundles(): Promise<string[]> {
    const mutating = await admission.readMutatingWebhookConfiguration({ name: 'cnpg-dynamic-storage' });
    const validating = await admission.readValidatingWebhookConfiguration({ name: 'cnpg-dynamic-storage' });
    return [...mutating.webhooks ?? [], ...validating.webhooks ?? []].map((w) => w.clientConfig.caBundle ?? '');
  }

  async function secretData(): Promise<Record<string, string>> {
    return (await core.readNamespacedSecret({ name: secretName, namespace: ns })).data ?? {};
  }

  async function createPvc(name: string): Promise<k8s.V1PersistentVolumeClaim> {
    return core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: {
      metadata: { name, labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    } });
  }

  it('creates its certificate, sets caBundle, and the API server calls it through the Service', async function () {
    this.timeout(120_000);
    await assert.rejects(core.readNamespacedSecret({ name: secretName, namespace: ns }), 'no Secret before the controller starts');
    const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await custom.createNamespacedCustomObject({ ...ds, namespace: 'default', body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' },
      spec: { cluster: { name: 'pg' }, storage: { request: '1Gi', limit: '20Gi' } },
    } });
    await custom.patchNamespacedCustomObjectStatus({ ...ds, namespace: 'default', name: 'pg', body: { status: {
      conditions: [{ type: 'Valid', status: 'True', reason: 'Valid', message: '', lastTransitionTime: new Date().toISOString() }],
      storageSizing: { data: { effectiveSize: '5Gi' } },
    } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));

    const asController = await plane.kubeConfigFor(ns, 'cnpg-dynamic-storage-controller');
    controller = await startController(asController, {
      identity: 'webhook-test', leaderElection: { enabled: false, namespace: ns, name: 'unused', ...DEFAULT_LEADER_TIMING },
      // Nothing to reconcile: the status above is the test's.
      watchNamespace: 'nothing-here', workers: 1, resyncMs: 60_000, busyRequeueMs: 1_000, readingIntervalMs: 1_000,
      agents: { namespace: ns, labelSelector: 'app=none', port: 9100, scheme: 'http', daemonSet: { name: 'none', serviceAccount: 'none' } },
      webhook: {
        host: address ?? '', port: 0,
        managed: { namespace: ns, secret: secretName, serviceName: service, mutatingConfiguration: 'cnpg-dynamic-storage', validatingConfiguration: 'cnpg-dynamic-storage', checkMs: 300 },
      },
    }, silentLogger);
    const port = controller.webhookPort;
    assert.ok(port);
    const data = await secretData();
    assert.deepEqual(await caBundles(), [data['ca.crt'], data['ca.crt']], 'both configurations trust the Secret\'s CA');
    const endpoints = { addresses: [address ?? ''], conditions: { ready: true } };
    await plane.kubeConfig.makeApiClient(k8s.DiscoveryV1Api).createNamespacedEndpointSlice({ namespace: ns, body: {
      metadata: { name: `${service}-local`, labels: { 'kubernetes.io/service-name': service } },
      addressType: 'IPv4', endpoints: [endpoints], ports: [{ name: 'webhook', port, protocol: 'TCP' }],
    } });
    await core.createNamespacedEndpoints({ namespace: ns, body: {
      metadata: { name: service }, subsets: [{ addresses: [{ ip: address ?? '' }], ports: [{ name: 'webhook', port, protocol: 'TCP' }] }],
    } }).catch(() => undefined);
    await eventually(async () => {
      const pvc = await createPvc(`probe-${Date.now()}`);
      assert.equal(pvc.spec?.resources?.requests?.storage, '5Gi');
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const pvc = await createPvc('new-replica');
    assert.equal(pvc.spec?.resources?.requests?.storage, '5Gi', 'created at the effective size');
    assert.equal(pvc.metadata?.annotations?.['dynamicstorage.cnpg.io/requested-size'], '1Gi');
  });

  it('puts a hand-edited caBundle back', async function () {
    this.timeout(60_000);
    const foreign = Buffer.from(plane.caPem).toString('base64');
    await admission.patchMutatingWebhookConfiguration({ name: 'cnpg-dynamic-storage', body: [{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: foreign }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
    const data = await secretData();
    await eventually(async () => { assert.deepEqual(await caBundles(), [data['ca.crt'], data['ca.crt']]); }, { timeoutMs: 20_000, intervalMs: 200 });
  });

  it('replaces a certificate near expiry without a restart, trusting the previous CA meanwhile', async function () {
    this.timeout(60_000);
    const caPem = (d: Record<string, string>): string => Buffer.from(d['ca.crt'] ?? '', 'base64').toString('utf8');
    const serial = (d: Record<string, string>): string => new X509Certificate(Buffer.from(d['tls.crt'] ?? '', 'base64').toString('utf8')).serialNumber;
    const port = controller?.webhookPort ?? 0;
    // The Secret as it is a day into its renewal window (made that long ago; the controller's clock is the real one).
    const madeAt = new Date(Date.now() - (webhookCertValidityMs - webhookCertRenewBeforeMs + 24 * 60 * 60 * 1000));
    const before = newWebhookTlsData(service, ns, madeAt);
    const current = await core.readNamespacedSecret({ name: secretName, namespace: ns });
    await core.replaceNamespacedSecret({ name: secretName, namespace: ns, body: { apiVersion: 'v1', kind: 'Secret', metadata: current.metadata, type: current.type, data: before } });
    const after = await eventually(async () => {
      const d = await secretData();
      assert.notEqual(serial(d), serial(before), 'renewed');
      return d;
    }, { timeoutMs: 20_000, intervalMs: 200 });
    assert.ok(caPem(after).endsWith(caPem(before)), 'the previous CA stays trusted after the new one');
    await eventually(async () => {
      assert.equal(await servedSerial(address ?? '', port, caPem(after)), serial(after));
      assert.deepEqual(await caBundles(), [after['ca.crt'], after['ca.crt']]);
    }, { timeoutMs: 20_000, intervalMs: 200 });
    const pvc = await createPvc('after-renewal');
    assert.equal(pvc.spec?.resources?.requests?.storage, '5Gi');
  });
});

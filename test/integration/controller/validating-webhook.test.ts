/**
 * The validating webhook as daemonset/webhook.yaml registers it, called by a real API server: a DynamicStorage with an
 * invalid cron schedule or time zone is refused at admission with the messages of `kubectl cnpg storage validate`; a
 * policy stored before the webhook can still be edited; a webhook that cannot answer blocks nobody (failurePolicy Ignore).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { startWebhookServer, type WebhookServer } from '../../../controller/webhook.ts';
import { validateDocuments } from '../../../plugin/validate.ts';
import { silentLogger } from '../../harness/log.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { applyCrds } from '../../harness/crds.ts';
import { eventually } from '../../harness/eventually.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ds = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace: 'default' };

function policy(name: string, maintenanceWindow: Record<string, string>, limit = '10Gi'): { apiVersion: string; kind: string; metadata: { name: string }; spec: object } {
  return {
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
    spec: { cluster: { name }, storage: { request: '2Gi', limit, maintenanceWindow } },
  };
}

/** What `kubectl cnpg storage validate` says about the same object, line by line. */
function offlineMessages(object: object): string[] {
  const [report] = validateDocuments([{ source: '-', object: object as Record<string, unknown> }], { requireCluster: false, namespace: 'default' });
  return report?.problems.map((p) => p.text) ?? [];
}

async function refusal(write: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await write;
  } catch (err) {
    assert.ok(err instanceof k8s.ApiException, String(err));
    const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: string };
    return { code: err.code, message: body.message ?? '' };
  }
  throw new Error('the write was accepted');
}

describe('validating webhook for DynamicStorage', function () {
  let plane: ControlPlane;
  let custom: k8s.CustomObjectsApi;
  let server: WebhookServer | undefined;

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    await applyCrds(plane, [path.join(repoRoot, 'crds/dynamicstorage.cnpg.io_dynamicstorages.yaml')]);
    custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    // Stored before the webhook existed: an unknown time zone.
    await custom.createNamespacedCustomObject({ ...ds, body: policy('stored', { timezone: 'Mars/Olympus_Mons' }) });
    const tls = await plane.servingCertificate('validating-webhook');
    server = await startWebhookServer({
      host: '127.0.0.1', port: 0, certPem: tls.certPem, keyPem: tls.keyPem, listDynamicStorages: () => Promise.resolve([]), log: silentLogger,
    });
    // The shipped registration, pointed at this server with the test's CA in place of cert-manager's.
    const shipped = parseAllDocuments(await readFile(path.join(repoRoot, 'daemonset/webhook.yaml'), 'utf8'))
      .map((d) => d.toJS() as k8s.V1ValidatingWebhookConfiguration & { kind?: string })
      .find((o) => o.kind === 'ValidatingWebhookConfiguration');
    assert.ok(shipped, 'daemonset/webhook.yaml registers a ValidatingWebhookConfiguration');
    const webhooks = shipped.webhooks ?? [];
    for (const hook of webhooks) {
      hook.clientConfig = { url: `https://127.0.0.1:${server.port}${hook.clientConfig.service?.path ?? ''}`, caBundle: Buffer.from(tls.caPem).toString('base64') };
    }
    assert.deepEqual(webhooks.map((h) => h.failurePolicy), ['Ignore']);
    const admission = plane.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission.createValidatingWebhookConfiguration({ body: { metadata: { name: 'cnpg-dynamic-storage' }, webhooks } });
    // The API server picks the registration up within a moment.
    await eventually(async () => { await refusal(custom.createNamespacedCustomObject({ ...ds, body: policy('probe', { schedule: 'never' }) })); }, { timeoutMs: 30_000 });
  });

  after(async function () {
    this.timeout(60_000);
    await server?.close();
    await plane.stop();
  });

  it('refuses an invalid cron schedule with the messages of kubectl cnpg storage validate', async () => {
    const body = policy('bad-cron', { schedule: '0 25 * * *' });
    const { code, message } = await refusal(custom.createNamespacedCustomObject({ ...ds, body }));
    const expected = offlineMessages(body);
    assert.deepEqual(expected, ['spec.storage.maintenanceWindow.schedule: Invalid value: "0 25 * * *": Constraint error, got value 25 expected range 0-23']);
    assert.equal(code, 422);
    assert.equal(message, `admission webhook "dynamicstorage.dynamicstorage.cnpg.io" denied the request: DynamicStorage "bad-cron" is invalid: ${expected.join('; ')}`);
  });

  it('refuses an unknown time zone on update, and lets a policy stored before the webhook be edited', async () => {
    const stored = await custom.getNamespacedCustomObject({ ...ds, name: 'stored' }) as { metadata: { resourceVersion: string } };
    // Raising the limit of a policy whose time zone was already unknown: not a new problem, allowed.
    const raised = policy('stored', { timezone: 'Mars/Olympus_Mons' }, '20Gi');
    await custom.replaceNamespacedCustomObject({ ...ds, name: 'stored', body: { ...raised, metadata: { name: 'stored', resourceVersion: stored.metadata.resourceVersion } } });
    const body = policy('stored', { timezone: 'Moon/Tranquility' }, '20Gi');
    const current = await custom.getNamespacedCustomObject({ ...ds, name: 'stored' }) as { metadata: { resourceVersion: string } };
    const { message } = await refusal(custom.replaceNamespacedCustomObject({ ...ds, name: 'stored', body: { ...body, metadata: { name: 'stored', resourceVersion: current.metadata.resourceVersion } } }));
    assert.match(message, new RegExp(`is invalid: ${offlineMessages(body).join('; ').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    assert.match(message, /"Moon\/Tranquility" is not an IANA time zone/);
  });

  it('accepts a valid policy', async () => {
    await custom.createNamespacedCustomObject({ ...ds, body: policy('good', { schedule: '0 3 * * 0', timezone: 'Europe/Berlin' }) });
  });

  it('blocks nobody when the webhook cannot answer (failurePolicy Ignore): the controller checks the policy again', async () => {
    await server?.close();
    server = undefined;
    await custom.createNamespacedCustomObject({ ...ds, body: policy('while-down', { schedule: '0 25 * * *' }) });
  });
});

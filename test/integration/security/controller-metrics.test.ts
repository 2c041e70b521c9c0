/**
 * The controller's /metrics, run as its ServiceAccount with the shipped RBAC against a real API server: authenticated
 * like the agents' (a token for the agents' audience, TokenReview, `get /metrics` by SubjectAccessReview, failed
 * attempts answered 429), while the health probes stay open for the kubelet.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { agentAudience } from '../../../controller/agent-token.ts';
import { startController, type RunningController } from '../../../controller/controller.ts';
import { silentLogger } from '../../harness/log.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { applyCrds } from '../../harness/crds.ts';
import { repoRoot } from '../../stack/index.ts';

const namespace = 'cnpg-system';
const serviceAccount = 'cnpg-dynamic-storage-controller';

async function createAll(kc: k8s.KubeConfig, file: string): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const doc of parseAllDocuments(await readFile(path.join(repoRoot, file), 'utf8'))) {
    const obj = doc.toJS() as k8s.KubernetesObject | null;
    if (obj) await client.create(obj);
  }
}

describe('controller /metrics authentication', function () {
  let plane: ControlPlane;
  let controller: RunningController;
  let base: string;

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    for (const file of ['daemonset/serviceaccount.yaml', 'daemonset/rbac-callers.yaml', 'daemonset/rbac-controller.yaml']) await createAll(plane.kubeConfig, file);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } }).catch(() => undefined);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'stranger' } } });
    controller = await startController(await plane.kubeConfigFor(namespace, serviceAccount), {
      identity: 'test', leaderElection: { enabled: false, namespace, name: 'unused', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      watchNamespace: '', workers: 1, resyncMs: 30_000, busyRequeueMs: 500, readingIntervalMs: 5_000,
      agents: { namespace, labelSelector: 'app=none', port: 1, scheme: 'http', token: () => '' },
      listen: { host: '127.0.0.1', port: 0 },
      metricsAuth: { tokenAudiences: [agentAudience] },
    }, silentLogger);
    base = `http://127.0.0.1:${controller.address?.port ?? 0}`;
  });

  after(async function () {
    this.timeout(60_000);
    await controller.stop();
    await plane.stop();
  });

  const get = async (pathname: string, token?: string): Promise<{ status: number; text: string; headers: Headers }> => {
    const response = await fetch(`${base}${pathname}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, text: await response.text(), headers: response.headers };
  };

  it('answers a caller allowed `get /metrics` with a token for the agents\' audience', async () => {
    const token = await plane.tokenFor(namespace, serviceAccount, 600, [agentAudience]);
    const answer = await get('/metrics', token);
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.text, /^cnpg_dynamic_storage_controller_leader 1$/m);
  });

  it('refuses no token (401), a token for the API server (401) and a caller RBAC does not allow (403); the probes stay open', async () => {
    const none = await get('/metrics');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="cnpg-dynamic-storage-controller"');
    assert.doesNotMatch(none.text, /cnpg_dynamic_storage_/);
    const apiServerToken = await plane.tokenFor(namespace, serviceAccount, 600);
    assert.equal((await get('/metrics', apiServerToken)).status, 401, 'a token the controller could replay against the API server is not accepted');
    const stranger = await get('/metrics', await plane.tokenFor(namespace, 'stranger', 600, [agentAudience]));
    assert.equal(stranger.status, 403);
    assert.match(stranger.text, /system:serviceaccount:cnpg-system:stranger may not get \/metrics/);
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
  });

  it('answers a token guesser 429 after 20 failures', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 25; i += 1) statuses.push((await get('/metrics', `guess-${i}`)).status);
    assert.ok(statuses.includes(429), statuses.join(','));
    assert.ok(statuses.slice(-3).every((s) => s === 429), statuses.join(','));
  });
});

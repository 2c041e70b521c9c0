/**
 * The storage sizing summary on the CloudNativePG Cluster, against a real API server with CloudNativePG's own Cluster CRD
 * (v1.30.0, from its Go module): the condition DynamicStorageReady is written beside the operator's conditions, comes back
 * after a foreign status write that drops it, and is not rewritten while nothing changes; the annotation holds the same
 * summary. The CNPG-I plugin answers SetStatusInCluster over mutual TLS with the client certificate the controller keeps
 * for the operator, from every replica (the one that does not lead too), and refuses a client without it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { applyCrds } from '../../harness/crds.ts';
import { eventually } from '../../harness/eventually.ts';
import { startController, type ControllerConfig, type RunningController } from '../../../controller/controller.ts';
import { clusterConditionType, clusterStatusAnnotation, clusterSummary, readStatusAnnotation, storageSizingBlock } from '../../../controller/cluster-status.ts';
import { pluginName, protoFiles, protoLoaderOptions } from '../../../controller/cnpgi/server.ts';
import { silentLogger } from '../../harness/log.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const namespace = 'default';
const clusterApi = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace };
const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace };
const serviceName = 'cnpg-dynamic-storage-plugin';
const secrets = { namespace, serviceName, serverSecret: 'plugin-server', clientSecret: 'plugin-client' };

interface ClusterObject {
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
  status?: { conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[] };
}

/** CloudNativePG's own Cluster CRD, from the module the real node builds its operator from (hack/cnpg/versions.env). */
async function cnpgClusterCrdFile(): Promise<string> {
  const env = await readFile(path.join(repoRoot, 'hack/cnpg/versions.env'), 'utf8');
  const version = /CNPG_VERSION:-(v[0-9.]+)/.exec(env)?.[1] ?? 'v1.30.0';
  const { stdout } = await run('go', ['mod', 'download', '-json', `github.com/cloudnative-pg/cloudnative-pg@${version}`], { cwd: repoRoot, maxBuffer: 4 * 1024 * 1024 });
  const dir = (JSON.parse(stdout) as { Dir: string }).Dir;
  return path.join(dir, 'config/crd/bases/postgresql.cnpg.io_clusters.yaml');
}

function controllerConfig(identity: string, leaderElection: boolean): ControllerConfig {
  return {
    identity, leaderElection: { enabled: leaderElection, namespace, name: 'cluster-status-test', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
    watchNamespace: namespace, workers: 1, resyncMs: 1_000, busyRequeueMs: 300, readingIntervalMs: 1_000,
    agents: { namespace, labelSelector: 'app=none', port: 1, scheme: 'http', token: () => '' },
    plugin: { host: '127.0.0.1', port: 0, secrets },
    clusterStatus: { condition: true, annotation: true },
  };
}

describe('storage sizing status on the CloudNativePG Cluster (real API server, CloudNativePG v1.30 Cluster CRD)', function () {
  let plane: ControlPlane;
  let leader: RunningController;
  let follower: RunningController;
  /** What was started, stopped in reverse order also after a failed start. */
  const started: { stop(): Promise<void> }[] = [];
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;
  const cnpgConditions = [
    { type: 'Ready', status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready', lastTransitionTime: '2026-03-01T00:00:00Z' },
    { type: 'ContinuousArchiving', status: 'True', reason: 'ContinuousArchivingSuccess', message: 'Continuous archiving is working', lastTransitionTime: '2026-03-01T00:00:00Z' },
  ];

  before(async function () {
    this.timeout(240_000);
    plane = await startControlPlane({ controllerManager: false });
    started.push(plane);
    await applyCrds(plane, [path.join(repoRoot, 'crds/dynamicstorage.cnpg.io_dynamicstorages.yaml')]);
    // Too large for a client-side `kubectl apply` (its last-applied annotation), and the API client's model would drop
    // its x-kubernetes-* schema keys: `kubectl create`.
    await run(path.join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfigPath, 'create', '-f', await cnpgClusterCrdFile()]);
    const ext = plane.kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
    await eventually(async () => {
      const crd = await ext.readCustomResourceDefinition({ name: 'clusters.postgresql.cnpg.io' });
      assert.equal(crd.status?.conditions?.find((c) => c.type === 'Established')?.status, 'True');
    }, { timeoutMs: 60_000 });
    custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await custom.createNamespacedCustomObject({
      ...clusterApi,
      body: { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'pg' }, spec: { instances: 2, storage: { size: '2Gi' }, plugins: [{ name: pluginName }] } },
    });
    const created = await custom.getNamespacedCustomObject({ ...clusterApi, name: 'pg' }) as ClusterObject;
    await custom.replaceNamespacedCustomObjectStatus({ ...clusterApi, name: 'pg', body: { ...created, status: { instances: 2, conditions: cnpgConditions } } });
    await custom.createNamespacedCustomObject({
      ...dsApi,
      body: { apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' }, spec: { cluster: { name: 'pg' }, storage: { request: '2Gi', limit: '10Gi' } } },
    });
    leader = await startController(plane.kubeConfig, controllerConfig('leader', true), silentLogger);
    started.push(leader);
    await eventually(() => { assert.ok(leader.isLeader()); }, { timeoutMs: 30_000 });
    follower = await startController(plane.kubeConfig, controllerConfig('follower', true), silentLogger);
    started.push(follower);
  });

  after(async function () {
    this.timeout(60_000);
    for (const running of started.reverse()) await running.stop();
  });

  const getCluster = async (): Promise<ClusterObject> => await custom.getNamespacedCustomObject({ ...clusterApi, name: 'pg' }) as ClusterObject;
  const getDs = async (): Promise<DynamicStorage> => await custom.getNamespacedCustomObject({ ...dsApi, name: 'pg' }) as DynamicStorage;

  async function settled(): Promise<ClusterObject> {
    return await eventually(async () => {
      const [cluster, ds] = [await getCluster(), await getDs()];
      const summary = clusterSummary('pg', ds.status);
      const ours = cluster.status?.conditions?.find((c) => c.type === clusterConditionType);
      assert.deepEqual([ours?.status, ours?.reason, ours?.message], [summary.status, summary.reason, summary.message]);
      assert.equal(readStatusAnnotation(cluster.metadata.annotations)?.revision, summary.revision);
      return cluster;
    }, { timeoutMs: 30_000, intervalMs: 200 });
  }

  it('writes the condition beside the operator\'s, and the same summary in the annotation', async function () {
    this.timeout(60_000);
    const cluster = await settled();
    const conditions = cluster.status?.conditions ?? [];
    assert.deepEqual(conditions.map((c) => c.type), ['Ready', 'ContinuousArchiving', clusterConditionType], 'the operator\'s conditions are untouched');
    assert.deepEqual(conditions.slice(0, 2), cnpgConditions);
    const ours = conditions.find((c) => c.type === clusterConditionType);
    assert.match(ours?.message ?? '', /^data: /);
    const annotation = readStatusAnnotation(cluster.metadata.annotations);
    assert.deepEqual([annotation?.reason, annotation?.message], [ours?.reason, ours?.message]);
  });

  it('does not write again while nothing changes (no churn)', async function () {
    this.timeout(60_000);
    const before = (await settled()).metadata.resourceVersion;
    await new Promise((resolve) => setTimeout(resolve, 4_000)); // several resyncs of 1 s
    assert.equal((await getCluster()).metadata.resourceVersion, before);
  });

  it('writes the condition again after a foreign status write that rewrote the conditions without it', async function () {
    this.timeout(60_000);
    await settled();
    // What an operator's status Update from a copy that predates our condition does: the whole list replaced.
    const current = await getCluster();
    const rewritten = cnpgConditions.map((c) => (c.type === 'Ready' ? { ...c, status: 'False', reason: 'ClusterIsNotReady', message: 'Cluster Is Not Ready' } : c));
    await custom.replaceNamespacedCustomObjectStatus({ ...clusterApi, name: 'pg', body: { ...current, status: { ...current.status, conditions: rewritten } } });
    const healed = await settled();
    const healedConditions = healed.status?.conditions ?? [];
    assert.deepEqual(healedConditions.slice(0, 2), rewritten, 'the operator\'s new conditions are kept as it wrote them');
    assert.equal(healedConditions.filter((c) => c.type === clusterConditionType).length, 1);
    assert.ok(readStatusAnnotation(healed.metadata.annotations), 'the annotation was never lost');
    // A foreign write that keeps ours (meta.SetStatusCondition on a fresh copy) changes nothing of ours.
    const fresh = await getCluster();
    const ours = fresh.status?.conditions?.find((c) => c.type === clusterConditionType);
    await custom.replaceNamespacedCustomObjectStatus({ ...clusterApi, name: 'pg', body: { ...fresh, status: { ...fresh.status, conditions: [...cnpgConditions, ...(ours ? [ours] : [])] } } });
    const after = await settled();
    assert.deepEqual(after.status?.conditions?.find((c) => c.type === clusterConditionType), ours);
  });

  describe('the CNPG-I plugin', () => {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFiles, protoLoaderOptions)) as unknown as {
      cnpgi: { identity: { v1: { Identity: grpc.ServiceClientConstructor } }; operator: { v1: { Operator: grpc.ServiceClientConstructor } } };
    };
    // The operator dials <service>.<namespace>.svc and checks the Service's name in the certificate.
    const channelOptions = { 'grpc.ssl_target_name_override': serviceName, 'grpc.default_authority': serviceName };
    const clients: grpc.Client[] = [];
    after(() => { for (const c of clients) c.close(); });

    function call<T>(client: grpc.Client, method: string, request: object): Promise<T> {
      return new Promise((resolve, reject) => {
        (client as unknown as Record<string, (r: object, o: object, cb: (err: grpc.ServiceError | null, res: T) => void) => void>)[method]?.(request, { deadline: Date.now() + 5_000 }, (err, res) => {
          if (err) reject(err); else resolve(res);
        });
      });
    }

    /** The operator's side: its client certificate and the server's trust from the Secrets the plugin Service names. */
    async function operatorCredentials(): Promise<grpc.ChannelCredentials> {
      const read = async (name: string, key: string): Promise<Buffer> => Buffer.from((await core.readNamespacedSecret({ name, namespace })).data?.[key] ?? '', 'base64');
      return grpc.credentials.createSsl(await read(secrets.serverSecret, 'tls.crt'), await read(secrets.clientSecret, 'tls.key'), await read(secrets.clientSecret, 'tls.crt'));
    }

    it('answers SetStatusInCluster with the compact storageSizing block, from the leader and from a replica that does not lead', async function () {
      this.timeout(60_000);
      assert.ok(leader.isLeader());
      assert.equal(follower.isLeader(), false);
      await settled();
      const credentials = await operatorCredentials();
      const cluster = Buffer.from(JSON.stringify(await getCluster()));
      const expected = storageSizingBlock('pg', (await getDs()).status?.storageSizing);
      assert.ok(expected.storageSizing.data, 'the DynamicStorage has a data volume status');
      for (const replica of [leader, follower]) {
        const target = `127.0.0.1:${replica.pluginPort ?? 0}`;
        const identity = new pkg.cnpgi.identity.v1.Identity(target, credentials, channelOptions);
        const operator = new pkg.cnpgi.operator.v1.Operator(target, credentials, channelOptions);
        clients.push(identity, operator);
        assert.equal((await call<{ name: string }>(identity, 'GetPluginMetadata', {})).name, pluginName);
        assert.deepEqual(await call(operator, 'GetCapabilities', {}), { capabilities: [{ rpc: { type: 'TYPE_SET_STATUS_IN_CLUSTER' }, type: 'rpc' }] });
        const answer = await call<{ json_status: Buffer }>(operator, 'SetStatusInCluster', { cluster });
        assert.deepEqual(JSON.parse(answer.json_status.toString('utf8')), expected);
      }
    });

    it('refuses a client without the client certificate', async function () {
      this.timeout(30_000);
      const serverTrust = Buffer.from((await core.readNamespacedSecret({ name: secrets.serverSecret, namespace })).data?.['tls.crt'] ?? '', 'base64');
      const identity = new pkg.cnpgi.identity.v1.Identity(`127.0.0.1:${leader.pluginPort ?? 0}`, grpc.credentials.createSsl(serverTrust), channelOptions);
      clients.push(identity);
      await assert.rejects(call(identity, 'Probe', {}), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    });

    it('the two replicas share one certificate set, in the Secrets the plugin Service names', async () => {
      const server = await core.readNamespacedSecret({ name: secrets.serverSecret, namespace });
      const client = await core.readNamespacedSecret({ name: secrets.clientSecret, namespace });
      assert.equal(server.type, 'kubernetes.io/tls');
      assert.equal(client.data?.['ca.crt'], server.data?.['ca.crt']);
      assert.ok(clusterStatusAnnotation);
    });
  });
});

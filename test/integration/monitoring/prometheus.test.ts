/**
 * A real Prometheus (Debian's package; hack/ensure-prometheus.sh) scraping the product as `make demo` runs it: a real
 * control plane, simulated AKS nodes, real agents serving HTTPS with the controller's certificate, the real controller.
 *
 * Its scrape configuration is derived from the shipped component (daemonset/monitoring/): each ServiceMonitor endpoint
 * becomes a scrape_config with static targets (the agents' pod IPs, the controller's address) and exactly the monitor's
 * settings — scheme, path, honor_labels, the bearer token file and the TLS CA from the Secret the monitor names, with
 * the name it names. The token is what prometheus-token.yaml would mount: a projected token of the audience it sets,
 * for monitoring/prometheus-k8s, which only the component's RBAC lets in. The alert rules are the PrometheusRule's.
 *
 * Then: the brief's metrics come back from Prometheus's HTTP API with the right labels, every dashboard query and
 * variable returns data, so do the example queries of docs/metrics.md, every rule evaluates without error, and the
 * emergency grow the test caused fires its alert.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { eventually } from '../../harness/eventually.ts';
import {
  dashboardQueries, loadComponent, repoRoot, scrapeConfigs, tokenAudienceFor, variableQueries, type Component, type ScrapeConfig, type SecretKeyRef,
} from '../../harness/monitoring.ts';
import { freePort } from '../../harness/ports.ts';
import { startProcess, type ManagedProcess } from '../../harness/processes.ts';
import { startLocalStack, type LocalStack } from '../../stack/index.ts';
import { closedWindow } from '../../../e2e/support.ts';

const execFileAsync = promisify(execFile);
const namespace = 'db';
const cluster = 'pg';
const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace };
const prometheusAccount = { namespace: 'monitoring', name: 'prometheus-k8s' };

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

interface ApiAnswer<T> {
  status: string;
  data: T;
  error?: string;
}

describe('monitoring: a real Prometheus scraping the product with the shipped monitors', function () {
  this.timeout(600_000);
  let stack: LocalStack | undefined;
  let prometheus: ManagedProcess | undefined;
  let tmp: string | undefined;
  let url = '';
  let component: Component;
  let configs: ScrapeConfig[] = [];

  async function api<T>(route: string, params: Record<string, string> = {}): Promise<T> {
    const response = await fetch(`${url}${route}?${new URLSearchParams(params).toString()}`);
    const answer = await response.json() as ApiAnswer<T>;
    assert.equal(answer.status, 'success', `${route} ${JSON.stringify(params)}: ${answer.error ?? response.status}`);
    return answer.data;
  }

  async function query(expr: string): Promise<Sample[]> {
    const data = await api<{ resultType: string; result: Sample[] }>('/api/v1/query', { query: expr });
    return data.result;
  }

  async function createAll(file: string): Promise<void> {
    const client = k8s.KubernetesObjectApi.makeApiClient(stack?.plane.kubeConfig ?? new k8s.KubeConfig());
    for (const doc of parseAllDocuments(await readFile(path.join(repoRoot, file), 'utf8'))) {
      const obj = doc.toJS() as k8s.KubernetesObject | null;
      if (obj) await client.create(obj);
    }
  }

  /** A Cluster with data, WAL and a tablespace under a DynamicStorage, and an emergency grow of its WAL volumes. */
  async function productAtWork(running: LocalStack): Promise<void> {
    const core = running.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    const custom = running.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const storage = { size: '64Mi', storageClass: 'managed-csi-mib' };
    await running.sim.cnpg.createCluster(namespace, cluster, { instances: 2, storage, walStorage: storage, tablespaces: [{ name: 'analytics', storage }] });
    await running.sim.cnpg.waitForReady(namespace, cluster, 120_000);
    // A closed window: the fill's first readings (it writes in chunks) may not buy planned growth, whatever the load.
    const small = { emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' }, maintenanceWindow: closedWindow() };
    await custom.createNamespacedCustomObject({ ...dsApi, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: cluster },
      spec: {
        cluster: { name: cluster },
        storage: { request: '64Mi', limit: '512Mi', ...small }, walStorage: { request: '64Mi', limit: '256Mi', ...small },
        tablespaces: [{ name: 'analytics', storage: { request: '64Mi', limit: '96Mi', ...small } }],
      },
    } });
    const read = async (): Promise<DynamicStorage> => await custom.getNamespacedCustomObject({ ...dsApi, name: cluster }) as DynamicStorage;
    await eventually(async () => { assert.equal((await read()).status?.storageSizing?.wal?.state, 'Balanced'); }, { timeoutMs: 60_000, intervalMs: 250 });
    await running.sim.workload.fill({ namespace, instance: `${cluster}-2`, volume: 'wal' }, { percent: 97 });
    await eventually(async () => {
      const wal = (await read()).status?.storageSizing?.wal;
      assert.equal(wal?.lastAction?.kind, 'EmergencyGrow');
      assert.equal(wal.lastAction.result, 'Success');
    }, { timeoutMs: 90_000, intervalMs: 250 });
  }

  before(async () => {
    const ensured = await execFileAsync(path.join(repoRoot, 'hack/ensure-prometheus.sh'), []).then(() => '', (err: unknown) => String(err));
    assert.equal(ensured, '', `hack/ensure-prometheus.sh: ${ensured}`);
    component = await loadComponent();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-monitoring-'));
    const dir = tmp;
    stack = await startLocalStack({ nodes: 2, agentTls: true, controller: { resyncMs: 5_000 } });
    const running = stack;
    const core = running.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    // Prometheus's ServiceAccount, let in by the component's RBAC alone (the install grants it nothing).
    await core.createNamespace({ body: { metadata: { name: prometheusAccount.namespace } } });
    await core.createNamespacedServiceAccount({ namespace: prometheusAccount.namespace, body: { metadata: { name: prometheusAccount.name } } });
    await createAll('daemonset/monitoring/rbac.yaml');
    await productAtWork(running);

    // What Kubernetes would mount into Prometheus: the projected token, the Secrets the monitors name.
    const files = new Map<string, string>();
    for (const monitor of component.monitors) {
      for (const endpoint of monitor.spec.endpoints) {
        if (endpoint.bearerTokenFile !== undefined && !files.has(endpoint.bearerTokenFile)) {
          const audience = tokenAudienceFor(component.prometheusPatch, endpoint.bearerTokenFile);
          const file = path.join(dir, `token-${files.size}`);
          await writeFile(file, await running.plane.tokenFor(prometheusAccount.namespace, prometheusAccount.name, 3600, [audience]));
          files.set(endpoint.bearerTokenFile, file);
        }
        const ref = endpoint.tlsConfig?.ca?.secret;
        if (ref) {
          const secret = await core.readNamespacedSecret({ name: ref.name, namespace: monitor.metadata.namespace ?? '' });
          await writeFile(path.join(dir, `${ref.name}-${ref.key}`), Buffer.from(secret.data?.[ref.key] ?? '', 'base64'));
        }
      }
    }
    const controllerAddress = running.controller.address;
    assert.ok(controllerAddress);
    const targets: Record<string, string[]> = {
      'cnpg-dynamic-storage-agent': running.agents.map((a) => new URL(a.url).host),
      'cnpg-dynamic-storage-controller': [`${controllerAddress.host}:${controllerAddress.port}`],
    };
    configs = component.monitors.flatMap((monitor) => scrapeConfigs(component, monitor, {
      targets: targets[monitor.metadata.name] ?? [], interval: '1s',
      tokenFile: (mounted) => files.get(mounted) ?? '',
      secretFile: (ref: SecretKeyRef) => path.join(dir, `${ref.name}-${ref.key}`),
    }));
    assert.equal(configs.length, 2);
    await writeFile(path.join(dir, 'rules.yaml'), stringify(component.rules));
    await writeFile(path.join(dir, 'prometheus.yml'), stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' }, rule_files: [path.join(dir, 'rules.yaml')], scrape_configs: configs,
    }));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    prometheus = startProcess('prometheus', 'prometheus', [
      `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    ], path.join(dir, 'prometheus.log'));
    await eventually(async () => {
      if (prometheus?.exited()) throw new Error(`prometheus exited:\n${await prometheus.tail()}`);
      assert.equal((await fetch(`${url}/-/ready`)).status, 200);
    }, { timeoutMs: 60_000, intervalMs: 250 });
  });

  after(async () => {
    await prometheus?.stop();
    await stack?.stop();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  it('scrapes every agent over HTTPS and the controller, authenticated as the monitors say', async () => {
    const expected = configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets.map((t) => `${c.job_name} ${t}`))).sort();
    assert.equal(expected.length, 3);
    await eventually(async () => {
      const data = await api<{ activeTargets: { labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }[] }>('/api/v1/targets');
      const seen = data.activeTargets.map((t) => `${t.labels.job ?? ''} ${t.labels.instance ?? ''}`).sort();
      assert.deepEqual(seen, expected);
      for (const target of data.activeTargets) assert.equal(target.health, 'up', `${target.scrapeUrl}: ${target.lastError}`);
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.ok(configs.some((c) => c.scheme === 'https' && c.tls_config?.ca_file !== undefined), 'the agents are scraped over HTTPS against their CA');
    // The settings matter: the same ServiceAccount's ordinary token (the API server's audience) is refused.
    const address = stack?.controller.address;
    const ordinary = await stack?.plane.tokenFor(prometheusAccount.namespace, prometheusAccount.name);
    const refused = await fetch(`http://${address?.host ?? ''}:${address?.port ?? 0}/metrics`, { headers: { authorization: `Bearer ${ordinary ?? ''}` } });
    assert.equal(refused.status, 401);
  });

  it('returns the brief\'s metrics with their labels: the instance and volume type of each volume', async () => {
    const instances = [`${cluster}-1`, `${cluster}-2`];
    for (const name of ['cnpg_disk_total_bytes', 'cnpg_disk_used_bytes', 'cnpg_disk_available_bytes', 'cnpg_disk_percent_used']) {
      const samples = await eventually(async () => {
        const result = await query(`${name}{namespace="${namespace}",cluster="${cluster}"}`);
        assert.equal(result.length, 6, `${name}: ${JSON.stringify(result)}`);
        return result;
      }, { timeoutMs: 30_000, intervalMs: 500 });
      const seen = samples.map((s) => `${s.metric.instance ?? ''} ${s.metric.volume_type ?? ''} ${s.metric.tablespace ?? ''}`).sort();
      assert.deepEqual(seen, instances.flatMap((i) => [`${i} data `, `${i} tablespace analytics`, `${i} wal `]).sort(), name);
      for (const s of samples) {
        assert.equal(s.metric.persistentvolumeclaim?.startsWith(s.metric.instance ?? '-'), true, JSON.stringify(s.metric));
        assert.ok(s.metric.node, `${name} has the node`);
        assert.equal(s.metric.job, 'cnpg-dynamic-storage-agent');
        const value = Number(s.value[1]);
        assert.ok(name === 'cnpg_disk_total_bytes' || name === 'cnpg_disk_available_bytes' ? value > 0 : value >= 0, `${name} ${JSON.stringify(s.metric)} = ${s.value[1]}`);
      }
    }
    for (const name of ['cnpg_dynamic_storage_effective_size_bytes', 'cnpg_dynamic_storage_budget_remaining']) {
      const samples = await query(`${name}{namespace="${namespace}",cluster="${cluster}"}`);
      const types = [...new Set(samples.map((s) => `${s.metric.volume_type ?? ''} ${s.metric.tablespace ?? ''}`))].sort();
      assert.deepEqual(types, ['data ', 'tablespace analytics', 'wal '], name);
      for (const s of samples) assert.equal(s.metric.job, 'cnpg-dynamic-storage-controller-metrics');
    }
    const [wal] = await query(`cnpg_dynamic_storage_effective_size_bytes{namespace="${namespace}",cluster="${cluster}",volume_type="wal"}`);
    assert.ok(Number(wal?.value[1]) > 64 * 1024 ** 2, `the WAL volume grew: ${JSON.stringify(wal)}`);
  });

  it('answers every dashboard query and variable with data', async () => {
    const queries = dashboardQueries(component.dashboard);
    assert.ok(queries.length >= 15, `${queries.length} queries`);
    for (const { panel, expr } of queries) {
      await eventually(async () => {
        const result = await query(expr);
        assert.ok(result.length > 0, `${panel}: ${expr} returned nothing`);
      }, { timeoutMs: 90_000, intervalMs: 1_000 });
    }
    for (const variable of variableQueries(component.dashboard)) {
      const values = await api<string[]>(`/api/v1/label/${variable.label}/values`, { 'match[]': variable.selector });
      assert.ok(values.length > 0, `variable ${variable.name}: ${variable.selector}`);
    }
    assert.deepEqual(await api<string[]>('/api/v1/label/cluster/values', { 'match[]': 'cnpg_dynamic_storage_state' }), [cluster]);
  });

  it("answers every example query of docs/metrics.md: without error, and with data unless it filters for trouble", async () => {
    const doc = await readFile(path.join(repoRoot, 'docs/metrics.md'), 'utf8');
    const block = /```promql\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    // A query is the lines between blank lines, after its comment.
    const examples = block.split(/\n\s*\n/).map((paragraph) => ({
      title: paragraph.split('\n').find((line) => line.startsWith('#'))?.replace(/^#\s*/, '') ?? '',
      expr: paragraph.split('\n').filter((line) => !line.trim().startsWith('#')).join('\n').trim(),
    })).filter((example) => example.expr !== '');
    assert.ok(examples.length >= 15, `${examples.length} example queries`);
    for (const { title, expr } of examples) {
      // A comparison with a number keeps only volumes in trouble, and error counters exist once an error happened.
      const mayBeEmpty = /(==|<|>)\s*\d/.test(expr) || /error/.test(expr);
      await eventually(async () => {
        const result = await query(expr);
        if (!mayBeEmpty) assert.ok(result.length > 0, `${title}: ${expr} returned nothing`);
      }, { timeoutMs: 60_000, intervalMs: 1_000 });
    }
    // The emergency grow this test caused is the one the "last hour" example finds.
    const lastHour = examples.find((example) => example.expr.includes('EmergencyGrow'));
    assert.ok(lastHour);
    assert.deepEqual((await query(lastHour.expr)).map((sample) => sample.metric.volume_type), ['wal']);
  });

  it('evaluates every alert rule without error, and fires the emergency-growth alert for the WAL volume', async () => {
    interface Rule { name: string; health: string; lastError?: string; lastEvaluation: string; state: string; alerts: { labels: Record<string, string> }[] }
    const expected = component.rules.groups.flatMap((g) => g.rules.map((r) => r.alert ?? r.record ?? '')).sort();
    await eventually(async () => {
      const data = await api<{ groups: { rules: Rule[] }[] }>('/api/v1/rules');
      const rules = data.groups.flatMap((g) => g.rules);
      assert.deepEqual(rules.map((r) => r.name).sort(), expected);
      for (const rule of rules) {
        assert.ok(!rule.lastEvaluation.startsWith('0001-'), `${rule.name} not evaluated yet`);
        assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError ?? ''}`);
      }
      const emergency = rules.find((r) => r.name === 'CnpgDynamicStorageEmergencyGrowth');
      assert.equal(emergency?.state, 'firing');
      assert.deepEqual(emergency.alerts.map((a) => `${a.labels.namespace ?? ''}/${a.labels.cluster ?? ''} ${a.labels.volume_type ?? ''}`), [`${namespace}/${cluster} wal`]);
      // A healthy product fires nothing else.
      assert.deepEqual(rules.filter((r) => r.state !== 'inactive').map((r) => r.name), ['CnpgDynamicStorageEmergencyGrowth']);
    }, { timeoutMs: 30_000, intervalMs: 500 });
  });
});

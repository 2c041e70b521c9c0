/**
 * The monitoring component (daemonset/monitoring/) against the product: the ServiceMonitors authenticate as the
 * endpoints require (the audience, the CA Secret and the name in the agents' certificate are the ones the shipped
 * manifests configure), every metric the alerts and the dashboard use is one the product exports, every alert has a
 * promtool test and a runbook, and the dashboard is provisioned for Grafana's sidecar. promtool and a real Prometheus
 * run in test/integration/monitoring/.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { agentConfigFromEnv } from '../../../agent/config.ts';
import { createAgentMetrics } from '../../../agent/metrics.ts';
import { controllerConfigFromEnv } from '../../../controller/config.ts';
import { createControllerMetrics } from '../../../controller/metrics.ts';
import {
  alerts, dashboardQueries, expandVariables, loadComponent, productMetricNames, repoRoot, scrapeConfigs, selectedService, tokenAudienceFor,
  variableQueries, type Component, type ServiceMonitor,
} from '../../harness/monitoring.ts';

/** The `value:` environment of a container in one of the install's manifests. */
async function manifestEnv(file: string, kind: string): Promise<Record<string, string>> {
  const docs = parseAllDocuments(await readFile(path.join(repoRoot, file), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } } });
  const workload = docs.find((d) => d.kind === kind);
  assert.ok(workload, `${file} has a ${kind}`);
  const env: Record<string, string> = {};
  for (const e of workload.spec.template.spec.containers[0]?.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

function exportedNames(): Set<string> {
  const agent = createAgentMetrics({ readings: () => [], lastPassAt: undefined, streamClients: () => 0 }, { processMetrics: false });
  const controller = createControllerMetrics();
  return new Set([...agent.familyNames, ...controller.registry.getMetricsAsArray().map((m) => m.name)]);
}

function monitor(component: Component, name: string): ServiceMonitor {
  const found = component.monitors.find((m) => m.metadata.name === name);
  assert.ok(found, `ServiceMonitor ${name}`);
  return found;
}

describe('monitoring component', () => {
  let component: Component;
  before(async () => { component = await loadComponent(); });

  it('is a kustomize Component whose objects all name their namespace (a component does not take the install\'s)', () => {
    assert.equal(component.kustomization.kind, 'Component');
    for (const object of component.objects) {
      if (object.kind.startsWith('Cluster')) continue;
      assert.equal(object.metadata.namespace, 'cnpg-system', `${object.kind} ${object.metadata.name}`);
    }
    for (const generator of component.kustomization.configMapGenerator) assert.equal(generator.namespace, 'cnpg-system');
  });

  it('scrapes the agents over HTTPS with the CA and the name the controller puts in their certificate, and the audience they accept', async () => {
    const controller = controllerConfigFromEnv({ POD_NAMESPACE: 'cnpg-system', ...await manifestEnv('daemonset/controller.yaml', 'Deployment') });
    const agent = agentConfigFromEnv({ NODE_NAME: 'node', ...await manifestEnv('daemonset/daemonset.yaml', 'DaemonSet') });
    const agents = monitor(component, 'cnpg-dynamic-storage-agent');
    const [endpoint] = agents.spec.endpoints;
    assert.ok(endpoint);
    assert.equal(endpoint.scheme, 'https');
    assert.equal(agent.tls === undefined, false, 'the DaemonSet serves HTTPS');
    assert.deepEqual(endpoint.tlsConfig?.ca?.secret, { name: controller.agents.tlsSecret?.name, key: 'ca.crt' });
    assert.equal(endpoint.tlsConfig.serverName, controller.agents.tlsServerName);
    assert.equal(selectedService(component, agents).metadata.name, 'cnpg-dynamic-storage-agent');
    assert.ok(endpoint.bearerTokenFile);
    assert.deepEqual(agent.tokenAudiences, [tokenAudienceFor(component.prometheusPatch, endpoint.bearerTokenFile)]);
  });

  it('scrapes the controller over HTTP with a token of the audience its /metrics accepts', async () => {
    const controller = controllerConfigFromEnv({ POD_NAMESPACE: 'cnpg-system', ...await manifestEnv('daemonset/controller.yaml', 'Deployment') });
    const controllers = monitor(component, 'cnpg-dynamic-storage-controller');
    const [endpoint] = controllers.spec.endpoints;
    assert.ok(endpoint?.bearerTokenFile);
    assert.equal(endpoint.scheme, 'http');
    assert.equal(selectedService(component, controllers).metadata.name, 'cnpg-dynamic-storage-controller-metrics');
    assert.deepEqual(controller.metricsAuth?.tokenAudiences, [tokenAudienceFor(component.prometheusPatch, endpoint.bearerTokenFile)]);
  });

  it('keeps the metrics\' own namespace and instance labels (honor_labels) and translates to a scrape configuration', () => {
    const agents = monitor(component, 'cnpg-dynamic-storage-agent');
    assert.deepEqual(scrapeConfigs(component, agents, {
      targets: ['127.0.0.2:9100'], interval: '1s', tokenFile: (p) => `/tmp${p}`, secretFile: (ref) => `/tmp/${ref.name}/${ref.key}`,
    }), [{
      job_name: 'cnpg-dynamic-storage-agent', scheme: 'https', metrics_path: '/metrics', honor_labels: true, scrape_interval: '1s',
      authorization: { type: 'Bearer', credentials_file: '/tmp/var/run/secrets/cnpg-dynamic-storage/token' },
      tls_config: { ca_file: '/tmp/cnpg-dynamic-storage-agent-tls/ca.crt', server_name: 'cnpg-dynamic-storage-agent.cnpg-system.svc' },
      static_configs: [{ targets: ['127.0.0.2:9100'] }],
    }]);
  });

  it('grants Prometheus `get /metrics`, the non-resource URL the endpoints\' SubjectAccessReview asks about', async () => {
    const binding = component.objects.find((o) => o.kind === 'ClusterRoleBinding') as unknown as { roleRef: { name: string }; subjects: { name: string; namespace: string }[] } | undefined;
    assert.ok(binding);
    assert.deepEqual(binding.subjects.map((s) => `${s.namespace}/${s.name}`), ['monitoring/prometheus-k8s']);
    const roles = parseAllDocuments(await readFile(path.join(repoRoot, 'daemonset/rbac-callers.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; rules?: unknown[] });
    const role = roles.find((r) => r.kind === 'ClusterRole' && r.metadata.name === binding.roleRef.name);
    assert.deepEqual(role?.rules, [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
  });

  it('alerts and charts only metrics the product exports', () => {
    const exported = exportedNames();
    const used = [...alerts(component.rules).map((r) => r.expr), ...dashboardQueries(component.dashboard).map((q) => q.expr)];
    const names = new Set(used.flatMap(productMetricNames));
    assert.ok(names.size >= 15, `${names.size} metrics used`);
    for (const name of names) assert.ok(exported.has(name), `${name} is not exported by the agent or the controller`);
  });

  it('has a promtool test and a runbook in docs/monitoring.md for every alert, and links it', async () => {
    const tests = parse(await readFile(path.join(repoRoot, 'test/integration/monitoring/alerts.test.yaml'), 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] };
    const firing = new Set(tests.tests.flatMap((t) => t.alert_rule_test ?? []).filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname));
    const runbooks = await readFile(path.join(repoRoot, 'docs/monitoring.md'), 'utf8');
    for (const rule of alerts(component.rules)) {
      const name = rule.alert ?? '';
      assert.ok(firing.has(name), `${name}: no promtool test where it fires`);
      assert.match(runbooks, new RegExp(`^### ${name}$`, 'm'), `${name}: no runbook section`);
      assert.equal(rule.annotations?.runbook, `docs/monitoring.md#${name.toLowerCase()}`);
      assert.ok(['warning', 'critical'].includes(rule.labels?.severity ?? ''), `${name}: severity`);
    }
  });

  it('ships the dashboard for Grafana\'s sidecar, every panel on the chosen data source, every variable a label_values query', () => {
    const [generator] = component.kustomization.configMapGenerator;
    assert.equal(generator?.options?.labels?.grafana_dashboard, '1');
    assert.deepEqual(generator.files, ['cnpg-dynamic-storage.json=dashboard.json']);
    const panels = component.dashboard.panels.filter((p) => p.type !== 'row');
    for (const panel of panels) {
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, panel.title);
      assert.ok((panel.targets ?? []).length > 0, panel.title);
    }
    assert.deepEqual(variableQueries(component.dashboard).map((v) => v.label), ['namespace', 'cluster', 'volume_type']);
    assert.equal(expandVariables('x{a=~"$namespace",b=~"${cluster}"}[$__rate_interval]'), 'x{a=~".*",b=~".*"}[1m]');
  });
});

/**
 * The Helm chart (charts/cnpg-dynamic-storage/): `helm lint`; its objects equal the kustomize install's (daemonset/ and
 * crds/, with and without the monitoring and cert-manager components) so neither can change without the other; values
 * land where they should; and every variant passes `kubectl apply --dry-run=server` against a real API server, with
 * minimal CRDs of the Prometheus Operator and cert-manager installed first.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { applyCrds } from '../../harness/crds.ts';
import { controlPlaneBinDir, startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import {
  chartDir, helm, helmBinary, helmTemplate, installDrift, installNamespace, kustomizeBuild, objectKey, parseObjects,
  repoRoot, setArgs, type K8sObject,
} from '../../harness/helm.ts';

const run = promisify(execFile);
const here = path.dirname(new URL(import.meta.url).pathname);

type Values = Readonly<Record<string, string>>;

const monitoringOn: Values = { 'monitoring.enabled': 'true' };
const certManagerOn: Values = { 'webhook.certSource': 'cert-manager' };

/** Each chart configuration and the kustomize components that install the same. */
const variants: readonly { name: string; values: Values; components: readonly string[] }[] = [
  { name: 'default values', values: {}, components: [] },
  { name: 'monitoring on', values: monitoringOn, components: ['monitoring'] },
  { name: 'cert-manager certificate', values: certManagerOn, components: ['cert-manager'] },
  { name: 'monitoring and cert-manager', values: { ...monitoringOn, ...certManagerOn }, components: ['monitoring', 'cert-manager'] },
];

async function crdObjects(): Promise<K8sObject[]> {
  return parseObjects(await readFile(path.join(repoRoot, 'crds/dynamicstorage.cnpg.io_dynamicstorages.yaml'), 'utf8'));
}

function find(objects: readonly K8sObject[], kind: string, name: string): Record<string, unknown> {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} is rendered`);
  return o;
}

interface Container {
  image: string;
  imagePullPolicy: string;
  env: { name: string; value?: string }[];
  resources: unknown;
}

function container(objects: readonly K8sObject[], kind: string, name: string): Container {
  const o = find(objects, kind, name) as { spec: { replicas?: number; template: { spec: { containers: Container[] } } } };
  const c = o.spec.template.spec.containers[0];
  assert.ok(c);
  return c;
}

const envValue = (c: Container, name: string): string | undefined => c.env.find((e) => e.name === name)?.value;

describe('Helm chart', function () {
  let helmBin: string;
  let kubectl: string;

  before(async function () {
    this.timeout(1_800_000); // a cold build of helm from its module
    helmBin = await helmBinary();
    kubectl = path.join(await controlPlaneBinDir(), 'kubectl');
  });

  describe('helm lint', () => {
    for (const values of [{}, { ...monitoringOn, ...certManagerOn }, { 'webhook.enabled': 'false', 'networkPolicy.enabled': 'false' }]) {
      it(`passes with ${JSON.stringify(values)}`, async () => {
        const out = await helm(helmBin, ['lint', '--strict', chartDir, '--namespace', installNamespace, ...setArgs(values)]);
        assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      });
    }

    it('has the product\'s version as its appVersion (package.json)', async () => {
      const chart = parse(await readFile(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion: string };
      const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
      assert.equal(chart.appVersion, pkg.version);
    });

    it('refuses an unknown certificate source', async () => {
      await assert.rejects(helmTemplate(helmBin, { 'webhook.certSource': 'vault' }), /webhook\.certSource: "vault" must be secret or cert-manager/);
    });
  });

  describe('equals the kustomize install', () => {
    it('ships crds/ unchanged', async () => {
      const name = 'dynamicstorage.cnpg.io_dynamicstorages.yaml';
      assert.equal(await readFile(path.join(chartDir, 'crds', name), 'utf8'), await readFile(path.join(repoRoot, 'crds', name), 'utf8'));
    });

    for (const v of variants) {
      it(`${v.name}: the same objects as kubectl kustomize daemonset/${v.components.map((c) => ` + ${c}/`).join('')} and crds/`, async () => {
        const chart = parseObjects(await helmTemplate(helmBin, v.values));
        const kustomize = [...await crdObjects(), ...parseObjects(await kustomizeBuild(kubectl, v.components))];
        assert.deepEqual(installDrift(chart, kustomize), []);
        assert.equal(chart.length, kustomize.length);
      });
    }

    it('reports one changed field of a manifest as drift', async () => {
      const chart = parseObjects(await helmTemplate(helmBin));
      const kustomize = [...await crdObjects(), ...parseObjects(await kustomizeBuild(kubectl))];
      const deployment = kustomize.find((o) => o.kind === 'Deployment') as unknown as { spec: { replicas: number } };
      deployment.spec.replicas = 3;
      assert.deepEqual(installDrift(chart, kustomize), [
        'apps/v1/Deployment/cnpg-system/cnpg-dynamic-storage-controller spec.replicas: 2 != 3',
      ]);
    });

    it('copies the monitoring component\'s alerts and dashboard unchanged', async () => {
      const rule = parse(await readFile(path.join(repoRoot, 'daemonset/monitoring/prometheusrule.yaml'), 'utf8')) as { spec: unknown };
      assert.deepEqual(parse(await readFile(path.join(chartDir, 'files/alerts.yaml'), 'utf8')), rule.spec);
      assert.equal(await readFile(path.join(chartDir, 'files/dashboard.json'), 'utf8'), await readFile(path.join(repoRoot, 'daemonset/monitoring/dashboard.json'), 'utf8'));
    });
  });

  describe('values', () => {
    it('sets images, pull policies, resources, the probe interval, log levels and replicas', async () => {
      const resources = { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '512Mi' } };
      const objects = parseObjects(await helmTemplate(helmBin, {
        'agent.image.repository': 'registry.example/agent', 'agent.image.tag': '9.9.9', 'agent.image.pullPolicy': 'Always',
        'agent.probeInterval': '5s', 'agent.logLevel': 'debug',
        'agent.resources.requests.cpu': '50m', 'agent.resources.requests.memory': '64Mi', 'agent.resources.limits.memory': '512Mi',
        'controller.image.repository': 'registry.example/controller', 'controller.image.pullPolicy': 'Never',
        'controller.replicas': '3', 'controller.logLevel': 'warn',
      }));
      const agent = container(objects, 'DaemonSet', 'cnpg-dynamic-storage-agent');
      assert.equal(agent.image, 'registry.example/agent:9.9.9');
      assert.equal(agent.imagePullPolicy, 'Always');
      assert.equal(envValue(agent, 'PROBE_INTERVAL'), '5s');
      assert.equal(envValue(agent, 'LOG_LEVEL'), 'debug');
      assert.deepEqual(agent.resources, resources);
      const controller = container(objects, 'Deployment', 'cnpg-dynamic-storage-controller');
      assert.equal(controller.image, 'registry.example/controller:0.1.0', 'the tag defaults to appVersion');
      assert.equal(controller.imagePullPolicy, 'Never');
      assert.equal(envValue(controller, 'LOG_LEVEL'), 'warn');
      assert.equal((find(objects, 'Deployment', 'cnpg-dynamic-storage-controller') as { spec: { replicas: number } }).spec.replicas, 3);
    });

    it('webhook.enabled false: no webhook objects and the controller told so', async () => {
      const objects = parseObjects(await helmTemplate(helmBin, { 'webhook.enabled': 'false' }));
      const kinds = objects.map((o) => o.kind);
      assert.ok(!kinds.includes('MutatingWebhookConfiguration') && !kinds.includes('ValidatingWebhookConfiguration'));
      assert.ok(!objects.some((o) => o.metadata.name === 'cnpg-dynamic-storage-webhook'));
      assert.equal(envValue(container(objects, 'Deployment', 'cnpg-dynamic-storage-controller'), 'WEBHOOK_CERT_SOURCE'), 'off');
    });

    it('a cert-manager issuer of the user\'s: no self-signed Issuer, the Certificate names theirs', async () => {
      const objects = parseObjects(await helmTemplate(helmBin, {
        ...certManagerOn, 'webhook.certManager.issuerRef.name': 'corp-ca', 'webhook.certManager.issuerRef.kind': 'ClusterIssuer',
      }));
      assert.ok(!objects.some((o) => o.kind === 'Issuer'));
      const cert = find(objects, 'Certificate', 'cnpg-dynamic-storage-webhook') as { spec: { issuerRef: unknown } };
      assert.deepEqual(cert.spec.issuerRef, { name: 'corp-ca', kind: 'ClusterIssuer' });
    });

    it('monitoring.labels: on the ServiceMonitors and the PrometheusRule, for a Prometheus that selects by label', async () => {
      const objects = parseObjects(await helmTemplate(helmBin, { ...monitoringOn, 'monitoring.labels.release': 'kps' }));
      const labelled = objects.filter((o) => o.metadata.labels?.release === 'kps').map((o) => `${o.kind}/${o.metadata.name}`).sort();
      assert.deepEqual(labelled, [
        'PrometheusRule/cnpg-dynamic-storage', 'ServiceMonitor/cnpg-dynamic-storage-agent', 'ServiceMonitor/cnpg-dynamic-storage-controller',
      ]);
    });

    it('another namespace: every namespaced object and every reference follows the release', async () => {
      const text = await helm(helmBin, ['template', 'x', chartDir, '--namespace', 'storage', ...setArgs({ ...monitoringOn, ...certManagerOn })]);
      assert.doesNotMatch(text, /cnpg-system/);
      const objects = parseObjects(text);
      const namespaced = objects.filter((o) => o.metadata.namespace !== undefined);
      assert.ok(namespaced.length > 10);
      assert.deepEqual([...new Set(namespaced.map((o) => o.metadata.namespace))], ['storage']);
    });
  });

  describe('kubectl apply --dry-run=server', function () {
    let plane: ControlPlane | undefined;
    let kubeconfigPath = '';
    let kubeConfig: k8s.KubeConfig;

    before(async function () {
      this.timeout(180_000);
      plane = await startControlPlane({ controllerManager: false });
      kubeconfigPath = plane.kubeconfigPath;
      kubeConfig = plane.kubeConfig;
      // The kinds the optional parts create, from their real API groups and versions with an open schema: enough for
      // the API server to accept and dry-run them (their fields are not checked against the real projects' schemas).
      await applyCrds(plane, [path.join(here, 'third-party-crds.yaml')]);
      await kubeConfig.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: installNamespace } } });
    });

    after(async function () {
      this.timeout(60_000);
      await plane?.stop();
    });

    const dryRunCases: readonly Values[] = [
      {}, { ...monitoringOn, ...certManagerOn }, { 'webhook.enabled': 'false', 'networkPolicy.enabled': 'false' },
    ];
    for (const values of dryRunCases) {
      it(`accepts every object with ${JSON.stringify(values)}`, async () => {
        const rendered = await helmTemplate(helmBin, values);
        const args = ['--kubeconfig', kubeconfigPath, 'apply', '--dry-run=server', '-f', '-'];
        const child = run(kubectl, args, { maxBuffer: 16 * 1024 * 1024 });
        child.child.stdin?.end(rendered);
        const { stdout } = await child;
        const accepted = stdout.trim().split('\n').filter((l) => l.endsWith('(server dry run)'));
        assert.equal(accepted.length, parseObjects(rendered).length, stdout);
        for (const o of parseObjects(rendered)) {
          assert.ok(accepted.some((l) => l.includes(`/${o.metadata.name} `)), `${objectKey(o)} in:\n${stdout}`);
        }
      });
    }

    it('helm install, upgrade and uninstall as docs/install.md does', async function () {
      this.timeout(180_000);
      const kube = ['--kubeconfig', kubeconfigPath, '--namespace', installNamespace];
      await helm(helmBin, ['install', 'cnpg-dynamic-storage', chartDir, ...kube, '--create-namespace']);
      const apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
      const deployment = await apps.readNamespacedDeployment({ name: 'cnpg-dynamic-storage-controller', namespace: installNamespace });
      assert.equal(deployment.metadata?.labels?.['app.kubernetes.io/managed-by'], 'Helm');
      const ext = kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
      await ext.readCustomResourceDefinition({ name: 'dynamicstorages.dynamicstorage.cnpg.io' });

      await helm(helmBin, ['upgrade', 'cnpg-dynamic-storage', chartDir, ...kube, ...setArgs({ ...monitoringOn, ...certManagerOn, 'controller.replicas': '3' })]);
      const upgraded = await apps.readNamespacedDeployment({ name: 'cnpg-dynamic-storage-controller', namespace: installNamespace });
      assert.equal(upgraded.spec?.replicas, 3);
      const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
      await custom.getNamespacedCustomObject({ group: 'cert-manager.io', version: 'v1', namespace: installNamespace, plural: 'certificates', name: 'cnpg-dynamic-storage-webhook' });

      await helm(helmBin, ['uninstall', 'cnpg-dynamic-storage', ...kube, '--wait']);
      await assert.rejects(apps.readNamespacedDeployment({ name: 'cnpg-dynamic-storage-controller', namespace: installNamespace }), /404|not found/i);
      // Helm never deletes what a chart's crds/ installed: the DynamicStorage objects outlive an uninstall.
      await ext.readCustomResourceDefinition({ name: 'dynamicstorages.dynamicstorage.cnpg.io' });
    });
  });
});

/**
 * The alert rules under `promtool test rules` (Debian's prometheus package; hack/ensure-prometheus.sh installs it):
 * the PrometheusRule's spec is written as a rule file beside alerts.test.yaml, promtool checks it and runs every test.
 * And the component builds with the install (kubectl's kustomize, from the test control plane's binaries) into the
 * objects it promises, the dashboard ConfigMap holding exactly dashboard.json.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { controlPlaneBinDir } from '../../harness/controlplane.ts';
import { loadComponent, repoRoot } from '../../harness/monitoring.ts';

const execFileAsync = promisify(execFile);

async function run(file: string, args: string[], cwd = repoRoot): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, { cwd, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failure = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw err;
    return { code: failure.code, output: (failure.stdout ?? '') + (failure.stderr ?? '') };
  }
}

describe('monitoring: alert rules and the component build', function () {
  this.timeout(300_000);
  let tmp: string | undefined;

  before(async () => {
    const ensured = await run(path.join(repoRoot, 'hack/ensure-prometheus.sh'), []);
    assert.equal(ensured.code, 0, `hack/ensure-prometheus.sh: ${ensured.output}`);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-rules-'));
  });

  after(async () => {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  it('promtool checks the rules and every alert test passes', async () => {
    const dir = tmp ?? '';
    const { rules } = await loadComponent();
    await writeFile(path.join(dir, 'rules.yaml'), stringify(rules));
    await copyFile(path.join(repoRoot, 'test/integration/monitoring/alerts.test.yaml'), path.join(dir, 'alerts.test.yaml'));
    const checked = await run('promtool', ['check', 'rules', 'rules.yaml'], dir);
    assert.equal(checked.code, 0, checked.output);
    const tested = await run('promtool', ['test', 'rules', 'alerts.test.yaml'], dir);
    assert.equal(tested.code, 0, tested.output);
    assert.match(tested.output, /SUCCESS/);
  });

  it('builds with the install into the ServiceMonitors, the rule, the RBAC and the dashboard ConfigMap', async () => {
    // A kustomization of one's own beside the install, as docs/monitoring.md shows (inside the repository, since
    // kustomize takes relative paths only; .cache/ is git-ignored).
    await mkdir(path.join(repoRoot, '.cache'), { recursive: true });
    const overlay = await mkdtemp(path.join(repoRoot, '.cache', 'monitoring-overlay-'));
    try {
      const relative = (p: string): string => path.relative(overlay, path.join(repoRoot, p));
      await writeFile(path.join(overlay, 'kustomization.yaml'), stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [relative('daemonset')], components: [relative('daemonset/monitoring')],
      }));
      const built = await run(path.join(await controlPlaneBinDir(), 'kubectl'), ['kustomize', overlay]);
      assert.equal(built.code, 0, built.output);
      const objects = parseAllDocuments(built.output).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; data?: Record<string, string> });
      const names = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
      for (const expected of [
        'ServiceMonitor/cnpg-system/cnpg-dynamic-storage-agent', 'ServiceMonitor/cnpg-system/cnpg-dynamic-storage-controller',
        'Service/cnpg-system/cnpg-dynamic-storage-controller-metrics', 'PrometheusRule/cnpg-system/cnpg-dynamic-storage',
        'ClusterRoleBinding//cnpg-dynamic-storage-prometheus', 'ConfigMap/cnpg-system/cnpg-dynamic-storage-dashboard',
        'DaemonSet/cnpg-system/cnpg-dynamic-storage-agent', 'Deployment/cnpg-system/cnpg-dynamic-storage-controller',
      ]) assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
      const dashboard = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cnpg-dynamic-storage-dashboard');
      assert.ok(dashboard?.data);
      assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
      assert.deepEqual(JSON.parse(dashboard.data['cnpg-dynamic-storage.json'] ?? '{}'), JSON.parse(await readFile(path.join(repoRoot, 'daemonset/monitoring/dashboard.json'), 'utf8')));
    } finally {
      await rm(overlay, { recursive: true, force: true });
    }
  });
});

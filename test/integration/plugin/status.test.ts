/**
 * `kubectl cnpg storage status` against a real API server: the command runs as a child process, both directly
 * (`node plugin/main.ts status ...`) and through kubectl's plugin mechanism (`kubectl cnpg storage status ...` with
 * plugin/ on PATH), and its whole output is compared with the text of status-fixture.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { freePort } from '../../harness/ports.ts';
import { namespace, statusScenario } from './status-fixture.ts';
import { runCommand, type CommandResult } from '../../harness/run-command.ts';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const runProcess = (file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CommandResult> => runCommand(file, args, { env });

describe('kubectl cnpg storage status on a real API server', function () {
  let plane: ControlPlane;
  let kubectl: string;
  let tmp: string;
  const { expected, nextWindow, seed } = statusScenario();

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    kubectl = path.join(plane.binDir, 'kubectl');
    tmp = await mkdtemp(path.join(os.tmpdir(), 'status-plugin-'));
    await seed(plane);
  });

  after(async function () {
    this.timeout(60_000);
    await plane.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  function status(...args: string[]): Promise<CommandResult> {
    return runProcess(process.execPath, [path.join(repoRoot, 'plugin/main.ts'), 'status', ...args]);
  }

  it('prints every managed volume of the Cluster, read from the API server', async () => {
    const result = await status('pg', '-n', namespace, '--kubeconfig', plane.kubeconfigPath);
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, expected);
    assert.equal(result.code, 0);
  });

  it('answers as `kubectl cnpg storage` through kubectl\'s plugin mechanism', async () => {
    const env = { ...process.env, PATH: `${path.join(repoRoot, 'plugin')}${path.delimiter}${process.env.PATH ?? ''}` };
    const plugins = await runProcess(kubectl, ['plugin', 'list', '--name-only'], env);
    assert.ok(plugins.stdout.split('\n').includes('kubectl-cnpg-storage'), `kubectl finds the plugin:\n${plugins.stdout}${plugins.stderr}`);
    const result = await runProcess(kubectl, ['cnpg', 'storage', 'status', 'pg', '-n', namespace, '--kubeconfig', plane.kubeconfigPath], env);
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, expected);
    assert.equal(result.code, 0);
    const missing = await runProcess(kubectl, ['cnpg', 'storage', 'status', 'nothing', '-n', namespace, '--kubeconfig', plane.kubeconfigPath], env);
    assert.deepEqual(missing, { code: 1, stdout: '', stderr: 'kubectl cnpg storage status: Cluster "nothing" not found in namespace "ns", and no DynamicStorage names it\n' });
  });

  it('takes the namespace from the kubeconfig context, and --context picks the context', async () => {
    const kubeconfig = path.join(tmp, 'kubeconfig');
    await copyFile(plane.kubeconfigPath, kubeconfig);
    await execFileAsync(kubectl, ['--kubeconfig', kubeconfig, 'config', 'set-context', '--current', `--namespace=${namespace}`]);
    const { stdout: context } = await execFileAsync(kubectl, ['--kubeconfig', kubeconfig, 'config', 'current-context']);
    const result = await status('pg', '--kubeconfig', kubeconfig, '--context', context.trim());
    assert.equal(result.stdout, expected);
    const unknown = await status('pg', '--kubeconfig', kubeconfig, '--context', 'nope');
    assert.deepEqual(unknown, { code: 1, stdout: '', stderr: 'kubectl cnpg storage status: context "nope" not found in the kubeconfig\n' });
  });

  it('prints the same model as JSON', async () => {
    const result = await status('pg', '-n', namespace, '--kubeconfig', plane.kubeconfigPath, '-o', 'json');
    assert.equal(result.code, 0);
    const model = JSON.parse(result.stdout) as { cluster: unknown; volumes: { title: string; nextMaintenanceWindow: string | null; instances: { pvcSize: string | null }[] }[] };
    assert.deepEqual(model.cluster, { name: 'pg', namespace, found: true });
    assert.deepEqual(model.volumes.map((v) => v.title), ['Data Volume', 'WAL Volume', 'Tablespace archive']);
    assert.deepEqual(model.volumes.map((v) => v.nextMaintenanceWindow), [nextWindow, null, null]);
    assert.deepEqual(model.volumes.map((v) => v.instances.map((i) => i.pvcSize)), [['10Gi', '10Gi'], ['2Gi', '3Gi'], ['1Gi', '1Gi']]);
  });

  it('says Disabled for a Cluster without a DynamicStorage, and exits 0', async () => {
    const result = await status('plain', '-n', namespace, '--kubeconfig', plane.kubeconfigPath);
    assert.deepEqual(result, {
      code: 0, stderr: '',
      stdout: `Cluster: plain
Dynamic Sizing: Disabled

CloudNativePG keeps the sizes set in the Cluster (spec.storage.size: 10Gi).
To enable dynamic sizing, create a DynamicStorage in namespace "ns" with spec.cluster.name: plain
and a request and limit per volume (kubectl explain dynamicstorage.spec).
`,
    });
  });

  it('shows an invalid policy prominently, and exits 0', async () => {
    const result = await status('gone', '-n', namespace, '--kubeconfig', plane.kubeconfigPath);
    assert.deepEqual(result, {
      code: 0, stderr: '',
      stdout: `Cluster: gone
Dynamic Sizing: Enabled
DynamicStorage: ns/gone

!! Valid=False (ClusterNotFound): the policy is not valid; nothing is resized until it is fixed:
!!   spec.cluster.name: Not found: "gone": no CNPG Cluster of that name in namespace ns

Warning: Cluster "gone" not found in namespace "ns".

Data Volume:
  Request:        5Gi
  Limit:          50Gi
  Target Buffer:  20%
  Effective Size: -
  State:          not reported yet

  No volumes found for this role yet.

  Budget:
    Max Actions/Day:      4
    Used (24h):           -
    Available (Planned):  -
    Available (Emergency): -
    Resets At:            -

  Next Maintenance Window: always open
`,
    });
  });

  it('exits 1 with a clear message when the kubeconfig cannot be read or the API server cannot be reached', async () => {
    const result = await status('pg', '--kubeconfig', path.join(tmp, 'does-not-exist'));
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^kubectl cnpg storage status: cannot load the kubeconfig .*does-not-exist: .*ENOENT/);
    const unreachable = path.join(tmp, 'unreachable');
    await writeFile(unreachable, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${await freePort()}", insecure-skip-tls-verify: true}}]`,
      'users: [{name: u, user: {token: t}}]', 'contexts: [{name: c, context: {cluster: c, user: u}}]', '',
    ].join('\n'));
    const refused = await status('pg', '--kubeconfig', unreachable);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^kubectl cnpg storage status: cannot (list|read) .* in namespace "default": .*ECONNREFUSED.*\n$/);
  });
});

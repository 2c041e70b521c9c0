/**
 * The self-contained plugin executable (hack/plugin/build-sea.sh; cached by its inputs) where no Node.js is installed:
 * PATH holds only kubectl and the executable under its plugin name, and the environment nothing else. It must say
 * exactly what the plugin run from the checkout says: `version` and `--help`, `status` against a real API server
 * (status-fixture.ts) through kubectl's plugin mechanism, and `simulate` over the example usage trace.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { namespace, statusScenario } from './status-fixture.ts';
import { runCommand, type CommandResult } from '../../harness/run-command.ts';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const run = (file: string, args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> => runCommand(file, args, { env });

describe('the self-contained plugin executable, without Node.js', function () {
  let plane: ControlPlane | undefined;
  let tmp: string;
  let bin: string;
  let plugin: string;
  let env: NodeJS.ProcessEnv;
  const { expected, seed } = statusScenario();

  /** The plugin as the checkout runs it, with this test's Node.js: what the executable must match. */
  function fromCheckout(args: string[]): Promise<CommandResult> {
    return run(process.execPath, [path.join(repoRoot, 'plugin/main.ts'), ...args], process.env);
  }

  before(async function () {
    this.timeout(900_000); // a cold cache bundles, prepares the blob and injects it: about 15 s, more on a loaded machine
    const { stdout } = await execFileAsync('bash', [path.join(repoRoot, 'hack/plugin/build-sea.sh')], { cwd: repoRoot, timeout: 880_000 });
    const built = stdout.trim().split('\n').at(-1) ?? '';
    tmp = await mkdtemp(path.join(os.tmpdir(), 'sea-plugin-'));
    bin = path.join(tmp, 'bin');
    await mkdir(bin);
    plugin = path.join(bin, 'kubectl-cnpg-storage');
    await copyFile(built, plugin);
    plane = await startControlPlane({ controllerManager: false });
    await symlink(path.join(plane.binDir, 'kubectl'), path.join(bin, 'kubectl'));
    env = { PATH: bin, HOME: tmp };
    await seed(plane);
  });

  after(async function () {
    this.timeout(60_000);
    await plane?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('has nothing but kubectl and itself on PATH', async () => {
    assert.deepEqual((await readdir(bin)).sort(), ['kubectl', 'kubectl-cnpg-storage']);
    await assert.rejects(execFileAsync('node', ['--version'], { env }), { code: 'ENOENT' });
  });

  it('prints its version and the Node.js it carries, and the same help as the checkout', async () => {
    assert.deepEqual(await run(plugin, ['version'], env), { code: 0, stderr: '', stdout: `kubectl cnpg storage dev (Node.js ${process.version})\n` });
    const help = await run(plugin, ['--help'], env);
    assert.deepEqual(help, await fromCheckout(['--help']));
    assert.match(help.stdout, /^Usage: kubectl cnpg storage <command>/);
  });

  it('answers `kubectl cnpg storage status` from the real API server', async () => {
    const listed = await run('kubectl', ['plugin', 'list', '--name-only'], env);
    assert.ok(listed.stdout.split('\n').includes('kubectl-cnpg-storage'), `kubectl finds the plugin:\n${listed.stdout}${listed.stderr}`);
    const kubeconfig = plane?.kubeconfigPath ?? '';
    const result = await run('kubectl', ['cnpg', 'storage', 'status', 'pg', '-n', namespace, '--kubeconfig', kubeconfig], env);
    assert.deepEqual(result, { code: 0, stderr: '', stdout: expected });
    const missing = await run(plugin, ['status', 'nothing', '-n', namespace, '--kubeconfig', kubeconfig], env);
    assert.deepEqual(missing, { code: 1, stdout: '', stderr: 'kubectl cnpg storage status: Cluster "nothing" not found in namespace "ns", and no DynamicStorage names it\n' });
  });

  it('simulates a policy over a usage trace exactly as the checkout does', async () => {
    // An hour inside the example policy's window, two instances filling at 0.25 GiB a minute: planned grows, then an
    // emergency one, the day's last action, sized for the fill as long again as it has gone on (about 46 minutes).
    const rows = ['timestamp,instance,used_bytes'];
    for (let minute = 0; minute <= 60; minute++) {
      const at = new Date(Date.UTC(2026, 0, 12, 3, minute)).toISOString().replace('.000Z', 'Z');
      for (const instance of ['pg-1', 'pg-2']) rows.push(`${at},${instance},${Math.round((30 + minute / 4) * 1024 ** 3)}`);
    }
    const trace = path.join(tmp, 'usage.csv');
    await writeFile(trace, `${rows.join('\n')}\n`);
    for (const output of [[], ['-o', 'json']]) {
      const args = ['simulate', '-f', 'docs/examples/simulate/policy.yaml', '--trace', trace, ...output];
      const result = await run(plugin, args, env);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result, await fromCheckout(args));
    }
    const text = await run(plugin, ['simulate', '-f', 'docs/examples/simulate/policy.yaml', '--trace', trace], env);
    assert.match(text.stdout, /Resizes: 4\n.*\n.*Scheduled +40Gi +42Gi[^]*Emergency +48Gi +73Gi/);
  });
});

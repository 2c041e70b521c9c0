/**
 * e2e/run-aks-e2e.sh without a cluster: its dry run prints the whole run for given inputs and runs nothing (fake `az`,
 * `kubectl`, `docker` and `npx` first on PATH record any call), missing inputs and unknown flags fail; with the fakes
 * a real run collects artifacts when the suite fails and deletes what it created, also when interrupted.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../stack/index.ts';

const script = path.join(repoRoot, 'e2e/run-aks-e2e.sh');

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The commands lines the dry run printed, without their `+ `. */
  commands: string[];
  /** Whether any of the fake tools was called. */
  toolsCalled: boolean;
}

describe('e2e/run-aks-e2e.sh', function () {
  let fakeBin: string;
  let calls: string;

  before(function () {
    fakeBin = mkdtempSync(path.join(tmpdir(), 'run-aks-e2e-'));
    calls = path.join(fakeBin, 'calls.log');
    // Each records its call. `az ... show` answers "not found" (FAKE_SHOW_STATUS, default 1), `npx` exits with
    // FAKE_NPX_STATUS, `docker` takes FAKE_DOCKER_SLEEP seconds.
    const fakes: Record<string, string> = {
      az: 'case "$*" in *" show "*) exit "${FAKE_SHOW_STATUS:-1}" ;; esac',
      kubectl: '',
      docker: 'sleep "${FAKE_DOCKER_SLEEP:-0}"',
      npx: 'exit "${FAKE_NPX_STATUS:-0}"',
    };
    for (const [tool, body] of Object.entries(fakes)) {
      const file = path.join(fakeBin, tool);
      writeFileSync(file, `#!/bin/sh\necho "${tool} $*" >> "${calls}"\n${body}\nexit 0\n`);
      chmodSync(file, 0o755);
    }
  });

  after(function () {
    rmSync(fakeBin, { recursive: true, force: true });
  });

  function runScript(args: string[], env: Record<string, string>): Result {
    rmSync(calls, { force: true });
    const child = spawnSync('bash', [script, ...args], {
      cwd: repoRoot, encoding: 'utf8', timeout: 20_000,
      env: { PATH: `${fakeBin}:/usr/bin:/bin`, HOME: fakeBin, ...env },
    });
    const commands = child.stdout.split('\n').filter((l) => l.startsWith('+ ')).map((l) => l.slice(2));
    return { status: child.status, stdout: child.stdout, stderr: child.stderr, commands, toolsCalled: existsSync(calls) };
  }

  const inputs = { AZURE_SUBSCRIPTION: 'sub-1', AZURE_LOCATION: 'westeurope', AKS_RESOURCE_GROUP: 'rg-e2e', AKS_CLUSTER: 'aks-e2e', ACR_NAME: 'cnpgdse2e', IMAGE_TAG: 'v9' };

  /** The index of the first command containing every fragment; fails when there is none. */
  function indexOf(commands: string[], ...fragments: string[]): number {
    const index = commands.findIndex((c) => fragments.every((f) => c.includes(f)));
    assert.ok(index >= 0, `a command with ${JSON.stringify(fragments)} in:\n${commands.join('\n')}`);
    return index;
  }

  it('prints the whole run in order, runs nothing, and deletes what it created at the end', function () {
    const r = runScript(['--dry-run'], inputs);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.toolsCalled, false, 'no tool ran in a dry run');
    const c = r.commands;
    const order = [
      indexOf(c, 'az account set --subscription sub-1'),
      indexOf(c, 'az group create', '--name rg-e2e', '--location westeurope'),
      indexOf(c, 'az acr create', '--name cnpgdse2e'),
      indexOf(c, 'az aks create', '--name aks-e2e', '--enable-disk-driver', '--attach-acr cnpgdse2e', '--zones 1 2 3'),
      indexOf(c, 'az aks get-credentials', '--name aks-e2e'),
      indexOf(c, 'docker build -f Dockerfile.agent -t cnpgdse2e.azurecr.io/cnpg-dynamic-storage/agent:v9'),
      indexOf(c, 'docker build -f Dockerfile.controller -t cnpgdse2e.azurecr.io/cnpg-dynamic-storage/controller:v9'),
      indexOf(c, 'docker push cnpgdse2e.azurecr.io/cnpg-dynamic-storage/agent:v9'),
      indexOf(c, 'docker push cnpgdse2e.azurecr.io/cnpg-dynamic-storage/controller:v9'),
      indexOf(c, 'kubectl apply --server-side -f https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-1.27/releases/cnpg-1.27.1.yaml'),
      indexOf(c, 'kubectl apply -f crds/'),
      indexOf(c, 'kubectl kustomize daemonset/', '|cnpgdse2e.azurecr.io/cnpg-dynamic-storage/agent:v9|', '|cnpgdse2e.azurecr.io/cnpg-dynamic-storage/controller:v9|', 'kubectl apply -f -'),
      indexOf(c, 'rollout status daemonset/cnpg-dynamic-storage-agent'),
      indexOf(c, 'E2E_TARGET=aks', 'npx mocha --config e2e/.mocharc.json'),
      indexOf(c, 'get dynamicstorages.dynamicstorage.cnpg.io -A -o yaml'),
      indexOf(c, 'az group delete', '--name rg-e2e', '--yes'),
    ];
    assert.deepEqual(order, [...order].sort((a, b) => a - b), `in this order:\n${c.join('\n')}`);
    assert.equal(c.some((command) => command.includes('cert-manager') || command.includes('daemonset/webhook.yaml')), false, 'the webhooks need no cert-manager');
    assert.equal(c.at(-1), 'az group delete --subscription sub-1 --name rg-e2e --yes --no-wait', 'deletion comes last');
    // The artifacts of a failure are collected before the cleanup, and logs of the product and of CNPG are among them.
    indexOf(c, 'logs -n cnpg-system -l app.kubernetes.io/name=cnpg-dynamic-storage-controller');
    indexOf(c, 'get events -A');
  });

  it('with --keep, deletes nothing', function () {
    const r = runScript(['--dry-run', '--keep'], inputs);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.commands.some((c) => /\b(group|aks|acr) delete\b/.test(c)), r.commands.join('\n'));
    assert.match(r.stdout, /--keep: leaving resource group rg-e2e/);
  });

  it('pushes to a given registry instead of creating one, and passes the inputs to the cluster', function () {
    const r = runScript(['--dry-run'], {
      ...inputs, ACR_NAME: '', REGISTRY: 'registry.example.com/team', AKS_NODE_COUNT: '4', AKS_NODE_SIZE: 'Standard_D8s_v5', AKS_K8S_VERSION: '1.33',
      AKS_ZONES: '', CNPG_VERSION: '1.26.2', E2E_MOCHA_ARGS: '--grep growth',
    });
    assert.equal(r.status, 0, r.stderr);
    const c = r.commands;
    assert.ok(!c.some((l) => l.includes('az acr')), 'no registry created or logged into');
    const create = c[indexOf(c, 'az aks create')] ?? '';
    assert.match(create, /--node-count 4 --node-vm-size Standard_D8s_v5/);
    assert.match(create, /--kubernetes-version 1\.33/);
    assert.doesNotMatch(create, /--attach-acr|--zones/);
    indexOf(c, 'docker push registry.example.com/team/cnpg-dynamic-storage/agent:v9');
    indexOf(c, 'kubectl kustomize daemonset/', '|registry.example.com/team/cnpg-dynamic-storage/controller:v9|');
    indexOf(c, 'release-1.26/releases/cnpg-1.26.2.yaml');
    indexOf(c, 'npx mocha', '--grep growth');
  });

  it('with AKS_REUSE=true, creates and deletes no Azure resource', function () {
    const r = runScript(['--dry-run'], { ...inputs, AKS_REUSE: 'true' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.commands.some((c) => /\b(create|delete)\b/.test(c) && c.startsWith('az ')), r.commands.join('\n'));
    indexOf(r.commands, 'az aks get-credentials');
    indexOf(r.commands, 'E2E_TARGET=aks');
  });

  it('fails naming the missing inputs', function () {
    const r = runScript(['--dry-run'], { IMAGE_TAG: 'v9' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /AZURE_SUBSCRIPTION/);
    assert.match(r.stderr, /REGISTRY .* or ACR_NAME/);
    assert.equal(r.commands.length, 0, 'nothing printed as run');
    assert.equal(r.toolsCalled, false);
  });

  it('fails on invalid inputs', function () {
    const r = runScript(['--dry-run'], { ...inputs, AKS_NODE_COUNT: 'three', ACR_NAME: 'no-dashes' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /AKS_NODE_COUNT/);
    assert.match(r.stderr, /ACR_NAME/);
  });

  it('fails on an unknown flag, and --help lists the inputs', function () {
    const bad = runScript(['--dry-run', '--yes-please'], inputs);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /unknown argument: --yes-please/);
    const help = runScript(['--help'], {});
    assert.equal(help.status, 0);
    for (const name of ['AZURE_SUBSCRIPTION', 'AZURE_LOCATION', 'AKS_RESOURCE_GROUP', 'AKS_CLUSTER', 'REGISTRY', 'ACR_NAME', 'AKS_NODE_SIZE', 'AKS_NODE_COUNT', 'AKS_K8S_VERSION', 'CNPG_VERSION']) {
      assert.match(help.stdout, new RegExp(name));
    }
  });

  function recordedCalls(): string[] {
    return existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [];
  }

  it('for real (fake tools): a failing suite leaves artifacts, then what the run created is deleted', function () {
    const artifacts = path.join(fakeBin, 'artifacts');
    const r = runScript([], { ...inputs, ARTIFACTS_DIR: artifacts, FAKE_NPX_STATUS: '3' });
    assert.equal(r.status, 3, `the suite's exit status (${r.stderr})`);
    const called = recordedCalls();
    const index = (fragment: string): number => called.findIndex((c) => c.includes(fragment));
    assert.ok(index('npx mocha') >= 0, called.join('\n'));
    assert.ok(index('get events -A') > index('npx mocha'), 'artifacts after the suite');
    assert.ok(index('az group delete') > index('get events -A'), `the group it created deleted last:\n${called.join('\n')}`);
    assert.match(r.stderr, /the suite failed \(exit 3\)/);
  });

  it('for real (fake tools): reuses a resource group and cluster that exist, and leaves them', function () {
    const r = runScript([], { ...inputs, REGISTRY: 'registry.example.com', ARTIFACTS_DIR: path.join(fakeBin, 'artifacts'), FAKE_SHOW_STATUS: '0' });
    assert.equal(r.status, 0, r.stderr);
    const called = recordedCalls();
    assert.ok(!called.some((c) => /^az (group|aks|acr) (create|delete)/.test(c)), called.join('\n'));
    assert.ok(called.some((c) => c.startsWith('npx mocha')));
  });

  it('for real (fake tools): an interrupted run still deletes what it created', async function () {
    rmSync(calls, { force: true });
    const child = spawn('bash', [script], {
      cwd: repoRoot, stdio: 'ignore',
      env: { PATH: `${fakeBin}:/usr/bin:/bin`, HOME: fakeBin, ...inputs, ARTIFACTS_DIR: path.join(fakeBin, 'artifacts'), FAKE_DOCKER_SLEEP: '1' },
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code); }));
    for (let waited = 0; !recordedCalls().some((c) => c.startsWith('docker build')) && waited < 10_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGTERM');
    assert.equal(await exited, 143);
    const called = recordedCalls();
    assert.ok(!called.some((c) => c.startsWith('docker push') || c.startsWith('npx')), `stopped at the interrupt:\n${called.join('\n')}`);
    assert.ok(called.at(-1)?.startsWith('az group delete'), `cleaned up:\n${called.join('\n')}`);
  });

  // make test installs shellcheck first (hack/ensure-debian.sh); elsewhere the test is pending without it.
  it('is shellcheck-clean (when shellcheck is installed)', function () {
    const which = spawnSync('sh', ['-c', 'command -v shellcheck'], { encoding: 'utf8' });
    if (which.status !== 0) {
      console.log('      skipped: shellcheck is not installed');
      this.skip();
    }
    const check = spawnSync('shellcheck', [script], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout);
  });
});

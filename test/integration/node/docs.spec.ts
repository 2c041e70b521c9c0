/**
 * The operations docs run as written on the real node: every `kubectl` command of docs/troubleshooting.md,
 * docs/upgrade.md and docs/migration.md — their shell blocks and the commands quoted in their prose — with the
 * placeholders filled from a real Cluster of the real CloudNativePG operator that the product sizes, through the plugin
 * as `kubectl cnpg storage` (plugin/ on PATH) and the stack's kubectl, from a directory holding `crds/`, `daemonset/` and
 * the Cluster's `policy.yaml` as the docs assume. Order: troubleshooting, the upgrade (and the move away from the
 * cert-manager-based webhook, from its objects as that install left them), migrating and leaving again, the uninstall
 * last. A command that fails, or a placeholder nothing fills, fails the test with its doc and line.
 *
 * What is not the user's: `--prometheus <url>` points at a real Prometheus on loopback that holds 14 days of the
 * Cluster's usage (test/harness/prometheus.ts), and cert-manager's two CRDs are minimal ones, with no cert-manager
 * running: the docs' commands only delete those objects.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { MiB } from '../../../shared/quantity.ts';
import { eventually } from '../../harness/eventually.ts';
import { startHistoryPrometheus, type HistoryPrometheus } from '../../harness/prometheus.ts';
import { removeTestStorageClass, testStorageClass } from '../../node/fixtures.ts';
import { clusterApi, clusterManifest, pvcSizes, volumeStatus, waitForHealthy } from '../../node/postgres.ts';
import { installProduct, systemNamespace, waitForProduct, type InstalledProduct } from '../../node/product.ts';
import { createNamespace, repoRoot, useRealStack, type RealStack } from '../../node/stack.ts';

const execFileAsync = promisify(execFile);
const cluster = 'pg';

interface DocCommand {
  doc: string;
  line: number;
  section: string;
  text: string;
  /** Quoted in the prose rather than in a shell block. */
  inline: boolean;
}

/** The `kubectl` commands of a markdown document: each line of its `sh` blocks, and each one quoted inline. */
function docCommands(doc: string, markdown: string): DocCommand[] {
  const lines = markdown.split('\n');
  const found: DocCommand[] = [];
  const headings: { line: number; title: string }[] = [];
  let fence: string | undefined;
  const prose: string[] = [];
  lines.forEach((line, index) => {
    const opening = /^\s*```(\w*)\s*$/.exec(line);
    if (opening) {
      fence = fence === undefined ? opening[1] ?? '' : undefined;
      prose.push('');
      return;
    }
    if (fence === undefined) {
      const heading = /^#+\s+(.*)$/.exec(line);
      if (heading) headings.push({ line: index + 1, title: heading[1] ?? '' });
      prose.push(line);
      return;
    }
    prose.push('');
    const text = line.replace(/\s+#\s.*$/, '').trim();
    if (fence === 'sh' && text !== '' && !text.startsWith('#')) found.push({ doc, line: index + 1, section: '', text, inline: false });
  });
  // Inline commands may wrap over lines; the fences are blanked above so that line numbers stay.
  const text = prose.join('\n');
  for (const match of text.matchAll(/`(kubectl [^`]+)`/g)) {
    const line = text.slice(0, match.index).split('\n').length;
    found.push({ doc, line, section: '', text: (match[1] ?? '').replace(/\s+/g, ' ').trim(), inline: true });
  }
  for (const command of found) command.section = headings.filter((h) => h.line < command.line).at(-1)?.title ?? '';
  // A command named in the prose without its arguments (`kubectl cnpg storage status`) points at one shown in full.
  const mention = (c: DocCommand): boolean => c.inline && found.some((other) => other.text.startsWith(`${c.text} `));
  return found.filter((c) => !mention(c)).sort((a, b) => a.line - b.line);
}

/** Fills the placeholders; throws on any the docs use that this test does not know. */
function fill(command: DocCommand, values: Readonly<Record<string, string>>, prometheusUrl: string): string {
  let text = command.text.replace(/--prometheus \S+/, `--prometheus ${prometheusUrl}`);
  for (const [placeholder, value] of Object.entries(values)) text = text.replaceAll(`<${placeholder}>`, value);
  const unknown = /<[a-z][a-z -]*>/.exec(text);
  if (unknown) throw new Error(`${command.doc}:${command.line}: no value for the placeholder ${unknown[0]} in: ${command.text}`);
  return text;
}

/** 14 days of the Cluster's data volume usage as the agents' metric, scraped without honor_labels, every 10 minutes. */
function usageHistory(namespace: string, now: number): string {
  const lines = ['# TYPE cnpg_disk_used_bytes gauge'];
  const step = 10 * 60_000;
  const from = now - 14 * 24 * 3_600_000;
  for (let t = from; t <= now - step; t += step) {
    const used = Math.round(20 * MiB + ((t - from) / (now - from)) * 30 * MiB);
    lines.push(`cnpg_disk_used_bytes{namespace="${systemNamespace}",exported_namespace="${namespace}",cluster="${cluster}",exported_instance="${cluster}-1",`
      + `volume_type="data",tablespace="",persistentvolumeclaim="${cluster}-1",node="cnpg-ds-node"} ${used} ${Math.floor(t / 1000)}`);
  }
  return lines.join('\n');
}

const certManagerCrds = ['certificates', 'issuers'].map((plural) => ({
  apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition',
  metadata: { name: `${plural}.cert-manager.io` },
  spec: {
    group: 'cert-manager.io', scope: 'Namespaced',
    names: { plural, singular: plural.slice(0, -1), kind: plural === 'issuers' ? 'Issuer' : 'Certificate' },
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
}));

describe('the operations docs, run as written on the real node', function () {
  this.timeout(600_000);
  const stack = useRealStack();
  let product: InstalledProduct | undefined;
  let namespace: { name: string; remove: () => Promise<void> } | undefined;
  let prometheus: HistoryPrometheus | undefined;
  let workdir: string | undefined;
  let storageClass = '';

  before(async function () {
    this.timeout(20 * 60_000);
    const s = stack();
    product = await installProduct(s);
    storageClass = await testStorageClass(s);
    namespace = await createNamespace(s, 'docs');
    const ns = namespace.name;
    await s.kubectl(['apply', '-f', '-'], JSON.stringify(clusterManifest({ namespace: ns, name: cluster, instances: 1, storageClass, dataSize: '64Mi', walSize: '64Mi' })));
    workdir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-docs-'));
    await symlink(path.join(repoRoot, 'crds'), path.join(workdir, 'crds'));
    await symlink(path.join(repoRoot, 'daemonset'), path.join(workdir, 'daemonset'));
    await writeFile(path.join(workdir, 'policy.yaml'), [
      'apiVersion: dynamicstorage.cnpg.io/v1alpha1', 'kind: DynamicStorage', `metadata: {name: ${cluster}, namespace: ${ns}}`, 'spec:',
      `  cluster: {name: ${cluster}}`, '  storage:', '    request: 64Mi', '    limit: 512Mi', '    targetBuffer: 20', '    emergencyGrow: {criticalMinimumFree: 4Mi}', '',
    ].join('\n'));
    prometheus = await startHistoryPrometheus(usageHistory(ns, Date.now()));
    await waitForProduct(s);
    await waitForHealthy(s, ns, cluster, 1, 10 * 60_000);
    await s.kubectl(['apply', '-f', path.join(workdir, 'policy.yaml')]);
    await eventually(async () => {
      assert.ok((await volumeStatus(s, ns, cluster, 'data'))?.effectiveSize, 'the product sizes the data volume');
    },
      { timeoutMs: 120_000, intervalMs: 1000 });
  });

  after(async function () {
    this.timeout(300_000);
    const s = stack();
    await prometheus?.stop();
    if (workdir !== undefined) await rm(workdir, { recursive: true, force: true });
    await namespace?.remove();
    await removeTestStorageClass(s);
    await s.kubectl(['delete', 'crd', ...certManagerCrds.map((c) => c.metadata.name), '--ignore-not-found']);
    await product?.remove();
  });

  /** Runs a command's filled-in `text` as a user's shell would; the error names the command's doc and line. */
  async function runDocCommand(s: RealStack, command: DocCommand, text: string): Promise<string> {
    const env = {
      ...process.env, KUBECONFIG: s.settings.KUBECONFIG_PATH,
      PATH: [path.dirname(s.kubectlBinary), path.join(repoRoot, 'plugin'), process.env.PATH ?? ''].join(':'),
    };
    try {
      const { stdout } = await execFileAsync('bash', ['-o', 'pipefail', '-c', text], { cwd: workdir, env, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch (err) {
      const failure = err as { code?: unknown; stdout?: string; stderr?: string };
      throw new Error(`${command.doc}:${command.line} (${command.section}): \`${text}\` exited ${String(failure.code)}\n${failure.stderr ?? ''}${failure.stdout ?? ''}`, { cause: err });
    }
  }

  it('runs every kubectl command of the troubleshooting, upgrade and migration docs, the uninstall last', async function () {
    this.timeout(30 * 60_000);
    const s = stack();
    const ns = namespace?.name ?? '';
    const read = async (doc: string): Promise<DocCommand[]> => docCommands(doc, await readFile(path.join(repoRoot, doc), 'utf8'));
    const troubleshooting = await read('docs/troubleshooting.md');
    const upgrade = await read('docs/upgrade.md');
    const migration = await read('docs/migration.md');
    const uninstall = upgrade.filter((c) => c.section === 'Uninstall');
    const commands = [...troubleshooting, ...upgrade.filter((c) => c.section !== 'Uninstall'), ...migration, ...uninstall];
    assert.ok(troubleshooting.length >= 7 && upgrade.length >= 10 && migration.length >= 5 && uninstall.length >= 5,
      `the docs' commands were found: ${commands.map((c) => `${c.doc}:${c.line}`).join(', ')}`);

    // The objects an install with the cert-manager-based webhook left, which the upgrade notes remove.
    await s.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: certManagerCrds }));
    await s.kubectl(['wait', '--for=condition=Established', ...certManagerCrds.map((c) => `crd/${c.metadata.name}`), '--timeout=60s']);
    await s.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: 'cnpg-dynamic-storage-selfsigned', namespace: systemNamespace }, spec: { selfSigned: {} } },
      { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'cnpg-dynamic-storage-webhook', namespace: systemNamespace },
        spec: { secretName: 'cnpg-dynamic-storage-webhook-tls', issuerRef: { name: 'cnpg-dynamic-storage-selfsigned' } } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cnpg-dynamic-storage-webhook-tls', namespace: systemNamespace }, stringData: { 'tls.crt': '', 'tls.key': '' } },
    ] }));

    const before = await pvcSizes(s, ns, cluster, 'data');
    const seen = new Set<string>();
    const outputs = new Map<string, string>();
    for (const command of commands) {
      const effective = (await volumeStatus(s, ns, cluster, 'data').catch(() => undefined))?.effectiveSize ?? '';
      const values = { namespace: ns, cluster, name: cluster, class: storageClass, 'effective size': effective, volume: 'data' };
      const text = fill(command, values, prometheus?.url ?? '');
      if (seen.has(text)) continue;
      seen.add(text);
      outputs.set(text, await runDocCommand(s, command, text));
    }

    console.log(`      ran ${outputs.size} commands:\n${[...outputs.keys()].map((t) => `        ${t}`).join('\n')}`);
    // What the commands say and did, beyond their exit codes.
    const output = (prefix: string): string => [...outputs].find(([text]) => text.startsWith(prefix))?.[1] ?? '';
    assert.match(output('kubectl cnpg storage status'), new RegExp(`${cluster}-1`), 'the status lists the instance');
    assert.match(output('kubectl cnpg storage simulate'), /Simulation: DynamicStorage/, 'the simulation ran on the history');
    assert.match(output('kubectl cnpg storage validate'), /valid/i);
    for (const kind of ['certificate.cert-manager.io/cnpg-dynamic-storage-webhook', 'issuer.cert-manager.io/cnpg-dynamic-storage-selfsigned', 'secret/cnpg-dynamic-storage-webhook-tls']) {
      assert.equal(await s.kubectl(['-n', systemNamespace, 'get', kind, '--ignore-not-found', '-o', 'name']), '', `${kind} is gone after the upgrade notes`);
    }
    // Uninstalled: the CRD and the product are gone; the Cluster runs on, nothing shrunk.
    assert.equal(await s.kubectl(['get', 'crd', 'dynamicstorages.dynamicstorage.cnpg.io', '--ignore-not-found', '-o', 'name']), '');
    assert.equal(await s.kubectl(['-n', systemNamespace, 'get', 'deployment,daemonset', '-l', 'app.kubernetes.io/part-of=cnpg-dynamic-storage', '-o', 'name']), '');
    const after = await pvcSizes(s, ns, cluster, 'data');
    assert.deepEqual(after.map((p) => p.requested), before.map((p) => p.requested), 'no PVC shrunk or grown by the uninstall');
    await waitForHealthy(s, ns, cluster, 1, 120_000);
    const custom = s.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const spec = await custom.getNamespacedCustomObject({ ...clusterApi, namespace: ns, name: cluster }) as { spec?: { storage?: { size?: string } } };
    assert.ok(spec.spec?.storage?.size, 'the sizes were frozen in the Cluster spec');
  });
});

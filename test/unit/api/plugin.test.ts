import assert from 'node:assert/strict';
import { runCli, type CliIo } from '../../../plugin/cli.ts';

function memoryIo(files: Record<string, string>, stdin = ''): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out, err,
    stdout: (text) => { out.push(text); },
    stderr: (text) => { err.push(text); },
    readFile: (file) => {
      const text = files[file];
      return text === undefined ? Promise.reject(new Error('ENOENT: no such file')) : Promise.resolve(text);
    },
    readStdin: () => Promise.resolve(stdin),
    listDirectory: (dir) => {
      const entries = Object.keys(files).filter((f) => f.startsWith(`${dir}/`));
      return Promise.resolve(entries.length > 0 ? entries.sort() : undefined);
    },
  };
}

const validPolicy = `apiVersion: dynamicstorage.cnpg.io/v1alpha1
kind: DynamicStorage
metadata: {name: pg, namespace: db}
spec:
  cluster: {name: pg}
  storage: {request: 10Gi, limit: 100Gi}
`;
const invalidPolicy = `apiVersion: dynamicstorage.cnpg.io/v1alpha1
kind: DynamicStorage
metadata: {name: bad}
spec:
  cluster: {name: pg}
  storage: {request: 20Gi, limit: 10Gi, maintenanceWindow: {schedule: "0 3 * *"}}
`;
const clusterDoc = `apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: pg, namespace: db}
spec:
  storage: {size: 200Gi}
`;

describe('kubectl cnpg storage validate', () => {
  it('prints valid objects and exits 0', async () => {
    const io = memoryIo({ 'a.yaml': validPolicy });
    assert.equal(await runCli(['validate', '-f', 'a.yaml'], io), 0);
    assert.equal(io.out.join(''), 'a.yaml: DynamicStorage db/pg: valid\n');
  });

  it('prints every problem with its code and exits 1', async () => {
    const io = memoryIo({ 'dir/a.yaml': validPolicy, 'dir/b.yml': invalidPolicy, 'dir/notes.txt': 'ignored' });
    assert.equal(await runCli(['validate', '-f', 'dir'], io), 1);
    assert.equal(io.out.join(''), [
      'dir/a.yaml: DynamicStorage db/pg: valid',
      'dir/b.yml: DynamicStorage default/bad: 2 problems',
      '  spec.storage.maintenanceWindow.schedule: Invalid value: "0 3 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week [InvalidSchedule]',
      '  spec.storage.request: Invalid value: request (20Gi) cannot exceed limit (10Gi) [RequestAboveLimit]',
      '',
    ].join('\n'));
  });

  it('checks against a Cluster in the same input', async () => {
    const io = memoryIo({}, `${clusterDoc}---\n${validPolicy}`);
    assert.equal(await runCli(['validate', '-f', '-'], io), 1);
    assert.equal(io.out.join(''), [
      '<stdin>: DynamicStorage db/pg: 1 problem',
      '  spec.storage.limit: Invalid value: the Cluster\'s spec.storage.size (200Gi) is above limit (100Gi) [ClusterSizeAboveLimit]',
      '',
    ].join('\n'));
  });

  it('with --require-cluster, fails when the Cluster is not in the input', async () => {
    const io = memoryIo({ 'a.yaml': validPolicy });
    assert.equal(await runCli(['validate', '--require-cluster', '-f', 'a.yaml', '-o', 'json'], io), 1);
    const report = JSON.parse(io.out.join('')) as { valid: boolean; objects: { problems: { code: string; field: string; text: string }[] }[] };
    assert.equal(report.valid, false);
    assert.deepEqual(report.objects[0]?.problems.map((p) => [p.code, p.text]), [
      ['ClusterNotFound', 'spec.cluster.name: Not found: "pg": no CNPG Cluster "pg" in namespace "db"'],
    ]);
  });

  it('reports broken YAML and exits 1', async () => {
    const io = memoryIo({ 'a.yaml': 'spec: [unclosed' });
    assert.equal(await runCli(['validate', '-f', 'a.yaml'], io), 1);
    assert.match(io.err.join(''), /^a\.yaml: document 1 is not valid YAML: /);
  });

  it('exits 2 on wrong usage and unreadable files', async () => {
    for (const args of [['validate'], ['validate', '-f'], ['validate', '-o', 'xml', '-f', 'a.yaml'], ['validate', '--bogus'], ['resize-everything'], []]) {
      assert.equal(await runCli(args, memoryIo({ 'a.yaml': validPolicy })), 2, args.join(' '));
    }
    const io = memoryIo({});
    assert.equal(await runCli(['validate', '-f', 'missing.yaml'], io), 2);
    assert.match(io.err.join(''), /cannot read missing\.yaml: ENOENT/);
  });

  it('prints help for the program and for a command', async () => {
    const io = memoryIo({});
    assert.equal(await runCli(['--help'], io), 0);
    assert.match(io.out.join(''), /validate {2}check DynamicStorage files offline/);
    assert.equal(await runCli(['validate', '--help'], io), 0);
    assert.match(io.out.join(''), /--require-cluster/);
  });

  it('prints the version it was given, under both spellings', async () => {
    for (const arg of ['version', '--version']) {
      const io = { ...memoryIo({}), version: '1.2.3 (Node.js v24.21.0)' };
      assert.equal(await runCli([arg], io), 0);
      assert.equal(io.out.join(''), 'kubectl cnpg storage 1.2.3 (Node.js v24.21.0)\n');
    }
    const io = memoryIo({});
    assert.equal(await runCli(['version'], io), 0);
    assert.equal(io.out.join(''), 'kubectl cnpg storage unknown\n');
  });
});

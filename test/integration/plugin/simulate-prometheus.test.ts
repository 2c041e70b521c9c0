/**
 * `kubectl cnpg storage simulate --prometheus` against a real Prometheus (test/harness/prometheus.ts): a TSDB is
 * backfilled with promtool from OpenMetrics text — the node agent's metric as a scrape without
 * honor_labels stores it (exported_namespace, exported_instance; one instance moves node halfway), and kubelet's metric
 * for a second Cluster that has no agent — then Prometheus serves it on a free loopback port. The command runs as a child
 * process and must say exactly what it says for the same samples given as a CSV file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../harness/ports.ts';
import { startHistoryPrometheus, type HistoryPrometheus } from '../../harness/prometheus.ts';
import type { SimulationResult } from '../../../plugin/simulate.ts';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const node = path.join(repoRoot, 'node_modules/.bin/node');
const GiB = 1024 ** 3;
const start = Date.UTC(2026, 0, 12); // the history: 12 hours from here, a sample a minute
const minutes = 12 * 60;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(file: string, args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, { cwd: repoRoot, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failure = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw err;
    return { code: failure.code, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

/** Bytes an instance uses at minute `m`: pg-2 holds WAL for a stuck slot from the fourth hour on. */
function usage(instance: string, m: number): number {
  const base = 1.2 * GiB + (m / minutes) * 1.5 * GiB;
  return Math.round(instance.endsWith('-2') && m > 240 ? base + ((m - 240) / 480) * 2 * GiB : base);
}

interface Sample {
  labels: string;
  instance: string;
  minute: number;
}

function openMetrics(family: string, series: readonly { labels: (minute: number) => string; instance: string }[]): { text: string; samples: Sample[] } {
  const lines = [`# TYPE ${family} gauge`];
  const samples: Sample[] = [];
  for (const { labels, instance } of series) {
    // One series per label set, its samples in time order (the node label changes when the instance moves).
    const byLabels = new Map<string, number[]>();
    for (let m = 0; m <= minutes; m += 1) byLabels.set(labels(m), [...(byLabels.get(labels(m)) ?? []), m]);
    for (const [set, times] of byLabels) {
      for (const m of times) {
        lines.push(`${family}{${set}} ${usage(instance, m)} ${(start + m * 60_000) / 1000}`);
        samples.push({ labels: set, instance, minute: m });
      }
    }
  }
  return { text: lines.join('\n'), samples };
}

function csv(instances: readonly string[]): string {
  const rows = ['timestamp,instance,used_bytes'];
  for (let m = 0; m <= minutes; m += 1) for (const instance of instances) rows.push(`${(start + m * 60_000) / 1000},${instance},${usage(instance, m)}`);
  return `${rows.join('\n')}\n`;
}

const policy = `apiVersion: dynamicstorage.cnpg.io/v1alpha1
kind: DynamicStorage
metadata: {name: pg, namespace: db}
spec:
  cluster: {name: pg}
  storage: {request: 2Gi, limit: 20Gi, targetBuffer: 25}
`;

describe('kubectl cnpg storage simulate on a real Prometheus', function () {
  this.timeout(600_000);
  let tmp: string | undefined;
  let prometheus: HistoryPrometheus | undefined;
  let url: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-simulate-'));
    const agent = openMetrics('cnpg_disk_used_bytes', ['pg-1', 'pg-2', 'pg-3'].map((instance) => ({
      instance,
      labels: (m: number) => [
        'namespace="cnpg-system"', 'exported_namespace="db"', 'cluster="pg"', 'instance="10.0.0.5:9187"', `exported_instance="${instance}"`,
        'volume_type="data"', 'tablespace=""', `persistentvolumeclaim="${instance}"`, `node="${instance === 'pg-2' && m >= 360 ? 'node-d' : `node-${instance.slice(-1)}`}"`,
      ].join(','),
    })));
    const agentWal = openMetrics('cnpg_disk_used_bytes', []);
    const kubelet = openMetrics('kubelet_volume_stats_used_bytes', [
      ...['legacy-1', 'legacy-2'].map((pvc) => ({ instance: pvc, labels: () => `namespace="db",persistentvolumeclaim="${pvc}"` })),
      // Not the data volumes of db/legacy: its WAL volume, and a Cluster of the same name in another namespace.
      { instance: 'legacy-1-wal', labels: () => 'namespace="db",persistentvolumeclaim="legacy-1-wal"' },
      { instance: 'legacy-9', labels: () => 'namespace="other",persistentvolumeclaim="legacy-9"' },
    ]);
    assert.equal(agentWal.samples.length, 0);
    await writeFile(path.join(tmp, 'policy.yaml'), policy);
    await writeFile(path.join(tmp, 'legacy.yaml'), policy.replaceAll('name: pg', 'name: legacy'));
    await writeFile(path.join(tmp, 'pg.csv'), csv(['pg-1', 'pg-2', 'pg-3']));
    await writeFile(path.join(tmp, 'legacy.csv'), csv(['legacy-1', 'legacy-2']));
    prometheus = await startHistoryPrometheus(`${agent.text}\n${kubelet.text}`);
    url = prometheus.url;
  });

  after(async () => {
    await prometheus?.stop();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  const window = ['--until', new Date(start + minutes * 60_000).toISOString(), '--since', '12h', '--step', '1m', '-o', 'json'];
  const simulate = (args: string[]): Promise<Result> => run(node, ['plugin/main.ts', 'simulate', '--resize-latency', '2m', ...args]);

  function withoutSource(result: SimulationResult): Omit<SimulationResult, 'source' | 'metric'> {
    const { source: _source, metric: _metric, ...rest } = result;
    return rest;
  }

  it('replays the agent\'s metric, and says what it says for the same samples as CSV', async () => {
    const fromPrometheus = await simulate(['-f', path.join(tmp ?? '', 'policy.yaml'), '--prometheus', url, '-n', 'db', '--cluster', 'pg', ...window]);
    assert.equal(fromPrometheus.code, 0, fromPrometheus.stderr);
    const fromCsv = await simulate(['-f', path.join(tmp ?? '', 'policy.yaml'), '--trace', path.join(tmp ?? '', 'pg.csv'), '--step', '1m', '-o', 'json']);
    assert.equal(fromCsv.code, 0, fromCsv.stderr);
    const a = JSON.parse(fromPrometheus.stdout) as SimulationResult;
    const b = JSON.parse(fromCsv.stdout) as SimulationResult;
    assert.equal(a.source, url);
    assert.equal(a.metric, 'cnpg_disk_used_bytes');
    assert.deepEqual(a.instances, ['pg-1', 'pg-2', 'pg-3']);
    assert.equal(a.start, '2026-01-12T00:00:00Z');
    assert.equal(a.end, '2026-01-12T12:00:00Z');
    assert.ok(a.resizes.length > 0, 'the stuck slot on pg-2 needs room');
    assert.equal(a.resizes.at(-1)?.instance, 'pg-2', 'pg-2, the fullest, drives the size');
    assert.ok(a.finalSize * 0.97 * 0.95 > usage('pg-2', minutes), 'the final size holds pg-2');
    assert.deepEqual(withoutSource(a), withoutSource(b));
  });

  it('falls back to kubelet\'s metric for a Cluster without the agent, by CNPG\'s PVC names, with the policy\'s namespace and Cluster', async () => {
    const fromPrometheus = await simulate(['-f', path.join(tmp ?? '', 'legacy.yaml'), '--prometheus', url, ...window]);
    assert.equal(fromPrometheus.code, 0, fromPrometheus.stderr);
    const fromCsv = await simulate(['-f', path.join(tmp ?? '', 'legacy.yaml'), '--trace', path.join(tmp ?? '', 'legacy.csv'), '--step', '1m', '-o', 'json']);
    const a = JSON.parse(fromPrometheus.stdout) as SimulationResult;
    assert.equal(a.metric, 'kubelet_volume_stats_used_bytes');
    assert.deepEqual(a.instances, ['legacy-1', 'legacy-2']);
    assert.deepEqual(withoutSource(a), withoutSource(JSON.parse(fromCsv.stdout) as SimulationResult));
  });

  it('prints the table', async () => {
    const result = await simulate(['-f', path.join(tmp ?? '', 'policy.yaml'), '--prometheus', `${url}/`, ...window.slice(0, -2)]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^Simulation: DynamicStorage db/pg, data volume\n {2}History: {9}${url}/ \\(cnpg_disk_used_bytes\\)\n {2}Instances: {7}pg-1, pg-2, pg-3\n`));
  });

  it('says so when there is no history, and when Prometheus cannot be reached', async () => {
    const none = await simulate(['-f', path.join(tmp ?? '', 'policy.yaml'), '--prometheus', url, '--cluster', 'nothing', ...window]);
    assert.equal(none.code, 1);
    assert.equal(none.stdout, '');
    assert.equal(none.stderr, `Prometheus at ${url} has no usable samples of cnpg_disk_used_bytes or kubelet_volume_stats_used_bytes for the data volumes of Cluster db/nothing between 2026-01-12T00:00:00.000Z and 2026-01-12T12:00:00.000Z [PrometheusNoData]\n`);
    const wal = await simulate(['-f', path.join(tmp ?? '', 'policy.yaml'), '--prometheus', url, '--volume', 'wal', ...window]);
    assert.equal(wal.code, 1);
    assert.match(wal.stderr, /does not manage the wal volume.*\[VolumeNotManaged\]/);
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await simulate(['-f', path.join(tmp ?? '', 'policy.yaml'), '--prometheus', closed, ...window]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^cannot reach Prometheus at http:\/\/127\.0\.0\.1:\d+: fetch failed: .*ECONNREFUSED.* \[PrometheusUnreachable\]\n$/);
  });
});

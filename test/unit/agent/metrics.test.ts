import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { createAgentMetrics, volumeLabelNames, type AgentMetricsSource } from '../../../agent/metrics.ts';
import type { VolumeReading } from '../../../shared/readings.ts';
import { identity } from './fakes.ts';

const at = '2025-01-01T00:00:00.000Z';
const readings: VolumeReading[] = [
  {
    ...identity('pg-1'), status: 'ok', sampledAt: at, changedAt: at,
    usage: { totalBytes: 1000, usedBytes: 250, availableBytes: 700, freeBytes: 750, percentUsed: 27, inodesTotal: 100, inodesUsed: 3, inodesFree: 97, inodesPercentUsed: 3 },
  },
  {
    ...identity('pg-1-tbs-tbs1', 'tablespace'), status: 'ok', sampledAt: at, changedAt: at,
    usage: { totalBytes: 2000, usedBytes: 0, availableBytes: 2000, freeBytes: 2000, percentUsed: 0, inodesTotal: 10, inodesUsed: 1, inodesFree: 9, inodesPercentUsed: 10 },
  },
  { ...identity('pg-1-wal', 'wal'), status: 'error', error: { code: 'ENOENT', message: 'gone' }, sampledAt: at, changedAt: at },
];

const l1 = 'namespace="db",cluster="pg",instance="pg-1",volume_type="data",tablespace="",persistentvolumeclaim="pg-1",node="node-a"';
const l2 = 'namespace="db",cluster="pg",instance="pg-1",volume_type="tablespace",tablespace="tbs1",persistentvolumeclaim="pg-1-tbs-tbs1",node="node-a"';

describe('agent metrics', () => {
  it('exposes volume gauges from the latest readings and the agent\'s own metrics, exactly', async () => {
    let current = readings;
    const metrics = createAgentMetrics({ readings: () => current, lastPassAt: 1_700_000_000_500, streamClients: () => 2 }, { processMetrics: false });
    metrics.observePass({ durationSeconds: 0.0003, volumes: 3, errors: 1 });
    metrics.countProbeError('ENOENT');
    const gauge = (name: string, help: string, a: number, b: number): string =>
      `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}{${l1}} ${a}\n${name}{${l2}} ${b}\n`;
    const families = [
      gauge('cnpg_disk_total_bytes', 'Size of the volume\'s filesystem in bytes (f_blocks x f_frsize).', 1000, 2000),
      gauge('cnpg_disk_used_bytes', 'Bytes used on the volume\'s filesystem (total - free).', 250, 0),
      gauge('cnpg_disk_available_bytes', 'Bytes available to unprivileged writers (f_bavail x f_frsize).', 700, 2000),
      gauge('cnpg_disk_percent_used', 'Percent of the filesystem used, as df computes it: ceil(used x 100 / (used + available)).', 27, 0),
      gauge('cnpg_disk_inodes_total', 'Inodes of the volume\'s filesystem.', 100, 10),
      gauge('cnpg_disk_inodes_used', 'Inodes in use on the volume\'s filesystem.', 3, 1),
      gauge('cnpg_disk_inodes_free', 'Free inodes on the volume\'s filesystem.', 97, 9),
      '# HELP cnpg_dynamic_storage_agent_volumes Volumes the agent watches on its node, by status.\n' +
      '# TYPE cnpg_dynamic_storage_agent_volumes gauge\n' +
      'cnpg_dynamic_storage_agent_volumes{status="ok"} 2\n' +
      'cnpg_dynamic_storage_agent_volumes{status="error"} 1\n' +
      'cnpg_dynamic_storage_agent_volumes{status="unsupported"} 0\n',
      '# HELP cnpg_dynamic_storage_agent_last_probe_timestamp_seconds When the last probe pass ended, seconds since the epoch.\n' +
      '# TYPE cnpg_dynamic_storage_agent_last_probe_timestamp_seconds gauge\n' +
      'cnpg_dynamic_storage_agent_last_probe_timestamp_seconds 1700000000.5\n',
      '# HELP cnpg_dynamic_storage_agent_stream_clients Consumers connected to the change stream.\n' +
      '# TYPE cnpg_dynamic_storage_agent_stream_clients gauge\n' +
      'cnpg_dynamic_storage_agent_stream_clients 2\n',
      '# HELP cnpg_dynamic_storage_agent_probe_duration_seconds Duration of a probe pass over every volume on the node.\n' +
      '# TYPE cnpg_dynamic_storage_agent_probe_duration_seconds histogram\n' +
      [['0.0001', 0], ['0.00025', 0], ['0.0005', 1], ['0.001', 1], ['0.0025', 1], ['0.005', 1], ['0.01', 1], ['0.025', 1], ['0.1', 1], ['1', 1], ['+Inf', 1]]
        .map(([le, n]) => `cnpg_dynamic_storage_agent_probe_duration_seconds_bucket{le="${le}"} ${n}\n`).join('') +
      'cnpg_dynamic_storage_agent_probe_duration_seconds_sum 0.0003\n' +
      'cnpg_dynamic_storage_agent_probe_duration_seconds_count 1\n',
      '# HELP cnpg_dynamic_storage_agent_probe_errors_total Failed volume probes, by error code (errno name or NotMounted).\n' +
      '# TYPE cnpg_dynamic_storage_agent_probe_errors_total counter\n' +
      'cnpg_dynamic_storage_agent_probe_errors_total{code="ENOENT"} 1\n',
    ];
    const expected = families.join('\n');
    assert.equal(await metrics.expose(), expected);
    assert.equal(metrics.contentType, 'text/plain; version=0.0.4; charset=utf-8');

    current = [];
    const after = await metrics.expose();
    assert.doesNotMatch(after, /persistentvolumeclaim=/, 'a volume that went away is gone from the next scrape');
    assert.match(after, /# TYPE cnpg_disk_total_bytes gauge\n\n# HELP cnpg_disk_used_bytes/);
  });

  it('writes the same text as prom-client would: escaped label values, odd numbers, several codes, slow passes', async () => {
    const odd = (pvc: string, usage: Partial<NonNullable<VolumeReading['usage']>>, extra = {}): VolumeReading => ({
      ...identity(pvc, 'tablespace', extra), status: 'ok', sampledAt: at, changedAt: at,
      usage: { totalBytes: 1, usedBytes: 1, availableBytes: 0, freeBytes: 0, percentUsed: 100, inodesTotal: 1, inodesUsed: 1, inodesFree: 0, inodesPercentUsed: 100, ...usage },
    });
    const tricky: VolumeReading[] = [
      ...readings,
      odd('pg-2-tbs-a', { totalBytes: 2 ** 53 + 2, usedBytes: 1e21, availableBytes: 0.1 + 0.2 }, { tablespace: 'quote"back\\slash\nnew' }),
      odd('pg-3-tbs-b', { percentUsed: NaN, inodesTotal: Infinity, inodesFree: -Infinity }, { namespace: 'ns-ü' }),
      { ...identity('pg-4'), status: 'unsupported', unsupported: { reason: 'block' }, sampledAt: at, changedAt: at } as VolumeReading,
    ];
    let lastPassAt: number | undefined;
    const source: AgentMetricsSource = { readings: () => tricky, get lastPassAt() { return lastPassAt; }, streamClients: () => 0 };
    const ours = createAgentMetrics(source, { processMetrics: false });
    const reference = promClientReference(source);
    const passes = [0.00005, 0.0001, 0.00025, 0.0007, 0.3, 1, 2.5, 0.1 + 0.2];
    const codes = ['ENOENT', 'NotMounted', 'ENOENT', 'EIO', 'with"quote'];
    assert.equal(await ours.expose(), await reference.metrics(), 'before any pass');
    for (const [i, seconds] of passes.entries()) {
      for (const target of [ours, reference]) {
        target.observePass({ durationSeconds: seconds, volumes: 1, errors: 0 });
        const code = codes[i % codes.length] ?? '';
        if (i % 2 === 0) target.countProbeError(code);
      }
      if (i === 3) lastPassAt = 1_700_000_123_456;
      assert.equal(await ours.expose(), await reference.metrics(), `after pass ${i}`);
    }
  });

  it('adds process metrics on request', async () => {
    const metrics = createAgentMetrics({ readings: () => [], lastPassAt: undefined, streamClients: () => 0 }, { processMetrics: true });
    assert.match(await metrics.expose(), /^process_resident_memory_bytes \d+/m);
  });
});

/** The agent's metrics as prom-client gauges, counter and histogram (what the agent used before writing the text itself). */
function promClientReference(source: AgentMetricsSource): Registry & Pick<ReturnType<typeof createAgentMetrics>, 'observePass' | 'countProbeError'> {
  const registry = new Registry();
  const fields = ['totalBytes', 'usedBytes', 'availableBytes', 'percentUsed', 'inodesTotal', 'inodesUsed', 'inodesFree'] as const;
  const helps = ['Size of the volume\'s filesystem in bytes (f_blocks x f_frsize).', 'Bytes used on the volume\'s filesystem (total - free).',
    'Bytes available to unprivileged writers (f_bavail x f_frsize).', 'Percent of the filesystem used, as df computes it: ceil(used x 100 / (used + available)).',
    'Inodes of the volume\'s filesystem.', 'Inodes in use on the volume\'s filesystem.', 'Free inodes on the volume\'s filesystem.'];
  const gaugeNames = ['total_bytes', 'used_bytes', 'available_bytes', 'percent_used', 'inodes_total', 'inodes_used', 'inodes_free'];
  fields.forEach((field, i) => {
    new Gauge({
      name: `cnpg_disk_${gaugeNames[i] ?? ''}`, help: helps[i] ?? '', labelNames: volumeLabelNames, registers: [registry],
      collect() {
        this.reset();
        for (const r of source.readings()) {
          if (r.usage) {
            this.set({ namespace: r.namespace, cluster: r.cluster, instance: r.instance, volume_type: r.role, tablespace: r.tablespace ?? '',
              persistentvolumeclaim: r.pvc, node: r.node }, r.usage[field]);
          }
        }
      },
    });
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_agent_volumes', help: 'Volumes the agent watches on its node, by status.', labelNames: ['status'], registers: [registry],
    collect() {
      const counts = new Map<string, number>([['ok', 0], ['error', 0], ['unsupported', 0]]);
      for (const r of source.readings()) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
      for (const [status, count] of counts) this.set({ status }, count);
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_agent_last_probe_timestamp_seconds', help: 'When the last probe pass ended, seconds since the epoch.', registers: [registry],
    collect() { if (source.lastPassAt !== undefined) this.set(source.lastPassAt / 1000); },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_agent_stream_clients', help: 'Consumers connected to the change stream.', registers: [registry],
    collect() { this.set(source.streamClients()); },
  });
  const duration = new Histogram({
    name: 'cnpg_dynamic_storage_agent_probe_duration_seconds', help: 'Duration of a probe pass over every volume on the node.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1], registers: [registry],
  });
  const errors = new Counter({
    name: 'cnpg_dynamic_storage_agent_probe_errors_total', help: 'Failed volume probes, by error code (errno name or NotMounted).',
    labelNames: ['code'], registers: [registry],
  });
  return Object.assign(registry, {
    observePass: (stats: { durationSeconds: number }) => { duration.observe(stats.durationSeconds); },
    countProbeError: (code: string) => { errors.inc({ code }); },
  });
}

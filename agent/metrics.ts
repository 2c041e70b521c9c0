/**
 * The agent's Prometheus metrics on a private registry. Volume gauges are computed at scrape time from the prober's latest
 * readings, so a volume that went away disappears from the next scrape and nothing is kept per volume in between.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { VolumeReading, VolumeStatus } from '../shared/readings.ts';
import type { PassStats } from './prober.ts';

export const volumeLabelNames = ['namespace', 'cluster', 'instance', 'volume_type', 'tablespace', 'persistentvolumeclaim', 'node'] as const;
type VolumeLabel = (typeof volumeLabelNames)[number];

export interface AgentMetricsSource {
  readings(): readonly VolumeReading[];
  lastPassAt: number | undefined;
  streamClients(): number;
}

export interface AgentMetrics {
  readonly registry: Registry;
  observePass(stats: PassStats): void;
  countProbeError(code: string): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  expose(): Promise<string>;
  readonly contentType: string;
}

function volumeLabels(r: VolumeReading): Record<VolumeLabel, string> {
  return {
    namespace: r.namespace, cluster: r.cluster, instance: r.instance, volume_type: r.role, tablespace: r.tablespace ?? '',
    persistentvolumeclaim: r.pvc, node: r.node,
  };
}

type UsageField = 'totalBytes' | 'usedBytes' | 'availableBytes' | 'percentUsed' | 'inodesTotal' | 'inodesUsed' | 'inodesFree';

const volumeGauges: readonly [string, string, UsageField][] = [
  ['cnpg_disk_total_bytes', 'Size of the volume\'s filesystem in bytes (f_blocks x f_frsize).', 'totalBytes'],
  ['cnpg_disk_used_bytes', 'Bytes used on the volume\'s filesystem (total - free).', 'usedBytes'],
  ['cnpg_disk_available_bytes', 'Bytes available to unprivileged writers (f_bavail x f_frsize).', 'availableBytes'],
  ['cnpg_disk_percent_used', 'Percent of the filesystem used, as df computes it: ceil(used x 100 / (used + available)).', 'percentUsed'],
  ['cnpg_disk_inodes_total', 'Inodes of the volume\'s filesystem.', 'inodesTotal'],
  ['cnpg_disk_inodes_used', 'Inodes in use on the volume\'s filesystem.', 'inodesUsed'],
  ['cnpg_disk_inodes_free', 'Free inodes on the volume\'s filesystem.', 'inodesFree'],
];

const statuses: readonly VolumeStatus[] = ['ok', 'error', 'unsupported'];

export interface MetricsOptions {
  /** Also export Node's process metrics (CPU, RSS, heap, event loop lag). */
  processMetrics: boolean;
}

export function createAgentMetrics(source: AgentMetricsSource, options: MetricsOptions): AgentMetrics {
  const registry = new Registry();
  for (const [name, help, field] of volumeGauges) {
    new Gauge({
      name, help, labelNames: volumeLabelNames, registers: [registry],
      collect() {
        this.reset();
        for (const r of source.readings()) {
          if (r.usage) this.set(volumeLabels(r), r.usage[field]);
        }
      },
    });
  }
  new Gauge({
    name: 'cnpg_dynamic_storage_agent_volumes', help: 'Volumes the agent watches on its node, by status.',
    labelNames: ['status'], registers: [registry],
    collect() {
      const counts = new Map<VolumeStatus, number>(statuses.map((s) => [s, 0]));
      for (const r of source.readings()) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
      for (const [status, count] of counts) this.set({ status }, count);
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_agent_last_probe_timestamp_seconds', help: 'When the last probe pass ended, seconds since the epoch.',
    registers: [registry],
    collect() {
      if (source.lastPassAt !== undefined) this.set(source.lastPassAt / 1000);
    },
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
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
    contentType: registry.contentType,
    observePass: (stats) => { duration.observe(stats.durationSeconds); },
    countProbeError: (code) => { errors.inc({ code }); },
    expose: () => registry.metrics(),
  };
}

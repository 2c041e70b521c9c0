/**
 * The agent's Prometheus metrics. Volume gauges are computed at scrape time from the prober's latest readings, so a volume
 * that went away disappears from the next scrape and nothing is kept per volume in between.
 *
 * The exposition text (format 0.0.4) is written here directly, byte for byte as prom-client writes it: loading prom-client
 * costs the agent ~9 MiB of memory, and its gauges build a labels object and a hash per volume and gauge on every scrape
 * (3,500 series at 500 volumes). prom-client is loaded only when Node's process metrics are asked for (PROCESS_METRICS).
 */
import type { VolumeReading, VolumeStatus } from '../shared/readings.ts';
import type { PassStats } from './prober.ts';

export const volumeLabelNames = ['namespace', 'cluster', 'instance', 'volume_type', 'tablespace', 'persistentvolumeclaim', 'node'] as const;

export interface AgentMetricsSource {
  readings(): readonly VolumeReading[];
  lastPassAt: number | undefined;
  streamClients(): number;
}

export interface AgentMetrics {
  /** The names of the metric families the agent exports (without Node's process metrics). */
  readonly familyNames: readonly string[];
  observePass(stats: PassStats): void;
  countProbeError(code: string): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  expose(): Promise<string>;
  readonly contentType: string;
}

export const contentType = 'text/plain; version=0.0.4; charset=utf-8';

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

const durationBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1] as const;

const names = {
  volumes: 'cnpg_dynamic_storage_agent_volumes',
  lastProbe: 'cnpg_dynamic_storage_agent_last_probe_timestamp_seconds',
  streamClients: 'cnpg_dynamic_storage_agent_stream_clients',
  duration: 'cnpg_dynamic_storage_agent_probe_duration_seconds',
  errors: 'cnpg_dynamic_storage_agent_probe_errors_total',
} as const;

/** `\` and newlines escaped, as in HELP text; label values also escape `"`. */
function escapeText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(value: string): string {
  return escapeText(value).replace(/"/g, '\\"');
}

/** A sample value as Prometheus' text format spells it (and prom-client, `Nan` included). */
export function sampleValue(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return `${value}`;
}

function header(name: string, help: string, type: 'gauge' | 'counter' | 'histogram'): string {
  return `# HELP ${name} ${escapeText(help)}\n# TYPE ${name} ${type}`;
}

function volumeLabels(r: VolumeReading): string {
  const values = [r.namespace, r.cluster, r.instance, r.role, r.tablespace ?? '', r.pvc, r.node];
  return volumeLabelNames.map((name, i) => `${name}="${escapeLabelValue(values[i] ?? '')}"`).join(',');
}

/** One family per volume gauge: a line per volume that has a usage. */
function volumeFamilies(readings: readonly VolumeReading[]): string[] {
  const measured = readings.filter((r) => r.usage !== undefined);
  const labels = measured.map(volumeLabels);
  return volumeGauges.map(([name, help, field]) => {
    const lines = [header(name, help, 'gauge')];
    measured.forEach((r, i) => { lines.push(`${name}{${labels[i] ?? ''}} ${sampleValue(r.usage?.[field] ?? NaN)}`); });
    return lines.join('\n');
  });
}

function volumesByStatus(readings: readonly VolumeReading[]): string {
  const counts = new Map<VolumeStatus, number>(statuses.map((s) => [s, 0]));
  for (const r of readings) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const lines = [header(names.volumes, 'Volumes the agent watches on its node, by status.', 'gauge')];
  for (const [status, count] of counts) lines.push(`${names.volumes}{status="${escapeLabelValue(status)}"} ${sampleValue(count)}`);
  return lines.join('\n');
}

/** Probe pass durations: cumulative buckets, sum and count. */
class DurationHistogram {
  private readonly counts = durationBuckets.map(() => 0);
  private sum = 0;
  private count = 0;

  observe(seconds: number): void {
    const bucket = durationBuckets.findIndex((bound) => seconds <= bound);
    if (bucket >= 0) this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    this.sum += seconds;
    this.count += 1;
  }

  family(): string {
    const name = names.duration;
    const lines = [header(name, 'Duration of a probe pass over every volume on the node.', 'histogram')];
    let cumulative = 0;
    durationBuckets.forEach((bound, i) => {
      cumulative += this.counts[i] ?? 0;
      lines.push(`${name}_bucket{le="${bound}"} ${sampleValue(cumulative)}`);
    });
    lines.push(`${name}_bucket{le="+Inf"} ${sampleValue(this.count)}`, `${name}_sum ${sampleValue(this.sum)}`, `${name}_count ${sampleValue(this.count)}`);
    return lines.join('\n');
  }
}

/** Node's process metrics from prom-client, on a registry of their own; prom-client is loaded only for them. */
async function processMetricsRegistry(): Promise<{ metrics(): Promise<string> }> {
  const { collectDefaultMetrics, Registry } = await import('prom-client');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsOptions {
  /** Also export Node's process metrics (CPU, RSS, heap, event loop lag). */
  processMetrics: boolean;
}

export function createAgentMetrics(source: AgentMetricsSource, options: MetricsOptions): AgentMetrics {
  const duration = new DurationHistogram();
  const errors = new Map<string, number>();
  // The timestamp gauge keeps its last value, 0 before the first pass (as a prom-client gauge without labels does).
  let lastProbeSeconds = 0;
  const processRegistry = options.processMetrics ? processMetricsRegistry() : undefined;
  // A rejected import is reported by expose(), not as an unhandled rejection before the first scrape.
  processRegistry?.catch(() => undefined);
  return {
    familyNames: [...volumeGauges.map(([name]) => name), names.volumes, names.lastProbe, names.streamClients, names.duration, names.errors],
    contentType,
    observePass: (stats) => { duration.observe(stats.durationSeconds); },
    countProbeError: (code) => { errors.set(code, (errors.get(code) ?? 0) + 1); },
    async expose(): Promise<string> {
      const readings = source.readings();
      if (source.lastPassAt !== undefined) lastProbeSeconds = source.lastPassAt / 1000;
      const families = [
        ...volumeFamilies(readings),
        volumesByStatus(readings),
        `${header(names.lastProbe, 'When the last probe pass ended, seconds since the epoch.', 'gauge')}\n${names.lastProbe} ${sampleValue(lastProbeSeconds)}`,
        `${header(names.streamClients, 'Consumers connected to the change stream.', 'gauge')}\n${names.streamClients} ${sampleValue(source.streamClients())}`,
        duration.family(),
        [header(names.errors, 'Failed volume probes, by error code (errno name or NotMounted).', 'counter'),
          ...[...errors].map(([code, n]) => `${names.errors}{code="${escapeLabelValue(code)}"} ${sampleValue(n)}`)].join('\n'),
      ];
      const text = `${families.join('\n\n')}\n`;
      return processRegistry ? `${text}\n${await (await processRegistry).metrics()}` : text;
    },
  };
}

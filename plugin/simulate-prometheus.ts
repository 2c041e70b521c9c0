/**
 * Usage history from Prometheus for `kubectl cnpg storage simulate --prometheus`: the node agent's
 * `cnpg_disk_used_bytes`, or kubelet's `kubelet_volume_stats_used_bytes` when the agent's metric has no samples (a
 * Cluster whose nodes do not run the agent yet). Range queries are split so that none asks for more than Prometheus's
 * 11,000 points per series. Building queries and turning answers into per-instance series is pure; `readPrometheusHistory`
 * does the HTTP (global fetch, or one passed in).
 */
import type { InstanceTrace, UsagePoint } from '../controller/policy/replay.ts';
import type { VolumeSlotId } from '../shared/cnpg.ts';
import { errorMessage } from '../shared/errors.ts';
import { SimulateErrorCodes, SimulateInputError } from './simulate-errors.ts';

/** The logical volume to read: what `--volume` names. */
export type VolumeSelector = VolumeSlotId;

export interface PrometheusRequest {
  /** Base URL of Prometheus (`http://prometheus:9090`, or with a path prefix). */
  url: string;
  namespace: string;
  cluster: string;
  volume: VolumeSelector;
  /** Milliseconds since the epoch; the range is [start, end] at `stepMs`. */
  start: number;
  end: number;
  stepMs: number;
  /** Per HTTP request; default 30 s. */
  timeoutMs?: number | undefined;
}

export interface PrometheusHistory {
  traces: InstanceTrace[];
  /** The metric the samples came from. */
  metric: typeof agentMetric | typeof kubeletMetric;
  query: string;
  /** Instances left out (a single sample cannot be replayed). */
  warnings: string[];
}

export const agentMetric = 'cnpg_disk_used_bytes';
export const kubeletMetric = 'kubelet_volume_stats_used_bytes';
/** Prometheus refuses range queries of more than 11,000 points per series; stay below. */
export const maxPointsPerQuery = 10_000;

type FetchFunction = (url: string, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<Response>;

/** A PromQL string literal. */
function literal(text: string): string {
  return JSON.stringify(text);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** CNPG's PVC name suffix for a volume: `<instance>`, `<instance>-wal`, `<instance>-tbs-<name>`. */
export function pvcSuffix(volume: VolumeSelector): string {
  if (volume.role === 'wal') return '-wal';
  if (volume.role === 'tablespace') return `-tbs-${volume.tablespace ?? ''}`;
  return '';
}

/**
 * The agent's metric for the volume. A Prometheus that scrapes the agent without honor_labels renames the agent's
 * `namespace` label to `exported_namespace` (its own is the agent's namespace), so both are asked for.
 */
export function agentQuery(namespace: string, cluster: string, volume: VolumeSelector): string {
  const common = [`cluster=${literal(cluster)}`, `volume_type=${literal(volume.role)}`];
  if (volume.role === 'tablespace') common.push(`tablespace=${literal(volume.tablespace ?? '')}`);
  return ['namespace', 'exported_namespace'].map((label) => `${agentMetric}{${[`${label}=${literal(namespace)}`, ...common].join(',')}}`).join(' or ');
}

/** kubelet's metric for the Cluster's PVCs of the volume, found by CNPG's PVC naming. */
export function kubeletQuery(namespace: string, cluster: string, volume: VolumeSelector): string {
  const pvcs = `${escapeRegex(cluster)}-[0-9]+${escapeRegex(pvcSuffix(volume))}`;
  return ['namespace', 'exported_namespace'].map((label) => `${kubeletMetric}{${label}=${literal(namespace)},persistentvolumeclaim=~${literal(pvcs)}}`).join(' or ');
}

/** The instance a PVC belongs to, by CNPG's naming; the PVC's own name when it does not follow it. */
export function instanceOfPvc(pvc: string, volume: VolumeSelector): string {
  const suffix = pvcSuffix(volume);
  return suffix !== '' && pvc.endsWith(suffix) ? pvc.slice(0, -suffix.length) : pvc;
}

/** [start, end] cut into ranges of at most `maxPoints` steps, each starting one step after the previous ended. */
export function queryRanges(start: number, end: number, stepMs: number, maxPoints = maxPointsPerQuery): { start: number; end: number }[] {
  const ranges: { start: number; end: number }[] = [];
  for (let from = start; from <= end; from += maxPoints * stepMs) {
    ranges.push({ start: from, end: Math.min(end, from + (maxPoints - 1) * stepMs) });
  }
  return ranges;
}

interface MatrixSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

function isMatrix(value: unknown): value is MatrixSeries[] {
  return Array.isArray(value) && value.every((item: unknown) => {
    if (typeof item !== 'object' || item === null) return false;
    const series = item as { metric?: unknown; values?: unknown };
    return typeof series.metric === 'object' && series.metric !== null && Array.isArray(series.values);
  });
}

/** The series of several range answers, merged per instance (a PVC that moved node is two series), sorted, deduplicated. */
export function tracesFromSeries(series: readonly MatrixSeries[], volume: VolumeSelector): { traces: InstanceTrace[]; warnings: string[] } {
  const byInstance = new Map<string, Map<number, number>>();
  for (const { metric, values } of series) {
    const pvc = metric.persistentvolumeclaim ?? metric.exported_persistentvolumeclaim;
    const instance = pvc === undefined ? (metric.exported_instance ?? metric.instance ?? 'unknown') : instanceOfPvc(pvc, volume);
    const points = byInstance.get(instance) ?? new Map<number, number>();
    for (const [seconds, text] of values) {
      const value = Number(text);
      if (!Number.isFinite(value) || value < 0) continue;
      const at = Math.round(seconds * 1000);
      points.set(at, Math.max(points.get(at) ?? 0, value));
    }
    byInstance.set(instance, points);
  }
  const traces: InstanceTrace[] = [];
  const warnings: string[] = [];
  for (const instance of [...byInstance.keys()].sort()) {
    const points = [...(byInstance.get(instance) ?? new Map<number, number>())].sort(([a], [b]) => a - b);
    const trace: UsagePoint[] = points.map(([at, used]) => ({ at: new Date(at), usedBytes: Math.round(used) }));
    if (trace.length >= 2) traces.push({ instance, trace });
    else warnings.push(`${instance}: ${trace.length} sample${trace.length === 1 ? '' : 's'} in the range, left out (a replay needs two)`);
  }
  return { traces, warnings };
}

function apiUrl(base: string, query: string, range: { start: number; end: number }, stepMs: number): string {
  const url = new URL('api/v1/query_range', base.endsWith('/') ? base : `${base}/`);
  url.searchParams.set('query', query);
  url.searchParams.set('start', String(range.start / 1000));
  url.searchParams.set('end', String(range.end / 1000));
  url.searchParams.set('step', String(stepMs / 1000));
  return url.toString();
}

async function queryRange(fetchImpl: FetchFunction, request: PrometheusRequest, query: string, range: { start: number; end: number }): Promise<MatrixSeries[]> {
  const url = apiUrl(request.url, query, range, request.stepMs);
  let response: Response;
  try {
    response = await fetchImpl(url, { signal: AbortSignal.timeout(request.timeoutMs ?? 30_000), headers: { accept: 'application/json' } });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    throw new SimulateInputError(SimulateErrorCodes.PrometheusUnreachable, `cannot reach Prometheus at ${request.url}: ${errorMessage(err)}${cause}`, { cause: err });
  }
  const body = await response.text().catch(() => '');
  let answer: { status?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } } | undefined;
  try {
    answer = JSON.parse(body) as typeof answer;
  } catch {
    answer = undefined;
  }
  if (!response.ok) {
    const detail = typeof answer?.error === 'string' ? answer.error : body.trim().slice(0, 200);
    throw new SimulateInputError(SimulateErrorCodes.PrometheusHttpError, `Prometheus at ${request.url} answered HTTP ${response.status} to ${query}${detail === '' ? '' : `: ${detail}`}`);
  }
  if (answer?.status !== 'success' || answer.data?.resultType !== 'matrix' || !isMatrix(answer.data.result)) {
    const detail = typeof answer?.error === 'string' ? `: ${answer.error}` : answer === undefined ? ': the answer is not JSON' : ': the answer is not a range query result';
    throw new SimulateInputError(SimulateErrorCodes.PrometheusQueryFailed, `Prometheus at ${request.url} did not answer ${query}${detail}`);
  }
  return answer.data.result;
}

async function readMetric(fetchImpl: FetchFunction, request: PrometheusRequest, query: string): Promise<MatrixSeries[]> {
  const series: MatrixSeries[] = [];
  for (const range of queryRanges(request.start, request.end, request.stepMs)) series.push(...(await queryRange(fetchImpl, request, query, range)));
  return series;
}

function describeVolume(volume: VolumeSelector): string {
  return volume.role === 'tablespace' ? `tablespace ${volume.tablespace ?? ''}` : volume.role === 'wal' ? 'WAL' : 'data';
}

/** The history of one logical volume of a Cluster: the agent's metric, else kubelet's. */
export async function readPrometheusHistory(request: PrometheusRequest, fetchImpl: FetchFunction = fetch): Promise<PrometheusHistory> {
  const candidates = [
    { metric: agentMetric, query: agentQuery(request.namespace, request.cluster, request.volume) },
    { metric: kubeletMetric, query: kubeletQuery(request.namespace, request.cluster, request.volume) },
  ] as const;
  const warnings: string[] = [];
  for (const { metric, query } of candidates) {
    const series = await readMetric(fetchImpl, request, query);
    if (series.length === 0) continue;
    const result = tracesFromSeries(series, request.volume);
    if (result.traces.length > 0) return { traces: result.traces, metric, query, warnings: result.warnings };
    warnings.push(...result.warnings);
  }
  const range = `${new Date(request.start).toISOString()} and ${new Date(request.end).toISOString()}`;
  throw new SimulateInputError(
    SimulateErrorCodes.PrometheusNoData,
    `Prometheus at ${request.url} has no usable samples of ${agentMetric} or ${kubeletMetric} for the ${describeVolume(request.volume)} volumes of Cluster ${request.namespace}/${request.cluster} between ${range}${warnings.length > 0 ? ` (${warnings.join('; ')})` : ''}`,
  );
}

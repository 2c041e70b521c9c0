/**
 * `kubectl cnpg storage simulate`: replays the sizing engine (the same `decide` the controller runs) over a usage history
 * — a CSV file or Prometheus — under a DynamicStorage policy, and reports the resizes it would make and what the volume
 * would go through. For trying a policy on one's own history before enabling it.
 *
 * Parsing options, loading the policy, building the result and rendering it are pure; `runSimulate` does the I/O.
 */
import { parseAllDocuments } from 'yaml';
import { dynamicStorageApiVersion, dynamicStorageKind, type VolumePolicy as ApiVolumePolicy } from '../shared/api/dynamicstorage.generated.ts';
import { sameSlot, slotLabel, untypedVolumeSlots } from '../shared/cnpg.ts';
import { errorMessage } from '../shared/errors.ts';
import { formatQuantity, parseQuantity } from '../shared/quantity.ts';
import { withDefaults } from '../controller/validation/index.ts';
import { providerFacts, resolveVolumePolicy } from '../controller/resolve.ts';
import { replay, type InstanceTrace, type ReplayReport } from '../controller/policy/replay.ts';
import type { EngineTuning, ProviderFacts, VolumePolicy } from '../controller/policy/types.ts';
import { UsageError, type CliIo, type Subcommand } from './command.ts';
import { humanDuration } from './status.ts';
import { renderText, validateDocuments } from './validate.ts';
import { SimulateErrorCodes, SimulateInputError } from './simulate-errors.ts';
import { readPrometheusHistory, type PrometheusRequest, type VolumeSelector } from './simulate-prometheus.ts';
import { parseTimestamp, parseTraceCsv } from './simulate-trace.ts';
import { isObject } from '../shared/objects.ts';
import { rfc3339 } from '../shared/time.ts';

export { SimulateErrorCodes, SimulateInputError } from './simulate-errors.ts';

export interface SimulateOptions {
  policyFile: string;
  /** CSV file (or `-`); exactly one of `trace` and `prometheus`. */
  trace: string | undefined;
  prometheus: { url: string; namespace: string | undefined; cluster: string | undefined; sinceMs: number; until: number | undefined } | undefined;
  volume: VolumeSelector;
  initialSize: number | undefined;
  resizeLatencyMs: number;
  stepMs: number;
  output: 'table' | 'json';
}

const DEFAULTS = { resizeLatencyMs: 60_000, stepMs: 15_000, sinceMs: 14 * 86_400_000 } as const;

const usage = `Usage: kubectl cnpg storage simulate -f <policy.yaml> (--trace <usage.csv> | --prometheus <url>) [options]

Replays the sizing engine over a usage history under a DynamicStorage policy and prints the resizes it would make,
how many actions any 24 hours took, the time out of space and at or over the critical threshold, and the provisioned
size against the ideal. The engine is the controller's own: what this prints is what the controller would do.

Options:
  -f, --filename <path>      the DynamicStorage (YAML or JSON; - for standard input); defaults are applied as the API
                             server would and an invalid policy is reported as "validate" reports it
      --trace <path>         usage history as CSV with the header timestamp,instance,used_bytes (- for standard input);
                             timestamps in unix seconds or RFC 3339, one row per instance per sample
      --volume <volume>      data, wal or tablespace:<name> (default data)
      --initial-size <size>  size of the volumes at the start (default: the policy's request)
      --resize-latency <d>   time from the resize to the grown filesystem (default 60s)
      --step <d>             how often the disk is sampled and the engine decides; with --prometheus also the query
                             resolution (default 15s)
  -o, --output table|json    output format (default table)

  Reading the history from Prometheus instead of --trace:
      --prometheus <url>     Prometheus base URL; reads cnpg_disk_used_bytes (the node agent), else kubelet's
                             kubelet_volume_stats_used_bytes
  -n, --namespace <ns>       namespace of the Cluster (default: the policy's namespace, else "default")
      --cluster <name>       the Cluster (default: the policy's spec.cluster.name)
      --since <d>            how far back (default 14d)
      --until <time>         end of the history, RFC 3339 or unix seconds (default: now)
  -h, --help                 this help

Durations: 90s, 15m, 1h30m, 14d. Exit status: 0 simulated, 1 the policy, the history or Prometheus has a problem
(printed on standard error), 2 wrong usage or an unreadable file.
`;

const durationPattern = /^(\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `1h30m`, `14d`, `250ms` in milliseconds; undefined when it is not such a duration. */
export function parseDurationText(text: string): number | undefined {
  if (!durationPattern.test(text)) return undefined;
  let total = 0;
  for (const [, amount = '0', unit = 's'] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(amount) * (durationUnits[unit] ?? 0);
  return total;
}

function duration(text: string, flag: string, minimumMs: number): number {
  const ms = parseDurationText(text);
  if (ms === undefined) throw new UsageError(`${flag} must be a duration such as 15s, 5m, 1h30m or 14d, not "${text}"`);
  if (ms < minimumMs) throw new UsageError(`${flag} must be at least ${humanDuration(minimumMs)}, not "${text}"`);
  return ms;
}

export function parseVolume(text: string): VolumeSelector {
  if (text === 'data' || text === 'wal') return { role: text };
  if (text.startsWith('tablespace:') && text.length > 'tablespace:'.length) return { role: 'tablespace', tablespace: text.slice('tablespace:'.length) };
  throw new UsageError(`--volume must be data, wal or tablespace:<name>, not "${text}"`);
}

/** The volume as `--volume` names it: data, wal, tablespace:<name>. */
function volumeArgument(volume: VolumeSelector): string {
  return volume.role === 'tablespace' ? `tablespace:${volume.tablespace ?? ''}` : volume.role;
}

const aliases: Record<string, string> = { '-f': '--filename', '-o': '--output', '-n': '--namespace' };
const valueFlags = new Set(['--filename', '--trace', '--volume', '--initial-size', '--resize-latency', '--step', '--output', '--prometheus', '--namespace', '--cluster', '--since', '--until']);

/** Every `--flag value`, `--flag=value` and `-f value`, by its long name; each flag at most once. */
function readArgs(args: readonly string[]): { values: Map<string, string> } {
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const given = eq > 0 ? arg.slice(0, eq) : arg;
    const flag = aliases[given] ?? given;
    if (!valueFlags.has(flag)) throw new UsageError(`unknown argument "${arg}"`);
    let value = eq > 0 ? arg.slice(eq + 1) : args[i + 1];
    if (eq <= 0) {
      if (value === undefined || (value.startsWith('-') && value !== '-')) throw new UsageError(`${given} needs a value`);
      i += 1;
    }
    value ??= '';
    if (values.has(flag)) throw new UsageError(`${given} is given twice`);
    values.set(flag, value);
  }
  return { values };
}

function parseUntil(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const at = parseTimestamp(text);
  if (at === undefined) throw new UsageError(`--until must be an RFC 3339 time such as 2026-01-31T00:00:00Z or unix seconds, not "${text}"`);
  return at;
}

function parseSource(values: ReadonlyMap<string, string>): Pick<SimulateOptions, 'trace' | 'prometheus'> {
  const trace = values.get('--trace');
  const url = values.get('--prometheus');
  if ((trace === undefined) === (url === undefined)) throw new UsageError('give the history with exactly one of --trace <usage.csv> and --prometheus <url>');
  if (url === undefined) {
    for (const flag of ['--namespace', '--cluster', '--since', '--until']) if (values.has(flag)) throw new UsageError(`${flag} goes with --prometheus`);
    return { trace, prometheus: undefined };
  }
  if (!/^https?:\/\/[^/]/.test(url) || !URL.canParse(url)) throw new UsageError(`--prometheus must be an http or https URL, not "${url}"`);
  const since = values.get('--since');
  return {
    trace: undefined,
    prometheus: {
      url,
      namespace: values.get('--namespace'),
      cluster: values.get('--cluster'),
      sinceMs: since === undefined ? DEFAULTS.sinceMs : duration(since, '--since', 60_000),
      until: parseUntil(values.get('--until')),
    },
  };
}

function parseInitialSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let bytes: number;
  try {
    bytes = parseQuantity(text, '--initial-size');
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  if (bytes <= 0) throw new UsageError(`--initial-size must be positive, not "${text}"`);
  return bytes;
}

export function parseSimulateArgs(args: readonly string[]): SimulateOptions {
  const { values } = readArgs(args);
  const policyFile = values.get('--filename');
  if (policyFile === undefined) throw new UsageError('no policy: give -f <policy.yaml>');
  if (policyFile === '-' && values.get('--trace') === '-') throw new UsageError('-f and --trace cannot both read standard input');
  const output = values.get('--output') ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`--output must be table or json, not "${output}"`);
  const latency = values.get('--resize-latency');
  const step = values.get('--step');
  return {
    policyFile,
    ...parseSource(values),
    volume: parseVolume(values.get('--volume') ?? 'data'),
    initialSize: parseInitialSize(values.get('--initial-size')),
    resizeLatencyMs: latency === undefined ? DEFAULTS.resizeLatencyMs : duration(latency, '--resize-latency', 0),
    stepMs: step === undefined ? DEFAULTS.stepMs : duration(step, '--step', 1000),
    output,
  };
}

type Json = Record<string, unknown>;

/** The engine's view of one volume of a DynamicStorage, as the controller resolves it. */
export interface LoadedPolicy {
  namespace: string;
  name: string;
  cluster: string;
  volume: VolumeSelector;
  /** `data`, `wal`, `tablespace app`: the engine's label. */
  label: string;
  /** `spec.storage`, `spec.walStorage`, `spec.tablespaces[0].storage`. */
  field: string;
  policy: VolumePolicy;
  tuning: EngineTuning;
  provider: ProviderFacts;
}

function managedVolumes(spec: Json): string {
  const names = untypedVolumeSlots(spec).filter((s) => s.role !== 'tablespace' || s.tablespace !== undefined).map(volumeArgument);
  return names.length === 0 ? 'none' : names.join(', ');
}

/**
 * The one DynamicStorage of `text` (YAML or JSON; other objects such as its Cluster may sit beside it), checked as
 * `validate` checks it, with the API server's defaults, resolved for `volume`. Pure.
 */
export function loadPolicy(text: string, source: string, volume: VolumeSelector): LoadedPolicy {
  const objects: Json[] = [];
  for (const [index, document] of parseAllDocuments(text).entries()) {
    if (document.errors.length > 0) {
      const messages = document.errors.map((e) => e.message.split('\n')[0] ?? '').join('; ');
      throw new SimulateInputError(SimulateErrorCodes.PolicyNotParsed, `${source}: document ${index + 1} is not valid YAML: ${messages}`);
    }
    const object: unknown = document.toJS();
    if (isObject(object)) objects.push(object);
  }
  const policies = objects.filter((o) => o.apiVersion === dynamicStorageApiVersion && o.kind === dynamicStorageKind);
  if (policies.length === 0) throw new SimulateInputError(SimulateErrorCodes.NoPolicy, `${source}: no ${dynamicStorageKind} (apiVersion ${dynamicStorageApiVersion})`);
  if (policies.length > 1) throw new SimulateInputError(SimulateErrorCodes.SeveralPolicies, `${source}: ${policies.length} ${dynamicStorageKind} objects; give a file with one`);
  const reports = validateDocuments(objects.map((object) => ({ source, object })), { requireCluster: false, namespace: 'default' });
  const report = reports[0];
  if (report === undefined || !report.valid) throw new SimulateInputError(SimulateErrorCodes.InvalidPolicy, renderText(reports).trimEnd());
  const stored = withDefaults(policies[0]) as Json;
  const spec = isObject(stored.spec) ? stored.spec : {};
  const selected = untypedVolumeSlots(spec).find((s) => sameSlot(s, volume));
  const label = slotLabel(volume);
  if (selected === undefined) {
    const where = volume.role === 'data' ? 'spec.storage' : volume.role === 'wal' ? 'spec.walStorage' : `spec.tablespaces[name=${volume.tablespace ?? ''}].storage`;
    throw new SimulateInputError(SimulateErrorCodes.VolumeNotManaged, `${source}: DynamicStorage ${report.namespace}/${report.name} does not manage the ${label} volume (no ${where}); it manages: ${managedVolumes(spec)}`);
  }
  const resolved = resolveVolumePolicy(selected.policy as unknown as ApiVolumePolicy, selected.field);
  const cluster = isObject(spec.cluster) && typeof spec.cluster.name === 'string' ? spec.cluster.name : report.name;
  return {
    namespace: report.namespace,
    name: report.name,
    cluster,
    volume,
    label,
    field: selected.field,
    policy: resolved.policy,
    tuning: resolved.tuning,
    provider: providerFacts(undefined, resolved.roundToAzureTier),
  };
}

export interface SimulationSource {
  /** `usage.csv`, or the Prometheus URL. */
  description: string;
  /** The metric read from Prometheus; undefined for a file. */
  metric?: string | undefined;
}

export interface SimulatedResize {
  at: string;
  kind: 'Emergency' | 'Scheduled';
  from: number;
  to: number;
  reason: string;
  message: string;
  /** The fullest instance when the engine decided. */
  instance: string | null;
}

/** What `-o json` prints; the table shows the same. Sizes in bytes, times RFC 3339. */
export interface SimulationResult {
  dynamicStorage: string;
  volume: string;
  source: string;
  metric: string | null;
  instances: string[];
  start: string;
  end: string;
  stepSeconds: number;
  resizeLatencySeconds: number;
  initialSize: number;
  policy: { request: number; limit: number; targetBuffer: number; criticalThreshold: number; maxActionsPerDay: number; reservedActionsForEmergency: number; maintenanceWindow: string | null };
  resizes: SimulatedResize[];
  maxActionsIn24h: number;
  secondsOutOfSpace: number;
  secondsOverCritical: number;
  provisionedGiBHours: number;
  idealGiBHours: number;
  finalSize: number;
  perInstance: { instance: string; maxPercentUsed: number; secondsOverCritical: number; secondsOutOfSpace: number }[];
  warnings: string[];
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

function windowText(policy: VolumePolicy): string | null {
  const window = policy.maintenanceWindow;
  return window.kind === 'always' ? null : `${window.schedule} ${window.timezone} for ${compactDuration(window.durationMs)}`;
}

export interface SimulationRun {
  loaded: LoadedPolicy;
  traces: readonly InstanceTrace[];
  source: SimulationSource;
  initialSize: number | undefined;
  resizeLatencyMs: number;
  stepMs: number;
  warnings?: readonly string[] | undefined;
}

/** Replays the engine and shapes the result. Pure and deterministic. */
export function simulate(run: SimulationRun): SimulationResult {
  const { loaded } = run;
  const initialSize = run.initialSize ?? loaded.policy.request;
  const report: ReplayReport = replay({
    policy: loaded.policy,
    tuning: loaded.tuning,
    provider: loaded.provider,
    instanceTraces: run.traces,
    initialSize,
    stepMs: run.stepMs,
    resizeLatencyMs: run.resizeLatencyMs,
    volume: loaded.label,
  });
  const emergency = loaded.policy.emergencyGrow;
  return {
    dynamicStorage: `${loaded.namespace}/${loaded.name}`,
    volume: volumeArgument(loaded.volume),
    source: run.source.description,
    metric: run.source.metric ?? null,
    instances: run.traces.map((t) => t.instance),
    start: rfc3339(report.start),
    end: rfc3339(report.end),
    stepSeconds: run.stepMs / 1000,
    resizeLatencySeconds: run.resizeLatencyMs / 1000,
    initialSize,
    policy: {
      request: loaded.policy.request,
      limit: loaded.policy.limit,
      targetBuffer: loaded.policy.targetBuffer,
      criticalThreshold: emergency.criticalThreshold,
      maxActionsPerDay: emergency.maxActionsPerDay,
      reservedActionsForEmergency: emergency.reservedActionsForEmergency,
      maintenanceWindow: windowText(loaded.policy),
    },
    resizes: report.resizes.map((r) => ({
      at: rfc3339(r.at),
      kind: r.kind === 'EmergencyGrow' ? 'Emergency' : 'Scheduled',
      from: r.from,
      to: r.to,
      reason: r.reason,
      message: r.message,
      instance: r.fullestInstance ?? null,
    })),
    maxActionsIn24h: report.maxActionsIn24h,
    secondsOutOfSpace: report.secondsOutOfSpace,
    secondsOverCritical: report.secondsOverCritical,
    provisionedGiBHours: round(report.provisionedGiBHours, 3),
    idealGiBHours: round(report.idealGiBHours, 3),
    finalSize: report.finalSize,
    perInstance: report.instances.map((i) => ({
      instance: i.instance,
      maxPercentUsed: round(i.maxPercentUsed, 1),
      secondsOverCritical: i.secondsOverCritical,
      secondsOutOfSpace: i.secondsOutOfSpace,
    })),
    warnings: [...(run.warnings ?? [])],
  };
}

/** An exact duration in its largest units: `4d`, `2h`, `1h30m`, `3m15s`, `0s`. */
export function compactDuration(ms: number): string {
  let rest = Math.round(ms / 1000);
  if (rest <= 0) return '0s';
  let text = '';
  for (const [unit, length] of [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]] as const) {
    const amount = Math.floor(rest / length);
    if (amount > 0) text += `${amount}${unit}`;
    rest -= amount * length;
  }
  return text;
}

function size(bytes: number): string {
  return Number.isSafeInteger(bytes) ? formatQuantity(bytes) : String(bytes);
}

function seconds(value: number): string {
  return compactDuration(value * 1000);
}

function columns(rows: readonly (readonly string[])[], indent: string): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length); });
  return rows.map((row) => `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3))).join('')}`.trimEnd());
}

/** The result as text: the setting, the resize timeline (sizes as Kubernetes quantities), the totals, per instance. */
export function renderSimulation(result: SimulationResult): string {
  const p = result.policy;
  const lines = [
    `Simulation: DynamicStorage ${result.dynamicStorage}, ${result.volume} volume`,
    `  History:         ${result.source}${result.metric === null ? '' : ` (${result.metric})`}`,
    `  Instances:       ${result.instances.join(', ')}`,
    `  Period:          ${result.start} to ${result.end} (${compactDuration(Date.parse(result.end) - Date.parse(result.start))}), every ${seconds(result.stepSeconds)}`,
    `  Resize latency:  ${seconds(result.resizeLatencySeconds)}`,
    `  Policy:          request ${size(p.request)}, limit ${size(p.limit)}, target buffer ${p.targetBuffer}%, critical at ${p.criticalThreshold}%`,
    `  Window:          ${p.maintenanceWindow ?? 'none (planned growth at any time)'}`,
    `  Budget:          ${p.maxActionsPerDay} actions a day, ${p.reservedActionsForEmergency} reserved for emergencies`,
    `  Initial size:    ${size(result.initialSize)}`,
    '',
    `Resizes: ${result.resizes.length}`,
  ];
  if (result.resizes.length > 0) {
    lines.push(...columns([['AT', 'KIND', 'FROM', 'TO', 'FULLEST', 'REASON'], ...result.resizes.map((r) => [r.at, r.kind, size(r.from), size(r.to), r.instance ?? '-', r.reason])], '  '));
  }
  const ratio = result.idealGiBHours > 0 ? ` (${(result.provisionedGiBHours / result.idealGiBHours).toFixed(2)}x the ideal ${result.idealGiBHours.toFixed(1)})` : '';
  lines.push(
    '',
    `Final size:              ${size(result.finalSize)}`,
    `Max actions in 24h:      ${result.maxActionsIn24h} (budget ${p.maxActionsPerDay})`,
    `Out of space:            ${seconds(result.secondsOutOfSpace)}`,
    `At or over critical:     ${seconds(result.secondsOverCritical)}`,
    `Provisioned:             ${result.provisionedGiBHours.toFixed(1)} GiB-hours per volume${ratio}`,
    '',
    ...columns([['INSTANCE', 'MAX USED', 'OVER CRITICAL', 'OUT OF SPACE'], ...result.perInstance.map((i) => [i.instance, `${i.maxPercentUsed.toFixed(1)}%`, seconds(i.secondsOverCritical), seconds(i.secondsOutOfSpace)])], ''),
  );
  for (const warning of result.warnings) lines.push(`Warning: ${warning}`);
  return `${lines.join('\n')}\n`;
}

export interface SimulateDependencies {
  now?: () => Date;
  fetch?: (url: string, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<Response>;
}

async function readText(io: CliIo, file: string): Promise<string> {
  if (file === '-') return io.readStdin();
  return io.readFile(file).catch((err: unknown) => {
    throw new UsageError(`cannot read ${file}: ${errorMessage(err)}`);
  });
}

async function history(options: SimulateOptions, loaded: LoadedPolicy, io: CliIo, dependencies: SimulateDependencies): Promise<{ traces: InstanceTrace[]; source: SimulationSource; warnings: string[] }> {
  if (options.prometheus === undefined) {
    const file = options.trace ?? '-';
    const text = await readText(io, file);
    try {
      return { traces: parseTraceCsv(text), source: { description: file === '-' ? '<stdin>' : file }, warnings: [] };
    } catch (err) {
      if (err instanceof SimulateInputError) throw err.in(file === '-' ? '<stdin>' : file);
      throw err;
    }
  }
  const { url, sinceMs, until } = options.prometheus;
  const end = Math.floor((until ?? (dependencies.now ?? (() => new Date()))().getTime()) / options.stepMs) * options.stepMs;
  const request: PrometheusRequest = {
    url,
    namespace: options.prometheus.namespace ?? loaded.namespace,
    cluster: options.prometheus.cluster ?? loaded.cluster,
    volume: options.volume,
    start: end - Math.floor(sinceMs / options.stepMs) * options.stepMs,
    end,
    stepMs: options.stepMs,
  };
  const found = await readPrometheusHistory(request, dependencies.fetch);
  return { traces: found.traces, source: { description: url, metric: found.metric }, warnings: found.warnings };
}

export async function runSimulate(args: readonly string[], io: CliIo, dependencies: SimulateDependencies = {}): Promise<number> {
  const options = parseSimulateArgs(args);
  try {
    const policyText = await readText(io, options.policyFile);
    const loaded = loadPolicy(policyText, options.policyFile === '-' ? '<stdin>' : options.policyFile, options.volume);
    const { traces, source, warnings } = await history(options, loaded, io, dependencies);
    const result = simulate({ loaded, traces, source, initialSize: options.initialSize, resizeLatencyMs: options.resizeLatencyMs, stepMs: options.stepMs, warnings });
    io.stdout(options.output === 'json' ? `${JSON.stringify(result, null, 2)}\n` : renderSimulation(result));
    return 0;
  } catch (err) {
    if (!(err instanceof SimulateInputError)) throw err;
    // An invalid policy is printed as `validate` prints it, with each problem's own code.
    io.stderr(err.code === SimulateErrorCodes.InvalidPolicy ? `${err.message}\n` : `${err.message} [${err.code}]\n`);
    return 1;
  }
}

export function makeSimulateSubcommand(dependencies: SimulateDependencies = {}): Subcommand {
  return {
    name: 'simulate',
    summary: 'replay the sizing engine over a usage history (CSV or Prometheus) under a policy, before enabling it',
    usage,
    run: (args, io) => runSimulate(args, io, dependencies),
  };
}

export const simulateSubcommand: Subcommand = makeSimulateSubcommand();

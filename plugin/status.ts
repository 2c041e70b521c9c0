/**
 * `kubectl cnpg storage status <cluster>`: what dynamic sizing is doing for one CNPG Cluster, volume by volume.
 *
 * Three layers, so that the view can be reused (the live demo prints it) and tested without a cluster:
 * - `buildStatusModel(dynamicStorage, cluster, pvcs, now)`: pure; turns the objects into a `StatusModel`, which is also
 *   what `-o json|yaml` prints (field names are part of the command's contract, see docs/plugin.md).
 * - `renderStatus(model, now)`: pure; the text layout.
 * - `runStatus`: reads the objects from the API server with @kubernetes/client-node and prints.
 */
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import {
  dynamicStorageGroup,
  dynamicStoragePlural,
  dynamicStorageVersion,
  emergencyGrowDefaults,
  volumePolicyDefaults,
  type DynamicStorage,
  type InstanceVolumeStatus,
  type SizingAction,
  type VolumePolicy,
  type VolumeSizingStatus,
} from '../shared/api/dynamicstorage.generated.ts';
import { apiErrorDetail, apiStatusCode, errorMessage } from '../shared/errors.ts';
import { rfc3339 } from '../shared/time.ts';
import { parseMaintenanceWindow } from '../controller/policy/window.ts';
import { clusterConditionType, clusterStatusAnnotation, readStatusAnnotation } from '../controller/cluster-status.ts';
import { ConditionTypes } from '../controller/kube/conditions.ts';
import {
  cnpgClusterPlural,
  cnpgGroup,
  cnpgiPluginName as pluginName,
  cnpgLabels,
  cnpgVersion,
  maintenanceWindowDefaults,
  managersOf,
  matchesLabels,
  volumeSlots,
  type VolumeRole,
  type VolumeSlot,
} from '../shared/cnpg.ts';
import { UsageError, type CliIo, type Subcommand } from './command.ts';

// ---------------------------------------------------------------------------------------------------------------------
// The model (also the -o json|yaml output)
// ---------------------------------------------------------------------------------------------------------------------

export interface InstanceRow {
  instance: string;
  persistentVolumeClaim: string | null;
  /** Capacity of the PVC: the controller's status, else the PVC's status.capacity, else its request. */
  pvcSize: string | null;
  used: string | null;
  available: string | null;
  percentUsed: number | null;
  /** `Reported`, or why the reading was not used (DiskStatusMissing, DiskStatusStale, ...); null when not in status. */
  diskStatus: string | null;
}

export interface BudgetModel {
  maxActionsPerDay: number;
  reservedActionsForEmergency: number;
  actionsLast24h: number | null;
  availableForPlanned: number | null;
  availableForEmergency: number | null;
  resetsAt: string | null;
}

export interface WindowModel {
  schedule: string;
  duration: string;
  timezone: string;
  /** Whether the window is open at the time the model was built; null when the window cannot be parsed. */
  openNow: boolean | null;
  /** When the open window closes; null when closed or unknown. */
  closesAt: string | null;
}

export interface VolumeModel {
  volume: VolumeRole;
  tablespace: string | null;
  title: string;
  request: string;
  limit: string;
  targetBuffer: number;
  effectiveSize: string | null;
  targetSize: string | null;
  state: string | null;
  reason: string | null;
  message: string | null;
  instances: InstanceRow[];
  lastAction: SizingAction | null;
  budget: BudgetModel;
  /** null: no maintenance window, planned growth may happen at any time. */
  maintenanceWindow: WindowModel | null;
  /** The next time the window opens (after the model's time); null without a window or when unknown. */
  nextMaintenanceWindow: string | null;
}

export interface ConditionModel {
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface StatusModel {
  generatedAt: string;
  cluster: {
    name: string;
    namespace: string;
    /** true: read; false: does not exist; null: could not be read (permissions). */
    found: boolean | null;
  };
  dynamicSizing: 'Enabled' | 'Disabled';
  dynamicStorage: { name: string; generation: number | null; observedGeneration: number | null } | null;
  /** The Valid condition; null until the controller writes it. */
  valid: ConditionModel | null;
  /** What the controller does with the policy (Full, Partial, None); null until it says. */
  protection: string | null;
  /** The last generation that passed every check, as the controller remembers it; null when none is recorded. */
  lastValidPolicy: { generation: number; observedAt: string } | null;
  warnings: string[];
  hint: string | null;
  /** Where the status comes from and where the Cluster shows it; absent when the Cluster could not be read. */
  statusSource?: StatusSourceModel;
  volumes: VolumeModel[];
}

/** The parts of a CNPG Cluster read here. */
export interface CnpgClusterObject {
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> };
  spec?: { instances?: number; storage?: { size?: string }; walStorage?: { size?: string }; plugins?: { name?: string; enabled?: boolean }[] };
  status?: { conditions?: { type?: string; status?: string; reason?: string }[]; pluginStatus?: { name?: string; status?: string }[] };
}

/**
 * Where the status comes from, and where else it shows: this command reads the DynamicStorage status (the source); the
 * Cluster carries a copy in `status.pluginStatus` (when it opts in to the CNPG-I plugin), in the condition
 * DynamicStorageReady and in the annotation dynamicstorage.cnpg.io/status.
 */
export interface StatusSourceModel {
  source: 'DynamicStorage';
  /** The plugin: not enabled on the Cluster, enabled but no status stored (yet), or its block stored. */
  pluginStatus: 'NotEnabled' | 'Empty' | 'Present';
  /** The condition on the Cluster, as `status (reason)`; null when absent. */
  condition: string | null;
  /** The annotation's summary, as `status (reason)`; null when absent. */
  annotation: string | null;
}

/** Pure: what the Cluster shows of the status, for the "Status source" line. */
export function statusSourceOf(cluster: CnpgClusterObject | undefined): StatusSourceModel {
  const enabled = (cluster?.spec?.plugins ?? []).some((p) => p.name === pluginName && p.enabled !== false);
  const stored = cluster?.status?.pluginStatus?.find((p) => p.name === pluginName)?.status;
  const condition = cluster?.status?.conditions?.find((c) => c.type === clusterConditionType);
  const annotation = readStatusAnnotation(cluster?.metadata?.annotations);
  return {
    source: 'DynamicStorage',
    pluginStatus: !enabled ? 'NotEnabled' : stored ? 'Present' : 'Empty',
    condition: condition ? `${condition.status ?? 'Unknown'} (${condition.reason ?? ''})` : null,
    annotation: annotation ? `${annotation.status} (${annotation.reason})` : null,
  };
}

/** The line, when the Cluster shows the status anywhere (nothing is added to the brief's layout otherwise). */
function statusSourceLine(source: StatusSourceModel): string | undefined {
  const copies = [
    source.pluginStatus === 'Present' ? `status.pluginStatus[${pluginName}]` : source.pluginStatus === 'Empty' ? `status.pluginStatus[${pluginName}] (enabled, nothing stored yet)` : null,
    source.condition === null ? null : `condition ${clusterConditionType}=${source.condition}`,
    source.annotation === null ? null : `annotation ${clusterStatusAnnotation}=${source.annotation}`,
  ].filter((c): c is string => c !== null);
  return copies.length > 0 ? `Status Source: ${source.source}; on the Cluster: ${copies.join(', ')}` : undefined;
}

export interface BuildOptions {
  /** The Cluster's name and namespace when neither object names them (both missing). */
  clusterName?: string;
  namespace?: string;
  /** Set when the Cluster could not be read (for example forbidden): it is then not reported as missing. */
  clusterUnreadable?: string;
  /** Added to the model's warnings (for example other DynamicStorage objects naming the same Cluster). */
  warnings?: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------------------
// buildStatusModel
// ---------------------------------------------------------------------------------------------------------------------

/** RFC 3339 in UTC without milliseconds, as Kubernetes writes times. */
export const formatTimestamp = rfc3339;

function instanceOfPvc(pvc: k8s.V1PersistentVolumeClaim, role: VolumeRole): string | undefined {
  const label = pvc.metadata?.labels?.[cnpgLabels.instanceName];
  if (label) return label;
  const name = pvc.metadata?.name;
  if (name === undefined) return undefined;
  if (role === 'data') return name;
  if (role === 'wal') return name.replace(/-wal$/, '');
  return name.replace(/-tbs-.*$/, '');
}

function pvcSizeOf(pvc: k8s.V1PersistentVolumeClaim | undefined): string | null {
  const capacity = pvc?.status?.capacity?.storage ?? pvc?.spec?.resources?.requests?.storage;
  return capacity ?? null;
}

/** `pg-2` before `pg-10`. */
const byInstanceName = new Intl.Collator('en', { numeric: true }).compare;

function instanceRows(status: VolumeSizingStatus | undefined, pvcs: readonly k8s.V1PersistentVolumeClaim[], role: VolumeRole): InstanceRow[] {
  const byInstance = new Map<string, k8s.V1PersistentVolumeClaim>();
  for (const pvc of pvcs) {
    const instance = instanceOfPvc(pvc, role);
    if (instance !== undefined) byInstance.set(instance, pvc);
  }
  const reported: Record<string, InstanceVolumeStatus> = status?.instances ?? {};
  const sizes: Record<string, string> = status?.actualSizes ?? {};
  const names = new Set([...Object.keys(reported), ...Object.keys(sizes), ...byInstance.keys()]);
  return [...names].sort(byInstanceName).map((instance) => {
    const reading = reported[instance];
    const pvc = byInstance.get(instance);
    return {
      instance,
      persistentVolumeClaim: reading?.persistentVolumeClaim ?? pvc?.metadata?.name ?? null,
      pvcSize: sizes[instance] ?? pvcSizeOf(pvc),
      used: reading?.used ?? null,
      available: reading?.available ?? null,
      percentUsed: reading?.percentUsed ?? null,
      diskStatus: reading?.diskStatus ?? null,
    };
  });
}

function budgetModel(policy: VolumePolicy, status: VolumeSizingStatus | undefined): BudgetModel {
  const budget = status?.budget;
  return {
    maxActionsPerDay: policy.emergencyGrow?.maxActionsPerDay ?? emergencyGrowDefaults.maxActionsPerDay,
    reservedActionsForEmergency: policy.emergencyGrow?.reservedActionsForEmergency ?? emergencyGrowDefaults.reservedActionsForEmergency,
    actionsLast24h: budget?.actionsLast24h ?? null,
    availableForPlanned: budget?.availableForPlanned ?? null,
    availableForEmergency: budget?.availableForEmergency ?? null,
    resetsAt: budget?.budgetResetsAt ?? null,
  };
}

/**
 * The window from the spec, evaluated at `now` (so that a status written hours ago still shows the right next opening);
 * the controller's `nextMaintenanceWindow` when the spec's window cannot be parsed.
 */
function windowModel(policy: VolumePolicy, status: VolumeSizingStatus | undefined, now: Date): Pick<VolumeModel, 'maintenanceWindow' | 'nextMaintenanceWindow'> {
  const spec = policy.maintenanceWindow;
  if (spec === undefined) return { maintenanceWindow: null, nextMaintenanceWindow: null };
  const model: WindowModel = {
    schedule: spec.schedule ?? maintenanceWindowDefaults.schedule,
    duration: spec.duration ?? maintenanceWindowDefaults.duration,
    timezone: spec.timezone ?? maintenanceWindowDefaults.timezone,
    openNow: null,
    closesAt: null,
  };
  try {
    const window = parseMaintenanceWindow(spec);
    const closesAt = window.closesAt(now);
    const next = window.nextStart(now);
    return {
      maintenanceWindow: { ...model, openNow: window.contains(now), closesAt: closesAt ? formatTimestamp(closesAt) : null },
      nextMaintenanceWindow: next ? formatTimestamp(next) : null,
    };
  } catch {
    return { maintenanceWindow: model, nextMaintenanceWindow: status?.nextMaintenanceWindow ?? null };
  }
}

function volumeTitle(slot: VolumeSlot): string {
  return slot.role === 'data' ? 'Data Volume' : slot.role === 'wal' ? 'WAL Volume' : `Tablespace ${slot.tablespace ?? ''}`;
}

function volumeModel(slot: VolumeSlot, pvcs: readonly k8s.V1PersistentVolumeClaim[], now: Date): VolumeModel {
  const { policy, previous: status } = slot;
  return {
    volume: slot.role,
    tablespace: slot.tablespace ?? null,
    title: volumeTitle(slot),
    request: policy.request,
    limit: policy.limit,
    targetBuffer: policy.targetBuffer ?? volumePolicyDefaults.targetBuffer,
    effectiveSize: status?.effectiveSize ?? null,
    targetSize: status?.targetSize ?? null,
    state: status?.state ?? null,
    reason: status?.reason ?? null,
    message: status?.message ?? null,
    instances: instanceRows(status, pvcs.filter((pvc) => matchesLabels(pvc.metadata?.labels, slot.selector)), slot.role),
    lastAction: status?.lastAction ?? null,
    budget: budgetModel(policy, status),
    ...windowModel(policy, status, now),
  };
}

function lastValidModel(ds: DynamicStorage): StatusModel['lastValidPolicy'] {
  const last = ds.status?.lastValidPolicy;
  return typeof last?.generation === 'number' && typeof last.observedAt === 'string' ? { generation: last.generation, observedAt: last.observedAt } : null;
}

/** What an invalid policy means for the volumes, from what the controller says it does with it. */
function invalidConsequence(model: StatusModel): string {
  if (model.protection === 'Partial') {
    const last = model.lastValidPolicy;
    const window = last ? `a window that cannot be read is taken from the last valid policy (generation ${last.generation}) when it had one` : 'a volume whose window cannot be read grows in emergencies only';
    return `the policy is partly invalid; the volumes are still sized and emergencies still grow them (${window}); fix it`;
  }
  return 'the policy is not valid; nothing is resized until it is fixed';
}

function validCondition(ds: DynamicStorage): ConditionModel | null {
  const condition = ds.status?.conditions?.find((c) => c.type === ConditionTypes.Valid);
  if (!condition) return null;
  return { status: condition.status, reason: condition.reason, message: condition.message, lastTransitionTime: condition.lastTransitionTime };
}

function statusWarnings(ds: DynamicStorage): string[] {
  const generation = ds.metadata?.generation;
  const observed = ds.status?.observedGeneration;
  if (ds.status === undefined || observed === undefined) {
    return ['The controller has not written a status yet: is it running?'];
  }
  if (generation !== undefined && observed < generation) {
    return [`The status is for generation ${observed} of the policy; generation ${generation} is not processed yet.`];
  }
  return [];
}

function disabledHint(clusterName: string, namespace: string, cluster: CnpgClusterObject | undefined): string {
  const size = cluster?.spec?.storage?.size;
  return [
    size === undefined ? 'CloudNativePG keeps the sizes set in the Cluster.' : `CloudNativePG keeps the sizes set in the Cluster (spec.storage.size: ${size}).`,
    `To enable dynamic sizing, create a DynamicStorage in namespace "${namespace}" with spec.cluster.name: ${clusterName}`,
    'and a request and limit per volume (kubectl explain dynamicstorage.spec).',
  ].join('\n');
}

function clusterIdentity(dynamicStorage: DynamicStorage | undefined, cluster: CnpgClusterObject | undefined, options: BuildOptions): StatusModel['cluster'] & { warnings: string[] } {
  const name = dynamicStorage?.spec.cluster.name ?? cluster?.metadata?.name ?? options.clusterName ?? '';
  const namespace = dynamicStorage?.metadata?.namespace ?? cluster?.metadata?.namespace ?? options.namespace ?? 'default';
  const found = cluster !== undefined ? true : options.clusterUnreadable !== undefined ? null : false;
  const warnings: string[] = [];
  if (found === false) warnings.push(`Cluster "${name}" not found in namespace "${namespace}".`);
  if (options.clusterUnreadable !== undefined) warnings.push(`Cluster "${name}" could not be read: ${options.clusterUnreadable}`);
  warnings.push(...(options.warnings ?? []));
  return { name, namespace, found, warnings };
}

/**
 * The status view of one Cluster. `dynamicStorage` is the DynamicStorage that names the Cluster (undefined when none does),
 * `cluster` the CNPG Cluster (undefined when missing or unreadable), `pvcs` the Cluster's PVCs (for sizes the status lacks).
 */
export function buildStatusModel(
  dynamicStorage: DynamicStorage | undefined,
  cluster: CnpgClusterObject | undefined,
  pvcs: readonly k8s.V1PersistentVolumeClaim[],
  now: Date,
  options: BuildOptions = {},
): StatusModel {
  const { name, namespace, found, warnings } = clusterIdentity(dynamicStorage, cluster, options);
  const base = { generatedAt: formatTimestamp(now), cluster: { name, namespace, found } };
  if (dynamicStorage === undefined) {
    return {
      ...base, dynamicSizing: 'Disabled', dynamicStorage: null, valid: null, protection: null, lastValidPolicy: null,
      warnings, hint: disabledHint(name, namespace, cluster), volumes: [],
    };
  }
  return {
    ...base,
    dynamicSizing: 'Enabled',
    dynamicStorage: {
      name: dynamicStorage.metadata?.name ?? '',
      generation: dynamicStorage.metadata?.generation ?? null,
      observedGeneration: dynamicStorage.status?.observedGeneration ?? null,
    },
    valid: validCondition(dynamicStorage),
    protection: dynamicStorage.status?.protection ?? null,
    lastValidPolicy: lastValidModel(dynamicStorage),
    warnings: [...warnings, ...statusWarnings(dynamicStorage)],
    hint: null,
    ...(cluster ? { statusSource: statusSourceOf(cluster) } : {}),
    volumes: volumeSlots(dynamicStorage.spec, dynamicStorage.status?.storageSizing).map((slot) => volumeModel(slot, pvcs, now)),
  };
}

/**
 * The DynamicStorage the controller honours for a Cluster when several name it: the oldest (creation time, then name);
 * the others are invalid (ClusterAlreadyManaged).
 */
export function selectDynamicStorage(items: readonly DynamicStorage[], clusterName: string): { selected: DynamicStorage | undefined; others: DynamicStorage[] } {
  const [selected, ...others] = managersOf(items, clusterName);
  return { selected, others };
}

// ---------------------------------------------------------------------------------------------------------------------
// renderStatus
// ---------------------------------------------------------------------------------------------------------------------

/** kubectl's way of printing a duration (apimachinery's HumanDuration): 45s, 3m20s, 95m, 5h30m, 14h, 3d4h, 20d. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (days < 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (days < 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/** `in 14h`, `3m ago`, `now`; the timestamp itself when it cannot be parsed. */
export function relativeTime(timestamp: string, now: Date): string {
  const at = Date.parse(timestamp);
  if (Number.isNaN(at)) return timestamp;
  const delta = at - now.getTime();
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${humanDuration(delta)}` : `${humanDuration(-delta)} ago`;
}

function at(timestamp: string, now: Date): string {
  return `${timestamp} (${relativeTime(timestamp, now)})`;
}

const dash = '-';

/** `label:` padded so that values start in one column (at least one space after the label), as in the brief. */
function field(indent: string, width: number, label: string, value: string): string {
  return `${indent}${`${label}:`.padEnd(width - 1)} ${value}`;
}

/** Columns padded to at least the brief's widths and two spaces more than their longest cell; the last is not padded. */
function table(indent: string, minimumWidths: readonly number[], rows: readonly (readonly string[])[]): string[] {
  const widths = minimumWidths.map((minimum, column) => Math.max(minimum, ...rows.map((row) => (row[column] ?? '').length + 2)));
  return rows.map((row) => `${indent}${row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('')}`);
}

function instanceTable(instances: readonly InstanceRow[]): string[] {
  if (instances.length === 0) return ['  No volumes found for this role yet.'];
  const withDiskStatus = instances.some((row) => row.diskStatus !== null && row.diskStatus !== 'Reported');
  const header = ['Instance', 'PVC Size', 'Used', 'Available', 'Usage%', ...(withDiskStatus ? ['Disk Status'] : [])];
  const rows = instances.map((row) => [
    row.instance,
    row.pvcSize ?? dash,
    row.used ?? dash,
    row.available ?? dash,
    row.percentUsed === null ? dash : `${row.percentUsed}%`,
    ...(withDiskStatus ? [row.diskStatus ?? dash] : []),
  ]);
  return table('  ', [16, 12, 9, 12, 8], [header, ...rows]);
}

function lastActionLines(action: SizingAction, now: Date): string[] {
  const target = action.instance ? ` of ${action.instance}` : '';
  const sizes = action.from !== undefined || action.to !== undefined ? ` ${action.from ?? '?'} -> ${action.to ?? '?'}` : '';
  const result = action.result ?? 'Pending';
  const lines = [field('  ', 16, 'Last Action', `${action.kind}${target}${sizes}, ${result}, ${at(action.timestamp, now)}`)];
  if (action.completedAt) {
    const took = Date.parse(action.completedAt) - Date.parse(action.timestamp);
    lines.push(`${' '.repeat(18)}completed ${action.completedAt}${Number.isNaN(took) ? '' : ` (after ${humanDuration(took)})`}`);
  }
  if (action.message) lines.push(`${' '.repeat(18)}${action.message}`);
  return lines;
}

function number(value: number | null): string {
  return value === null ? dash : String(value);
}

function budgetLines(budget: BudgetModel): string[] {
  return [
    '  Budget:',
    field('    ', 22, 'Max Actions/Day', String(budget.maxActionsPerDay)),
    field('    ', 22, 'Used (24h)', number(budget.actionsLast24h)),
    field('    ', 22, 'Available (Planned)', number(budget.availableForPlanned)),
    field('    ', 22, 'Available (Emergency)', number(budget.availableForEmergency)),
    field('    ', 22, 'Resets At', budget.resetsAt ?? dash),
  ];
}

function windowLine(volume: VolumeModel, now: Date): string {
  const window = volume.maintenanceWindow;
  if (window === null) return '  Next Maintenance Window: always open';
  const next = volume.nextMaintenanceWindow === null ? 'unknown' : at(volume.nextMaintenanceWindow, now);
  const open = window.openNow === true && window.closesAt !== null ? `; open now, closes ${at(window.closesAt, now)}` : '';
  return `  Next Maintenance Window: ${next}${open}`;
}

function volumeLines(volume: VolumeModel, now: Date): string[] {
  const lines = [
    `${volume.title}:`,
    field('  ', 16, 'Request', volume.request),
    field('  ', 16, 'Limit', volume.limit),
    field('  ', 16, 'Target Buffer', `${volume.targetBuffer}%`),
    field('  ', 16, 'Effective Size', volume.effectiveSize ?? dash),
    field('  ', 16, 'State', volume.state ?? 'not reported yet'),
  ];
  if (volume.reason !== null || volume.message !== null) {
    lines.push(field('  ', 16, 'Reason', [volume.reason, volume.message].filter((part) => part !== null).join(': ')));
  }
  if (volume.lastAction) lines.push(...lastActionLines(volume.lastAction, now));
  const window = volume.maintenanceWindow;
  if (window) lines.push(field('  ', 16, 'Window', `${window.schedule} ${window.timezone} for ${window.duration}`));
  lines.push('', ...instanceTable(volume.instances), '', ...budgetLines(volume.budget), '', windowLine(volume, now));
  return lines;
}

function headerLines(model: StatusModel): string[] {
  const lines = [`Cluster: ${model.cluster.name}`, `Dynamic Sizing: ${model.dynamicSizing}`];
  if (model.dynamicStorage) lines.push(`DynamicStorage: ${model.cluster.namespace}/${model.dynamicStorage.name}`);
  const source = model.statusSource && statusSourceLine(model.statusSource);
  if (source) lines.push(source);
  const valid = model.valid;
  if (valid && valid.status !== 'True') {
    const consequence = valid.status === 'False' ? invalidConsequence(model) : 'the policy has not been checked yet';
    lines.push('', `!! Valid=${valid.status} (${valid.reason}): ${consequence}:`, ...valid.message.split('\n').map((line) => `!!   ${line}`));
  }
  if (model.warnings.length > 0) lines.push('', ...model.warnings.map((warning) => `Warning: ${warning}`));
  if (model.hint !== null) lines.push('', ...model.hint.split('\n'));
  return lines;
}

/** The text view: the brief's layout, one block per managed volume (each volume has its own budget and window). */
export function renderStatus(model: StatusModel, now: Date): string {
  const lines = headerLines(model);
  for (const volume of model.volumes) lines.push('', ...volumeLines(volume, now));
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------------
// The command: arguments, reading the objects, printing
// ---------------------------------------------------------------------------------------------------------------------

export interface StatusOptions {
  cluster: string;
  namespace: string | undefined;
  output: 'text' | 'json' | 'yaml';
  kubeconfig: string | undefined;
  context: string | undefined;
}

const usage = `Usage: kubectl cnpg storage status <cluster> [options]

Shows dynamic sizing of a CloudNativePG Cluster's volumes (data, WAL, tablespaces): the policy, each volume's state,
size and usage per instance, the daily budget of resize operations and the next maintenance window.

Options:
  -n, --namespace <ns>       namespace of the Cluster (default: the kubeconfig context's namespace, else "default")
  -o, --output json|yaml     print the status as JSON or YAML instead of text
      --kubeconfig <path>    kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)
      --context <name>       kubeconfig context to use (default: the current context)
  -h, --help                 this help

Exit status: 0 when the status was shown (also when the policy is invalid or the Cluster has no DynamicStorage),
1 when neither the Cluster nor a DynamicStorage for it exists or the API server cannot be read, 2 on wrong usage.
`;

function splitFlag(arg: string): [string, string | undefined] {
  const equals = arg.indexOf('=');
  return arg.startsWith('--') && equals > 0 ? [arg.slice(0, equals), arg.slice(equals + 1)] : [arg, undefined];
}

function parseOutput(value: string): StatusOptions['output'] {
  if (value !== 'json' && value !== 'yaml' && value !== 'text') throw new UsageError(`--output must be json or yaml, not "${value}"`);
  return value;
}

export function parseStatusArgs(args: readonly string[]): StatusOptions {
  const positional: string[] = [];
  const options: Omit<StatusOptions, 'cluster'> = { namespace: undefined, output: 'text', kubeconfig: undefined, context: undefined };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    const [flag, inline] = splitFlag(arg);
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = args[i + 1];
      if (next === undefined || next.startsWith('-')) throw new UsageError(`${flag} needs a value`);
      i += 1;
      return next;
    };
    if (flag === '-n' || flag === '--namespace') options.namespace = value();
    else if (flag === '-o' || flag === '--output') options.output = parseOutput(value());
    else if (flag === '--kubeconfig') options.kubeconfig = value();
    else if (flag === '--context') options.context = value();
    else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown argument "${arg}"`);
    else positional.push(arg);
  }
  const [cluster, ...extra] = positional;
  if (cluster === undefined) throw new UsageError('missing the Cluster name');
  if (extra.length > 0) throw new UsageError(`one Cluster at a time; unexpected "${extra.join(' ')}"`);
  return { cluster, ...options };
}

/** The objects the model is built from, as read from the API server. */
export interface LoadedObjects {
  namespace: string;
  dynamicStorages: DynamicStorage[];
  cluster: CnpgClusterObject | undefined;
  clusterUnreadable: string | undefined;
  pvcs: k8s.V1PersistentVolumeClaim[];
  /** Set when the PVCs could not be listed (for example forbidden): sizes then come from the status alone. */
  pvcsUnreadable?: string | undefined;
}

export type StatusLoader = (options: StatusOptions) => Promise<LoadedObjects>;

/** A failure to read from the API server, with the message to print. */
export class StatusReadError extends Error {
  readonly code = 'StatusReadFailed';
}

/** `fetch failed: connect ECONNREFUSED 127.0.0.1:6443`: the message with the causes that explain it. */
function withCauses(err: unknown): string {
  const parts = [errorMessage(err)];
  let cause: unknown = err instanceof Error ? err.cause : undefined;
  for (let depth = 0; cause !== undefined && depth < 3; depth += 1) {
    const text = cause instanceof Error ? (cause.message || (cause as { code?: string }).code) : typeof cause === 'string' ? cause : undefined;
    if (text && !parts.includes(text)) parts.push(text);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return parts.join(': ');
}

/**
 * `403 Forbidden: clusters.postgresql.cnpg.io "pg" is forbidden: ...` from an ApiException, else the error's message with
 * its causes (a refused connection names the address): for a person at a terminal, where shared/errors.ts's
 * `apiErrorMessage` keeps the API's message alone for status and logs.
 */
function readErrorMessage(err: unknown): string {
  return apiErrorDetail(err) ?? withCauses(err);
}

function loadKubeConfig(options: StatusOptions): k8s.KubeConfig {
  const kubeConfig = new k8s.KubeConfig();
  try {
    if (options.kubeconfig !== undefined) kubeConfig.loadFromFile(options.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (err) {
    throw new StatusReadError(`cannot load the kubeconfig${options.kubeconfig === undefined ? '' : ` ${options.kubeconfig}`}: ${errorMessage(err)}`);
  }
  if (options.context !== undefined) {
    if (kubeConfig.getContextObject(options.context) === null) throw new StatusReadError(`context "${options.context}" not found in the kubeconfig`);
    kubeConfig.setCurrentContext(options.context);
  }
  return kubeConfig;
}

async function listDynamicStorages(custom: k8s.CustomObjectsApi, namespace: string): Promise<DynamicStorage[]> {
  try {
    const list = await custom.listNamespacedCustomObject({ group: dynamicStorageGroup, version: dynamicStorageVersion, plural: dynamicStoragePlural, namespace }) as { items?: DynamicStorage[] };
    return list.items ?? [];
  } catch (err) {
    if (apiStatusCode(err) === 404) return []; // the CRD is not installed: no DynamicStorage anywhere
    throw new StatusReadError(`cannot list DynamicStorage objects in namespace "${namespace}": ${readErrorMessage(err)}`);
  }
}

async function readCluster(custom: k8s.CustomObjectsApi, namespace: string, name: string): Promise<Pick<LoadedObjects, 'cluster' | 'clusterUnreadable'>> {
  try {
    const cluster = await custom.getNamespacedCustomObject({ group: cnpgGroup, version: cnpgVersion, plural: cnpgClusterPlural, namespace, name }) as CnpgClusterObject;
    return { cluster, clusterUnreadable: undefined };
  } catch (err) {
    const code = apiStatusCode(err);
    if (code === 404) return { cluster: undefined, clusterUnreadable: undefined };
    if (code === 401 || code === 403) return { cluster: undefined, clusterUnreadable: readErrorMessage(err) };
    throw new StatusReadError(`cannot read Cluster "${name}" in namespace "${namespace}": ${readErrorMessage(err)}`);
  }
}

async function listPvcs(core: k8s.CoreV1Api, namespace: string, cluster: string): Promise<Pick<LoadedObjects, 'pvcs' | 'pvcsUnreadable'>> {
  try {
    const list = await core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `${cnpgLabels.cluster}=${cluster}` });
    return { pvcs: list.items };
  } catch (err) {
    const code = apiStatusCode(err);
    if (code === 401 || code === 403) return { pvcs: [], pvcsUnreadable: readErrorMessage(err) };
    throw new StatusReadError(`cannot list the PVCs of Cluster "${cluster}" in namespace "${namespace}": ${readErrorMessage(err)}`);
  }
}

/** Reads the DynamicStorage objects of the namespace, the Cluster and its PVCs with @kubernetes/client-node. */
export const loadFromApiServer: StatusLoader = async (options) => {
  const kubeConfig = loadKubeConfig(options);
  const context = kubeConfig.getContextObject(kubeConfig.getCurrentContext());
  const namespace = options.namespace ?? (context?.namespace || 'default');
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const [dynamicStorages, clusterRead, pvcsRead] = await Promise.all([
    listDynamicStorages(custom, namespace),
    readCluster(custom, namespace, options.cluster),
    listPvcs(core, namespace, options.cluster),
  ]);
  return { namespace, dynamicStorages, ...clusterRead, ...pvcsRead };
};

function loadWarnings(others: readonly DynamicStorage[], loaded: LoadedObjects): string[] {
  const warnings = others.map((other) => `DynamicStorage "${other.metadata?.name ?? ''}" also names this Cluster and is ignored (only one may manage a Cluster).`);
  if (loaded.pvcsUnreadable !== undefined) warnings.push(`The PVCs could not be listed (sizes come from the status alone): ${loaded.pvcsUnreadable}`);
  return warnings;
}

export interface StatusDependencies {
  load: StatusLoader;
  now: () => Date;
}

export async function runStatus(args: readonly string[], io: CliIo, dependencies: StatusDependencies = { load: loadFromApiServer, now: () => new Date() }): Promise<number> {
  const options = parseStatusArgs(args);
  let loaded: LoadedObjects;
  try {
    loaded = await dependencies.load(options);
  } catch (err) {
    io.stderr(`kubectl cnpg storage status: ${err instanceof StatusReadError ? err.message : `cannot read from the API server: ${readErrorMessage(err)}`}\n`);
    return 1;
  }
  const { selected, others } = selectDynamicStorage(loaded.dynamicStorages, options.cluster);
  if (selected === undefined && loaded.cluster === undefined && loaded.clusterUnreadable === undefined) {
    io.stderr(`kubectl cnpg storage status: Cluster "${options.cluster}" not found in namespace "${loaded.namespace}", and no DynamicStorage names it\n`);
    return 1;
  }
  const now = dependencies.now();
  const model = buildStatusModel(selected, loaded.cluster, loaded.pvcs, now, {
    clusterName: options.cluster, namespace: loaded.namespace, warnings: loadWarnings(others, loaded),
    ...(loaded.clusterUnreadable === undefined ? {} : { clusterUnreadable: loaded.clusterUnreadable }),
  });
  if (options.output === 'json') io.stdout(`${JSON.stringify(model, null, 2)}\n`);
  else if (options.output === 'yaml') io.stdout(stringify(model));
  else io.stdout(renderStatus(model, now));
  return 0;
}

export function makeStatusSubcommand(dependencies?: StatusDependencies): Subcommand {
  return {
    name: 'status',
    summary: 'show the dynamic sizing of a Cluster\'s volumes: sizes, usage, state, budget, next window',
    usage,
    run: (args, io) => runStatus(args, io, dependencies),
  };
}

export const statusSubcommand: Subcommand = makeStatusSubcommand();

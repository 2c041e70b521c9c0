/**
 * Replays the engine over a usage trace: simulated volumes whose filesystems follow their PVCs after a fixed resize
 * latency, sampled and decided on every step. Reports what a user pays for and what they suffer: resizes, time over the
 * critical threshold, time out of space, and provisioned size-hours against the ideal (the smallest size holding the
 * usage with the target buffer at every instant). Pure and deterministic, like the engine.
 *
 * Two ways to give the usage: `trace` (one series that every instance holds, `instances` times) or `instanceTraces`
 * (each instance its own series, its own PVC and filesystem, as the controller sees a Cluster whose replicas differ).
 * Either way the engine decides for the logical volume and every PVC it patches grows after `resizeLatencyMs`.
 */
import { decide } from './decide.ts';
import { LONG_TERM_HISTORY, keepSampled } from './history.ts';
import { BUDGET_WINDOW_MS } from './budget.ts';
import {
  ActionResults,
  DEFAULT_PROVIDER,
  DEFAULT_TUNING,
  NoOp,
  type ActionKind,
  type ActionRecord,
  type Decision,
  type DiskReading,
  type EngineTuning,
  type InstanceVolume,
  type ProviderFacts,
  type Reason,
  type VolumePolicy,
  type VolumeState,
} from './types.ts';

export interface UsagePoint {
  at: Date;
  /** Bytes used on the filesystem (what the database wants to store). */
  usedBytes: number;
}

/** One instance's own usage series (per-instance replay). */
export interface InstanceTrace {
  /** Instance name, e.g. `pg-2`; also used as its PVC's name. */
  instance: string;
  /** Usage over time, sorted by time; linear between points, flat outside them. At least two points. */
  trace: readonly UsagePoint[];
}

export interface ReplayOptions {
  policy: VolumePolicy;
  provider?: ProviderFacts | undefined;
  tuning?: EngineTuning | undefined;
  /** Usage over time, sorted by time; linear between points. At least two points. Leave out when `instanceTraces` is given. */
  trace?: readonly UsagePoint[] | undefined;
  /** Number of instances holding `trace` (all hold the same data). Ignored with `instanceTraces`. */
  instances?: number | undefined;
  /** Per-instance usage; replaces `trace` and `instances`. The replay spans from the earliest to the latest point of any. */
  instanceTraces?: readonly InstanceTrace[] | undefined;
  initialSize: number;
  /** How often the disk is sampled and the engine decides. */
  stepMs?: number | undefined;
  /** Time from patching the PVCs to the grown filesystem. */
  resizeLatencyMs: number;
  /** Filesystem size per PVC byte (ext4: about 0.97). */
  filesystemRatio?: number | undefined;
  /** Share of the filesystem reserved for root (ext4 default: 5%). */
  reservedRatio?: number | undefined;
  /** Label of the volume in decision messages (`data`, `wal`, `tablespace app`); default `replay`. */
  volume?: string | undefined;
}

export interface ReplayResize {
  at: Date;
  kind: ActionKind;
  from: number;
  to: number;
  reason: Reason;
  /** The engine's message for the decision. */
  message: string;
  /** The instance that was fullest (highest percent used) when the engine decided. */
  fullestInstance: string | undefined;
}

/** What one instance went through (per-instance figures of the report). */
export interface ReplayInstanceReport {
  instance: string;
  secondsOverCritical: number;
  secondsOutOfSpace: number;
  /** Highest percent used (as df shows it) seen on this instance's filesystem. */
  maxPercentUsed: number;
}

export interface ReplayReport {
  resizes: ReplayResize[];
  emergencyResizes: number;
  scheduledResizes: number;
  /** Seconds during which usage was at or over the critical threshold (on any instance). */
  secondsOverCritical: number;
  /** Seconds during which the database wanted more space than the filesystem had (on any instance). */
  secondsOutOfSpace: number;
  /** Integral of the volume's size (one PVC: every PVC of the volume has it) over time, in GiB-hours. */
  provisionedGiBHours: number;
  /** Integral of the ideal size (for the fullest instance) over time, in GiB-hours. */
  idealGiBHours: number;
  /** provisioned / ideal. */
  overProvisioning: number;
  finalSize: number;
  maxActionsIn24h: number;
  secondsByState: Partial<Record<VolumeState, number>>;
  /** One entry per instance, in the order given. */
  instances: ReplayInstanceReport[];
  /** First and last step of the replay. */
  start: Date;
  end: Date;
}

const GIB_HOUR = 1024 ** 3 * 3_600_000;

interface SimInstance {
  name: string;
  usage: UsageCursor;
  /** `spec.resources.requests.storage` of its PVC. */
  specSize: number;
  /** Size of the PVC's filesystem device (what has been expanded). */
  capacity: number;
  pending: { to: number; completesAt: number } | undefined;
  /** When its last resize completed. */
  completedAt: number;
  recent: DiskReading[];
  longTerm: DiskReading[];
  report: ReplayInstanceReport;
}

interface SimState {
  instances: SimInstance[];
  specSize: number;
  history: ActionRecord[];
  pendingAction: ActionRecord | undefined;
}

interface Resolved {
  stepMs: number;
  tuning: EngineTuning;
  fsRatio: number;
  reserved: number;
  usableRatio: number;
}

function instanceTracesOf(options: ReplayOptions): InstanceTrace[] {
  if (options.instanceTraces !== undefined) {
    if (options.instanceTraces.length === 0) throw new RangeError('replay: instanceTraces is empty');
    for (const { instance, trace } of options.instanceTraces) {
      if (trace.length < 2) throw new RangeError(`replay: the trace of ${instance} needs at least two points`);
    }
    return [...options.instanceTraces];
  }
  const trace = options.trace ?? [];
  if (trace.length < 2) throw new RangeError('replay: the trace needs at least two points');
  return Array.from({ length: options.instances ?? 1 }, (_, index) => ({ instance: `replay-${index + 1}`, trace }));
}

function span(traces: readonly InstanceTrace[]): { first: number; last: number } {
  let first = Infinity;
  let last = -Infinity;
  for (const { trace } of traces) {
    first = Math.min(first, trace[0]?.at.getTime() ?? Infinity);
    last = Math.max(last, trace.at(-1)?.at.getTime() ?? -Infinity);
  }
  return { first, last };
}

export function replay(options: ReplayOptions): ReplayReport {
  const traces = instanceTracesOf(options);
  const { first, last } = span(traces);
  const fsRatio = options.filesystemRatio ?? 0.97;
  const reserved = options.reservedRatio ?? 0.05;
  const settings: Resolved = { stepMs: options.stepMs ?? 30_000, tuning: options.tuning ?? DEFAULT_TUNING, fsRatio, reserved, usableRatio: fsRatio * (1 - reserved) };
  if (!(settings.stepMs > 0)) throw new RangeError('replay: stepMs must be positive');
  const sim: SimState = {
    instances: traces.map(({ instance, trace }) => ({
      name: instance,
      usage: new UsageCursor(trace),
      specSize: options.initialSize,
      capacity: options.initialSize,
      pending: undefined,
      completedAt: first,
      recent: [],
      longTerm: [],
      report: { instance, secondsOverCritical: 0, secondsOutOfSpace: 0, maxPercentUsed: 0 },
    })),
    specSize: options.initialSize,
    history: [],
    pendingAction: undefined,
  };
  const report = emptyReport(options.initialSize, first, last);
  const run: Run = { report, sim, policy: options.policy, settings };
  const allActions: number[] = [];
  let lastStep = first;
  for (let t = first; t <= last; t += settings.stepMs) {
    lastStep = t;
    completeResizes(sim, t);
    const wanted = sim.instances.map((instance) => instance.usage.at(t));
    for (const [index, instance] of sim.instances.entries()) {
      const reading = sample(instance.capacity, wanted[index] ?? 0, fsRatio, reserved, new Date(t));
      instance.recent = [...instance.recent.filter((r) => r.sampledAt.getTime() > t - settings.tuning.prediction.lookbackMs), reading];
      keepSampled(instance.longTerm, reading, LONG_TERM_HISTORY);
    }
    sim.history = sim.history.filter((a) => a.timestamp.getTime() > t - 2 * BUDGET_WINDOW_MS);
    const decision = decide(
      {
        volume: options.volume ?? 'replay',
        policy: options.policy,
        provider: options.provider ?? DEFAULT_PROVIDER,
        tuning: settings.tuning,
        history: sim.history,
        instances: sim.instances.map(instanceVolume),
      },
      new Date(t),
    );
    account(run, wanted, decision);
    if (decision.action !== NoOp && decision.newSize !== undefined) {
      act(run, decision, decision.action, t, options.resizeLatencyMs);
      allActions.push(t);
    }
  }
  report.end = new Date(lastStep);
  return finish(report, sim, allActions);
}

/** What every step works on. */
interface Run {
  report: ReplayReport;
  sim: SimState;
  policy: VolumePolicy;
  settings: Resolved;
}

function account({ report, sim, policy, settings }: Run, wanted: readonly number[], decision: Decision): void {
  const seconds = settings.stepMs / 1000;
  let outOfSpace = false;
  let overCritical = false;
  let volumeSize = 0;
  let ideal = policy.request;
  for (const [index, instance] of sim.instances.entries()) {
    const want = wanted[index] ?? 0;
    const usable = instance.capacity * settings.usableRatio;
    const percent = (Math.min(want, usable) / usable) * 100;
    instance.report.maxPercentUsed = Math.max(instance.report.maxPercentUsed, percent);
    if (want >= usable) {
      outOfSpace = true;
      instance.report.secondsOutOfSpace += seconds;
    }
    if (percent >= policy.emergencyGrow.criticalThreshold) {
      overCritical = true;
      instance.report.secondsOverCritical += seconds;
    }
    volumeSize = Math.max(volumeSize, instance.capacity);
    ideal = Math.max(ideal, want / ((1 - policy.targetBuffer / 100) * settings.usableRatio));
  }
  if (outOfSpace) report.secondsOutOfSpace += seconds;
  if (overCritical) report.secondsOverCritical += seconds;
  report.secondsByState[decision.state] = (report.secondsByState[decision.state] ?? 0) + seconds;
  report.provisionedGiBHours += (volumeSize * settings.stepMs) / GIB_HOUR;
  report.idealGiBHours += (ideal * settings.stepMs) / GIB_HOUR;
}

/** Patches the PVCs as the engine decided (every PVC below the new size, or all when it names none). */
function act({ report, sim }: Run, decision: Decision, kind: ActionKind, t: number, latencyMs: number): void {
  const to = decision.newSize ?? sim.specSize;
  const patched = new Set(decision.patches.map((p) => p.instance));
  const targets = sim.instances.filter((instance) => (patched.size === 0 ? instance.specSize < to : patched.has(instance.name)));
  const single = decision.patches.length === 1 ? decision.patches[0]?.instance : undefined;
  const action: ActionRecord = { kind, from: sim.specSize, to, timestamp: new Date(t), result: ActionResults.Pending, instance: single };
  for (const instance of targets) {
    instance.specSize = to;
    instance.pending = { to, completesAt: t + latencyMs };
  }
  sim.history.push(action);
  sim.pendingAction = action;
  report.resizes.push({ at: new Date(t), kind, from: sim.specSize, to, reason: decision.reason, message: decision.message, fullestInstance: fullest(decision) });
  sim.specSize = to;
}

function fullest(decision: Decision): string | undefined {
  let best: { instance: string; percentUsed: number } | undefined;
  for (const usage of decision.instances) {
    if (usage.excluded !== undefined) continue;
    if (best === undefined || usage.percentUsed > best.percentUsed) best = usage;
  }
  return best?.instance;
}

function emptyReport(initialSize: number, first: number, last: number): ReplayReport {
  return {
    resizes: [],
    emergencyResizes: 0,
    scheduledResizes: 0,
    secondsOverCritical: 0,
    secondsOutOfSpace: 0,
    provisionedGiBHours: 0,
    idealGiBHours: 0,
    overProvisioning: 0,
    finalSize: initialSize,
    maxActionsIn24h: 0,
    secondsByState: {},
    instances: [],
    start: new Date(first),
    end: new Date(last),
  };
}

/** Most actions in any 24 hours (a window starting at an action holds the most). */
export function maxActionsInWindow(actions: readonly number[], windowMs = BUDGET_WINDOW_MS): number {
  let max = 0;
  let from = 0;
  const sorted = [...actions].sort((a, b) => a - b);
  for (const [index, start] of sorted.entries()) {
    while ((sorted[from] ?? Infinity) <= start - windowMs) from += 1;
    max = Math.max(max, index - from + 1);
  }
  return max;
}

function finish(report: ReplayReport, sim: SimState, actions: readonly number[]): ReplayReport {
  return {
    ...report,
    emergencyResizes: report.resizes.filter((r) => r.kind === 'EmergencyGrow').length,
    scheduledResizes: report.resizes.filter((r) => r.kind === 'ScheduledGrow').length,
    overProvisioning: report.idealGiBHours > 0 ? report.provisionedGiBHours / report.idealGiBHours : 0,
    finalSize: sim.specSize,
    maxActionsIn24h: maxActionsInWindow(actions),
    instances: sim.instances.map((instance) => ({ ...instance.report })),
  };
}

/** Filesystems whose resize has had its latency grow; the action succeeds once every PVC has its size. */
function completeResizes(sim: SimState, t: number): void {
  for (const instance of sim.instances) {
    if (instance.pending === undefined || instance.pending.completesAt > t) continue;
    instance.capacity = instance.pending.to;
    instance.completedAt = instance.pending.completesAt;
    instance.pending = undefined;
  }
  const action = sim.pendingAction;
  if (action === undefined || sim.instances.some((instance) => instance.capacity < action.to)) return;
  const completedAt = Math.max(...sim.instances.map((instance) => instance.completedAt));
  const done: ActionRecord = { ...action, result: ActionResults.Success, completedAt: new Date(completedAt) };
  sim.history = sim.history.map((a) => (a === action ? done : a));
  sim.pendingAction = undefined;
}

/** Linear interpolation of the trace; flat before the first and after the last point. */
export function usageAt(trace: readonly UsagePoint[], t: number): number {
  return new UsageCursor(trace).at(t);
}

/** usageAt for times that only move forward: amortized constant time per step on a long trace. */
class UsageCursor {
  private index = 0;
  private readonly trace: readonly UsagePoint[];

  constructor(trace: readonly UsagePoint[]) {
    this.trace = trace;
  }

  at(t: number): number {
    const trace = this.trace;
    if (this.index > 0 && (trace[this.index - 1]?.at.getTime() ?? -Infinity) >= t) this.index = 0;
    while (this.index < trace.length && (trace[this.index]?.at.getTime() ?? Infinity) < t) this.index += 1;
    const point = trace[this.index];
    const previous = this.index > 0 ? trace[this.index - 1] : undefined;
    if (point === undefined) return previous?.usedBytes ?? 0;
    const time = point.at.getTime();
    if (previous === undefined || time === t) return point.usedBytes;
    const previousTime = previous.at.getTime();
    return previous.usedBytes + ((point.usedBytes - previous.usedBytes) * (t - previousTime)) / (time - previousTime);
  }
}

/** statfs of a filesystem sized for `capacity`, holding as much of `wanted` as fits. */
function sample(capacity: number, wanted: number, fsRatio: number, reservedRatio: number, at: Date): DiskReading {
  const total = Math.floor(capacity * fsRatio);
  const reserved = Math.floor(total * reservedRatio);
  const used = Math.min(Math.max(0, Math.round(wanted)), total - reserved);
  return { sampledAt: at, totalBytes: total, freeBytes: total - used, availableBytes: total - reserved - used };
}

function instanceVolume(instance: SimInstance): InstanceVolume {
  return {
    instance: instance.name,
    pvcName: instance.name,
    requestedSize: instance.specSize,
    capacity: instance.capacity,
    reading: instance.recent.at(-1),
    recentReadings: instance.recent,
    longTermReadings: instance.longTerm,
  };
}

/**
 * Replays the engine over a usage trace: a simulated volume whose filesystem follows its PVC after a fixed resize
 * latency, sampled and decided on every step. Reports what a user pays for and what they suffer: resizes, time over the
 * critical threshold, time out of space, and provisioned size-hours against the ideal (the smallest size holding the
 * usage with the target buffer at every instant). Pure and deterministic, like the engine.
 */
import { decide } from './decide.ts';
import { BUDGET_WINDOW_MS } from './budget.ts';
import {
  ActionResults,
  DEFAULT_PROVIDER,
  DEFAULT_TUNING,
  NoOp,
  type ActionKind,
  type ActionRecord,
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

export interface ReplayOptions {
  policy: VolumePolicy;
  provider?: ProviderFacts | undefined;
  tuning?: EngineTuning | undefined;
  /** Usage over time, sorted by time; linear between points. At least two points. */
  trace: readonly UsagePoint[];
  initialSize: number;
  /** Number of instances (all hold the same data). */
  instances?: number | undefined;
  /** How often the disk is sampled and the engine decides. */
  stepMs?: number | undefined;
  /** Time from patching the PVCs to the grown filesystem. */
  resizeLatencyMs: number;
  /** Filesystem size per PVC byte (ext4: about 0.97). */
  filesystemRatio?: number | undefined;
  /** Share of the filesystem reserved for root (ext4 default: 5%). */
  reservedRatio?: number | undefined;
}

export interface ReplayResize {
  at: Date;
  kind: ActionKind;
  from: number;
  to: number;
  reason: Reason;
}

export interface ReplayReport {
  resizes: ReplayResize[];
  emergencyResizes: number;
  scheduledResizes: number;
  /** Seconds during which usage was at or over the critical threshold. */
  secondsOverCritical: number;
  /** Seconds during which the database wanted more space than the filesystem had. */
  secondsOutOfSpace: number;
  /** Integral of the PVC size over time, in GiB-hours. */
  provisionedGiBHours: number;
  /** Integral of the ideal size over time, in GiB-hours. */
  idealGiBHours: number;
  /** provisioned / ideal. */
  overProvisioning: number;
  finalSize: number;
  maxActionsIn24h: number;
  secondsByState: Partial<Record<VolumeState, number>>;
}

const GIB_HOUR = 1024 ** 3 * 3_600_000;

interface SimState {
  specSize: number;
  capacity: number;
  pending: { to: number; completesAt: number; action: ActionRecord } | undefined;
  history: ActionRecord[];
  recent: DiskReading[];
}

export function replay(options: ReplayOptions): ReplayReport {
  const first = options.trace[0];
  const last = options.trace[options.trace.length - 1];
  if (first === undefined || last === undefined || options.trace.length < 2) throw new RangeError('replay: the trace needs at least two points');
  const stepMs = options.stepMs ?? 30_000;
  const tuning = options.tuning ?? DEFAULT_TUNING;
  const fsRatio = options.filesystemRatio ?? 0.97;
  const reserved = options.reservedRatio ?? 0.05;
  const usableRatio = fsRatio * (1 - reserved);
  const sim: SimState = { specSize: options.initialSize, capacity: options.initialSize, pending: undefined, history: [], recent: [] };
  const report = emptyReport(options.initialSize);
  const allActions: number[] = [];
  for (let t = first.at.getTime(); t <= last.at.getTime(); t += stepMs) {
    completeResize(sim, t);
    const wanted = usageAt(options.trace, t);
    const reading = sample(sim.capacity, wanted, fsRatio, reserved, new Date(t));
    sim.recent = [...sim.recent.filter((r) => r.sampledAt.getTime() > t - tuning.prediction.lookbackMs), reading];
    sim.history = sim.history.filter((a) => a.timestamp.getTime() > t - 2 * BUDGET_WINDOW_MS);
    const decision = decide(
      {
        volume: 'replay',
        policy: options.policy,
        provider: options.provider ?? DEFAULT_PROVIDER,
        tuning,
        history: sim.history,
        instances: instancesOf(sim, options.instances ?? 1, reading),
      },
      new Date(t),
    );
    const usable = sim.capacity * usableRatio;
    const seconds = stepMs / 1000;
    if (wanted >= usable) report.secondsOutOfSpace += seconds;
    if ((Math.min(wanted, usable) / usable) * 100 >= options.policy.emergencyGrow.criticalThreshold) report.secondsOverCritical += seconds;
    report.secondsByState[decision.state] = (report.secondsByState[decision.state] ?? 0) + seconds;
    report.provisionedGiBHours += (sim.capacity * stepMs) / GIB_HOUR;
    const ideal = Math.max(options.policy.request, wanted / ((1 - options.policy.targetBuffer / 100) * usableRatio));
    report.idealGiBHours += (ideal * stepMs) / GIB_HOUR;
    if (decision.action !== NoOp && decision.newSize !== undefined) {
      const action: ActionRecord = { kind: decision.action, from: sim.specSize, to: decision.newSize, timestamp: new Date(t), result: ActionResults.Pending };
      sim.history.push(action);
      allActions.push(t);
      report.resizes.push({ at: new Date(t), kind: decision.action, from: sim.specSize, to: decision.newSize, reason: decision.reason });
      sim.specSize = decision.newSize;
      sim.pending = { to: decision.newSize, completesAt: t + options.resizeLatencyMs, action };
    }
  }
  return finish(report, sim, allActions);
}

function emptyReport(initialSize: number): ReplayReport {
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
  };
}

function finish(report: ReplayReport, sim: SimState, actions: readonly number[]): ReplayReport {
  let maxIn24h = 0;
  for (const [index, start] of actions.entries()) {
    const inWindow = actions.slice(index).filter((t) => t < start + BUDGET_WINDOW_MS).length;
    maxIn24h = Math.max(maxIn24h, inWindow);
  }
  return {
    ...report,
    emergencyResizes: report.resizes.filter((r) => r.kind === 'EmergencyGrow').length,
    scheduledResizes: report.resizes.filter((r) => r.kind === 'ScheduledGrow').length,
    overProvisioning: report.idealGiBHours > 0 ? report.provisionedGiBHours / report.idealGiBHours : 0,
    finalSize: sim.specSize,
    maxActionsIn24h: maxIn24h,
  };
}

function completeResize(sim: SimState, t: number): void {
  if (sim.pending === undefined || sim.pending.completesAt > t) return;
  sim.capacity = sim.pending.to;
  const done: ActionRecord = { ...sim.pending.action, result: ActionResults.Success, completedAt: new Date(sim.pending.completesAt) };
  sim.history = sim.history.map((action) => (action === sim.pending?.action ? done : action));
  sim.pending = undefined;
}

/** Linear interpolation of the trace; flat before the first and after the last point. */
export function usageAt(trace: readonly UsagePoint[], t: number): number {
  let previous: UsagePoint | undefined;
  for (const point of trace) {
    const time = point.at.getTime();
    if (time >= t) {
      if (previous === undefined || time === t) return point.usedBytes;
      const previousTime = previous.at.getTime();
      return previous.usedBytes + ((point.usedBytes - previous.usedBytes) * (t - previousTime)) / (time - previousTime);
    }
    previous = point;
  }
  return previous?.usedBytes ?? 0;
}

/** statfs of a filesystem sized for `capacity`, holding as much of `wanted` as fits. */
function sample(capacity: number, wanted: number, fsRatio: number, reservedRatio: number, at: Date): DiskReading {
  const total = Math.floor(capacity * fsRatio);
  const reserved = Math.floor(total * reservedRatio);
  const used = Math.min(Math.max(0, Math.round(wanted)), total - reserved);
  return { sampledAt: at, totalBytes: total, freeBytes: total - used, availableBytes: total - reserved - used };
}

function instancesOf(sim: SimState, count: number, reading: DiskReading): InstanceVolume[] {
  return Array.from({ length: count }, (_, index) => ({
    instance: `replay-${index + 1}`,
    pvcName: `replay-${index + 1}`,
    requestedSize: sim.specSize,
    capacity: sim.capacity,
    reading,
    recentReadings: sim.recent,
  }));
}

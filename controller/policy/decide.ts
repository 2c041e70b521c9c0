/**
 * The sizing decision for one logical volume: `decide(input, now)`. Pure: the same input and `now` always give the same
 * decision. Rules are checked in a fixed order, each returning a decision or passing on:
 * no volumes -> resize in flight -> no usable disk status -> emergency -> planned growth -> steady state.
 * docs/sizing-policy.md is the reference for every rule, reason and message.
 */
import { exponentialDelay } from '../../shared/backoff.ts';
import { BUDGET_WINDOW_MS, evaluateBudget, rejectedAttemptAllowedAt, type BudgetView } from './budget.ts';
import { fillRate, growthWithin, longTermGrowth, rateEvidenceSince, rateOf, resizeHorizonMs, resizeLatencyMs, secondsToUse, sustainedForMs } from './predict.ts';
import {
  computeTargets,
  effectiveBufferPercent,
  emergencyCeiling,
  emergencyStepSize,
  minimumStep,
  overshootBytes,
  pvcBytesFor,
  roundForProvider,
  type Targets,
} from './sizing.ts';
import {
  ActionKinds,
  DEFAULT_PROVIDER,
  DEFAULT_TUNING,
  NoOp,
  Reasons,
  VolumeStates,
  type ActionRecord,
  type Decision,
  type DecisionInput,
  type DiskReading,
  type EngineTuning,
  type InstanceUsage,
  type InstanceVolume,
  type ProviderFacts,
  type PvcPatch,
  type Reason,
  type VolumePolicy,
  type VolumeState,
  type WindowStatus,
} from './types.ts';
import { describeUsage, readingProblem } from './usage.ts';
import { formatPercent, formatPercentAbove, formatSize, formatTime, formatUsage } from './format.ts';
import { formatDuration } from './window.ts';

interface Evaluated {
  volume: InstanceVolume;
  usage: InstanceUsage;
}

interface Context {
  input: DecisionInput;
  policy: VolumePolicy;
  provider: ProviderFacts;
  tuning: EngineTuning;
  now: Date;
  budget: BudgetView;
  window: WindowStatus;
  current: number;
  lastAction: ActionRecord | undefined;
  evaluated: readonly Evaluated[];
  fresh: readonly Evaluated[];
  targets: Targets;
}

type Outcome = Pick<Decision, 'state' | 'action' | 'reason' | 'message'> &
  Partial<Pick<Decision, 'newSize' | 'patches' | 'wakeAt'>>;

export function decide(input: DecisionInput, now: Date): Decision {
  const ctx = buildContext(input, now);
  const outcome =
    noVolumes(ctx) ?? resizing(ctx) ?? rejected(ctx) ?? waitingForStatus(ctx) ?? emergency(ctx) ?? plannedGrowth(ctx) ?? steadyState(ctx);
  return {
    state: outcome.state,
    action: outcome.action,
    reason: outcome.reason,
    message: `${input.volume}: ${outcome.message}`,
    currentSize: ctx.current,
    targetSize: ctx.targets.target,
    desiredSize: ctx.targets.desired,
    newSize: outcome.newSize,
    patches: outcome.patches ?? [],
    wakeAt: outcome.wakeAt,
    budget: {
      actionsLast24h: ctx.budget.actionsLast24h,
      availableForPlanned: ctx.budget.availableForPlanned,
      availableForEmergency: ctx.budget.availableForEmergency,
      budgetResetsAt: ctx.budget.budgetResetsAt,
    },
    window: ctx.window,
    instances: ctx.evaluated.map((entry) => entry.usage),
  };
}

function buildContext(input: DecisionInput, now: Date): Context {
  const provider = input.provider ?? DEFAULT_PROVIDER;
  const tuning = input.tuning ?? DEFAULT_TUNING;
  const { policy } = input;
  const lastAction = latestAction(input.history);
  const current = Math.max(0, ...input.instances.map((volume) => volume.requestedSize));
  const evaluated = [...input.instances]
    .sort((a, b) => a.instance.localeCompare(b.instance))
    .map((volume) => evaluateInstance(volume, lastAction, tuning, now));
  const fresh = evaluated.filter((entry) => entry.usage.excluded === undefined);
  const maintenance = policy.maintenanceWindow;
  const budget = evaluateBudget(input.history, policy.emergencyGrow, now);
  const window = { open: maintenance.contains(now), closesAt: maintenance.closesAt(now), nextStart: maintenance.nextStart(now) };
  const lookahead = plannedLookaheadMs(input, budget, window, tuning, now);
  return {
    input,
    policy,
    provider,
    tuning,
    now,
    budget,
    window,
    current,
    lastAction,
    evaluated,
    fresh,
    targets: computeTargets(fresh.map((entry) => entry.usage), { policy, provider, tuning }, current, lookahead / 1000),
  };
}

/**
 * How far ahead planned growth sizes: until the next chance of planned growth after this one, plus the time a resize
 * takes (with its safety factor). That chance is the next window start, and no sooner than the planned budget allows
 * another action; with no window, the day's planned actions are spread over the day.
 */
function plannedLookaheadMs(input: DecisionInput, budget: BudgetView, window: WindowStatus, tuning: EngineTuning, now: Date): number {
  const prediction = tuning.prediction;
  const margin = resizeHorizonMs(input.history, prediction);
  const { maxActionsPerDay, reservedActionsForEmergency } = input.policy.emergencyGrow;
  const plannedPerDay = Math.max(1, maxActionsPerDay - reservedActionsForEmergency);
  const spacing = BUDGET_WINDOW_MS / plannedPerDay;
  const untilWindow = window.nextStart === undefined ? 0 : window.nextStart.getTime() - now.getTime();
  // After the last planned action of the budget, the next one waits until the oldest counted action leaves the 24 h window.
  const untilRefill = budget.budgetResetsAt === undefined ? BUDGET_WINDOW_MS : budget.budgetResetsAt.getTime() - now.getTime();
  const budgetWait = budget.availableForPlanned <= 1 ? untilRefill : 0;
  return Math.min(BUDGET_WINDOW_MS, Math.max(spacing, untilWindow, budgetWait)) + margin;
}

function latestAction(history: readonly ActionRecord[]): ActionRecord | undefined {
  let latest: ActionRecord | undefined;
  for (const action of history) {
    if (latest === undefined || action.timestamp.getTime() > latest.timestamp.getTime()) latest = action;
  }
  return latest;
}

function evaluateInstance(volume: InstanceVolume, lastAction: ActionRecord | undefined, tuning: EngineTuning, now: Date): Evaluated {
  const problem = readingProblem(volume, lastAction, tuning, now);
  const readings: DiskReading[] = [...volume.recentReadings];
  if (volume.reading !== undefined && !readings.includes(volume.reading)) readings.push(volume.reading);
  const rate = problem === undefined ? fillRate(readings, rateEvidenceSince(lastAction), tuning.prediction, now) : undefined;
  const longTerm = problem === undefined ? longTermGrowth(volume.longTermReadings ?? [], tuning.prediction, tuning.growthRateMinSpanMs, now) : undefined;
  return { volume, usage: describeUsage(volume, problem, { fillRate: rate, longTermGrowth: longTerm }) };
}

// ---------------------------------------------------------------------------------------------------------------------
// Rule 1: nothing to size.

function noVolumes(ctx: Context): Outcome | undefined {
  if (ctx.input.instances.length > 0) return undefined;
  return waitingOutcome(Reasons.NoVolumes, 'no PVCs found for this volume');
}

// ---------------------------------------------------------------------------------------------------------------------
// Rule 2: a resize is in flight. Never stack another grow on top of one; say clearly when it is stuck.

interface InFlight {
  volume: InstanceVolume;
  reason: Reason;
  detail: string;
}

function resizing(ctx: Context): Outcome | undefined {
  const inFlight = ctx.input.instances.map((volume) => inFlightResize(ctx, volume)).filter((entry) => entry !== undefined);
  const pendingFilesystems = ctx.evaluated.filter((entry) => entry.usage.excluded === Reasons.FilesystemResizePending);
  if (inFlight.length === 0 && pendingFilesystems.length === 0) return undefined;
  const blocked = inFlight.find((entry) => entry.reason !== Reasons.ResizeInProgress);
  const trigger = emergencyTrigger(ctx);
  if (blocked !== undefined && trigger !== undefined) {
    return {
      state: VolumeStates.Emergency,
      action: NoOp,
      reason: Reasons.EmergencyResizeBlocked,
      message: `${trigger.text}; not patching again because ${blocked.detail}`,
    };
  }
  if (blocked !== undefined) {
    return { state: VolumeStates.Resizing, action: NoOp, reason: blocked.reason, message: blocked.detail };
  }
  const first = inFlight[0];
  if (first === undefined) {
    const names = pendingFilesystems.map((entry) => entry.volume.pvcName).join(', ');
    const message = `waiting for the filesystem of ${names} to grow to the new PVC size`;
    return { state: VolumeStates.Resizing, action: NoOp, reason: Reasons.FilesystemResizePending, message };
  }
  const stuckAt = ctx.lastAction?.result === 'Pending' ? new Date(ctx.lastAction.timestamp.getTime() + ctx.tuning.resizeStuckAfterMs) : undefined;
  const suffix = trigger === undefined ? '' : ` (${trigger.text})`;
  return { state: VolumeStates.Resizing, action: NoOp, reason: Reasons.ResizeInProgress, message: `${first.detail}${suffix}`, wakeAt: stuckAt };
}

function inFlightResize(ctx: Context, volume: InstanceVolume): InFlight | undefined {
  const { capacity, requestedSize, resize } = volume;
  const growing = capacity !== undefined && requestedSize > capacity;
  if (!growing && resize === undefined) return undefined;
  const sizes = `${volume.pvcName} from ${formatSize(capacity ?? 0)} to ${formatSize(requestedSize)}`;
  const why = resize?.message ? `: ${resize.message}` : '';
  if (resize?.phase === 'Infeasible') return { volume, reason: Reasons.ResizeInfeasible, detail: `the resize of ${sizes} is infeasible${why}` };
  if (resize?.phase === 'Failed') return { volume, reason: Reasons.ResizeFailed, detail: `the resize of ${sizes} is failing${why}` };
  // Only a resize of ours that is still Pending can be stuck: one started by someone else (CloudNativePG after its
  // spec.storage.size was raised, a person) has no start time we know.
  const started = ctx.lastAction?.result === 'Pending' ? ctx.lastAction.timestamp.getTime() : undefined;
  if (started !== undefined && ctx.now.getTime() - started >= ctx.tuning.resizeStuckAfterMs) {
    const age = formatDuration(ctx.now.getTime() - started);
    return { volume, reason: Reasons.ResizeStuck, detail: `the resize of ${sizes} has not finished after ${age}` };
  }
  return { volume, reason: Reasons.ResizeInProgress, detail: `resize of ${sizes} in progress` };
}

/**
 * The latest grow was refused, or failed, and its size never reached the PVCs (the patch was rejected: quota,
 * admission). Patching again at once would be rejected the same way, so wait, longer after each rejection in a row, and
 * at most maxRejectedPerDay Rejected attempts in any 24 h (they are not counted in the budget, so they need a bound).
 */
function rejected(ctx: Context): Outcome | undefined {
  const last = ctx.lastAction;
  const refused = last?.result === 'Rejected' || last?.result === 'Failed';
  if (!last || !refused || ctx.input.instances.every((volume) => volume.requestedSize >= last.to)) return undefined;
  const backoffAt = last.timestamp.getTime() + rejectedRetryDelay(ctx);
  const dailyAt = rejectedAttemptAllowedAt(ctx.input.history, ctx.tuning.maxRejectedPerDay, ctx.now).getTime();
  const retryAt = new Date(Math.max(backoffAt, dailyAt));
  if (ctx.now.getTime() >= retryAt.getTime()) return undefined;
  const bound = dailyAt > backoffAt ? ` (${ctx.tuning.maxRejectedPerDay} rejected attempts in the last 24h, the most allowed; they do not count in the budget)` : '';
  const detail = `the grow from ${formatSize(last.from)} to ${formatSize(last.to)} at ${formatTime(last.timestamp)} was rejected; next attempt at ${formatTime(retryAt)}${bound}`;
  const trigger = emergencyTrigger(ctx);
  if (trigger !== undefined) {
    return { state: VolumeStates.Emergency, action: NoOp, reason: Reasons.EmergencyResizeBlocked, message: `${trigger.text}; not patching again yet: ${detail}`, wakeAt: retryAt };
  }
  return { state: VolumeStates.Resizing, action: NoOp, reason: Reasons.ResizeFailed, message: detail, wakeAt: retryAt };
}

/** rejectedRetryMs, doubled for each earlier failed action directly before the latest one, at most rejectedRetryMaxMs. */
function rejectedRetryDelay(ctx: Context): number {
  const sorted = [...ctx.input.history].sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime());
  let inARow = 0;
  const refused = (result: string | undefined): boolean => result === 'Failed' || result === 'Rejected';
  for (let i = sorted.length - 1; i >= 0 && refused(sorted[i]?.result); i -= 1) inARow += 1;
  return exponentialDelay({ initialMs: ctx.tuning.rejectedRetryMs, maxMs: ctx.tuning.rejectedRetryMaxMs }, inARow);
}

// ---------------------------------------------------------------------------------------------------------------------
// Rule 3: no trustworthy disk status at all.

const waitingReasonOrder: readonly Reason[] = [
  Reasons.DiskStatusInvalid,
  Reasons.DiskStatusPredatesResize,
  Reasons.DiskStatusStale,
  Reasons.DiskStatusMissing,
];

function waitingForStatus(ctx: Context): Outcome | undefined {
  if (ctx.fresh.length > 0) return undefined;
  return waitingOutcome(worstExclusion(ctx), describeExclusions(ctx));
}

function worstExclusion(ctx: Context): Reason {
  const reasons = new Set(ctx.evaluated.map((entry) => entry.usage.excluded));
  return waitingReasonOrder.find((reason) => reasons.has(reason)) ?? Reasons.DiskStatusMissing;
}

const exclusionText: Partial<Record<Reason, string>> = {
  [Reasons.DiskStatusMissing]: 'no disk status',
  [Reasons.DiskStatusStale]: 'disk status older than',
  [Reasons.DiskStatusInvalid]: 'inconsistent disk status',
  [Reasons.DiskStatusPredatesResize]: 'disk status taken before the last resize',
};

function describeExclusions(ctx: Context): string {
  return ctx.evaluated
    .filter((entry) => entry.usage.excluded !== undefined)
    .map((entry) => {
      const reason = entry.usage.excluded ?? Reasons.DiskStatusMissing;
      const text = exclusionText[reason] ?? reason;
      const bound = reason === Reasons.DiskStatusStale ? ` ${formatDuration(ctx.tuning.maxReadingAgeMs)}` : '';
      return `${entry.volume.instance}: ${text}${bound}`;
    })
    .join('; ');
}

function waitingOutcome(reason: Reason, message: string): Outcome {
  return { state: VolumeStates.WaitingForDiskStatus, action: NoOp, reason, message };
}

// ---------------------------------------------------------------------------------------------------------------------
// Rule 4: emergency, whatever the window, from the emergency budget.

interface Trigger {
  entry: Evaluated;
  reason: Reason;
  text: string;
}

function emergencyTrigger(ctx: Context): Trigger | undefined {
  const { criticalThreshold, criticalMinimumFree } = ctx.policy.emergencyGrow;
  const candidates: Trigger[] = [];
  for (const entry of ctx.fresh) {
    const { usage } = entry;
    const who = `instance ${entry.volume.instance}`;
    if (usage.percentUsed >= criticalThreshold) {
      candidates.push({ entry, reason: Reasons.CriticalUsage, text: `${who} is ${formatPercent(usage.percentUsed)} used (critical threshold ${criticalThreshold}%)` });
    } else if (usage.availableBytes < criticalMinimumFree) {
      const text = `${who} has ${formatUsage(usage.availableBytes)} available (critical minimum ${formatSize(criticalMinimumFree)})`;
      candidates.push({ entry, reason: Reasons.CriticalFreeSpace, text });
    } else if (usage.inodePercentUsed !== undefined && usage.inodePercentUsed >= criticalThreshold) {
      const text = `${who} has ${formatPercent(usage.inodePercentUsed)} of its inodes used (critical threshold ${criticalThreshold}%)`;
      candidates.push({ entry, reason: Reasons.CriticalInodeUsage, text });
    }
  }
  const measured = candidates.sort((a, b) => b.entry.usage.percentUsed - a.entry.usage.percentUsed)[0];
  return measured ?? predictedTrigger(ctx);
}

function predictedTrigger(ctx: Context): Trigger | undefined {
  const prediction = ctx.tuning.prediction;
  if (!prediction.enabled || !ctx.policy.emergencyGrow.enabled) return undefined;
  const latency = resizeLatencyMs(ctx.input.history, prediction);
  const horizonSeconds = (latency * prediction.safetyFactor) / 1000;
  let soonest: { entry: Evaluated; seconds: number; full: boolean } | undefined;
  for (const entry of ctx.fresh) {
    const { usage } = entry;
    const toFull = secondsToUse(usage.availableBytes, usage.fillRate);
    const toCritical = secondsToUse(bytesToCritical(usage, ctx.policy), usage.fillRate);
    if (toFull === undefined || toCritical === undefined) continue;
    const full = toFull < horizonSeconds;
    const seconds = full ? toFull : toCritical;
    if (seconds < horizonSeconds && (soonest === undefined || seconds < soonest.seconds)) soonest = { entry, seconds, full };
  }
  if (soonest === undefined) return undefined;
  const rate = `${formatUsage(soonest.entry.usage.fillRate ?? 0)}/s`;
  const what = soonest.full ? 'be full' : 'reach the critical threshold';
  const text =
    `instance ${soonest.entry.volume.instance} will ${what} in about ${formatDuration(Math.round(soonest.seconds) * 1000)} at ${rate}, ` +
    `sooner than ${prediction.safetyFactor} x the ${formatDuration(latency)} a resize takes`;
  return { entry: soonest.entry, reason: soonest.full ? Reasons.PredictedFull : Reasons.PredictedCritical, text };
}

/** Bytes an instance can still take before it is critical: by the percent threshold or by the minimum free space. */
function bytesToCritical(usage: InstanceUsage, policy: VolumePolicy): number {
  const byPercent = (usage.usableBytes * policy.emergencyGrow.criticalThreshold) / 100 - usage.usedBytes;
  const byFree = usage.availableBytes - policy.emergencyGrow.criticalMinimumFree;
  return Math.max(0, Math.min(byPercent, byFree));
}

function emergency(ctx: Context): Outcome | undefined {
  const trigger = emergencyTrigger(ctx);
  if (trigger === undefined) return undefined;
  const stay = (reason: Reason, why: string, wakeAt?: Date): Outcome => ({
    state: VolumeStates.Emergency,
    action: NoOp,
    reason,
    message: `${trigger.text}; ${why}`,
    wakeAt,
  });
  if (!ctx.policy.emergencyGrow.enabled) {
    // emergencyGrow.enabled governs growth outside the window only: in an open window (or with none) the volume grows
    // as planned growth does, from the planned budget.
    if (ctx.window.open) return undefined;
    return stay(Reasons.EmergencyGrowDisabled, 'emergency growth is disabled (emergencyGrow.enabled is false) and the maintenance window is closed');
  }
  const ceiling = Math.min(emergencyCeiling(ctx.policy, ctx.provider, ctx.tuning, ctx.current), stepCeiling(ctx));
  const size = Math.min(ceiling, emergencySize(ctx, trigger));
  if (size <= ctx.current) return stay(Reasons.EmergencyAtLimit, describeEmergencyCeiling(ctx, ceiling));
  if (ctx.budget.availableForEmergency <= 0) {
    const when = ctx.budget.emergencyAvailableAt;
    const next = when === undefined ? 'maxActionsPerDay is 0' : `next action possible at ${formatTime(when)}`;
    return stay(Reasons.EmergencyBudgetExhausted, `no emergency budget left: ${budgetUse(ctx)}; ${next}`, when);
  }
  const capped = size >= ceiling && size < emergencySize(ctx, trigger) ? ` (capped at ${formatSize(ceiling)})` : '';
  return {
    state: VolumeStates.Emergency,
    action: ActionKinds.EmergencyGrow,
    reason: trigger.reason,
    message: `emergency grow from ${formatSize(ctx.current)} to ${formatSize(size)}${capped}: ${trigger.text}`,
    newSize: size,
    patches: patchesTo(ctx, size),
  };
}

/**
 * At least the target (unclamped, so an allowed overshoot can serve it) and one emergency step (max(25%, 1Gi)). When the
 * disk is filling, also room for the runway (see runwayMs): the long-term growth until then (see `growthWithin`), and the
 * current fill rate for as long as this resize takes (the prediction still looks `safetyFactor` resizes ahead, so a fill
 * that goes on triggers the next action in time) — a burst or a ramp is not extrapolated for hours while actions remain.
 * With one action at most after this, the current rate is extrapolated over the whole runway, bounded to 1.5 times the
 * current size (the last one can still follow). The day's last action is bounded by the ceiling alone, since nothing can
 * follow it, and sized from what the evidence supports: see `lastActionGrowth`.
 */
function emergencySize(ctx: Context, trigger: Trigger): number {
  const step = emergencyStepSize(ctx.current, ctx.provider, ctx.tuning);
  const { usage } = trigger.entry;
  const fill = Math.max(0, usage.fillRate ?? 0);
  const growth = Math.max(0, rateOf(usage.longTermGrowth) ?? 0);
  if (fill <= 0 && growth <= 0) return Math.max(ctx.targets.desired, step);
  const prediction = ctx.tuning.prediction;
  const horizonMs = resizeLatencyMs(ctx.input.history, prediction);
  const runway = runwayMs(ctx);
  const actionsAfterThis = Math.max(0, ctx.budget.availableForEmergency - 1);
  const longTerm = growthWithin(usage.longTermGrowth, runway / 1000, prediction);
  const added = actionsAfterThis === 0
    ? lastActionGrowth(ctx, trigger.entry, runway)
    : (fill * (actionsAfterThis === 1 ? runway : horizonMs)) / 1000 + longTerm;
  const keep = 1 - effectiveBufferPercent(ctx.policy, ctx.tuning) / 100;
  const runwaySize = roundForProvider(pvcBytesFor((usage.usedBytes + added) / keep, usage), ctx.provider);
  const bound = actionsAfterThis === 0 ? Number.POSITIVE_INFINITY : roundForProvider((actionsAfterThis === 1 ? 1.5 : 2) * ctx.current, ctx.provider);
  return Math.max(ctx.targets.desired, step, Math.min(runwaySize, bound));
}

/**
 * Growth the day's last action buys for: nothing can follow it until the budget refills, yet a rate measured over minutes
 * is no evidence for a day. The current fill rate is projected for as long as the readings show it has gone on (a fill
 * that lasted 12 minutes is bought 12 more, one that lasted 10 hours 10 more), at least for a resize horizon and at most
 * the runway, then the typical growth for the rest of the runway; or the long-term growth over the whole runway when that
 * is more (both measure the same growth, so they are not added).
 */
function lastActionGrowth(ctx: Context, entry: Evaluated, runway: number): number {
  const { usage, volume } = entry;
  const prediction = ctx.tuning.prediction;
  const fill = Math.max(0, usage.fillRate ?? 0);
  const readings = [...volume.recentReadings, ...(volume.longTermReadings ?? []), ...(volume.reading === undefined ? [] : [volume.reading])];
  const lasted = sustainedForMs(readings, fill, ctx.now);
  const fillFor = Math.min(runway, Math.max(resizeHorizonMs(ctx.input.history, prediction), lasted));
  const typical = Math.max(0, usage.longTermGrowth?.typical ?? 0);
  const fillThenTypical = (fill * fillFor + typical * (runway - fillFor)) / 1000;
  return Math.max(fillThenTypical, growthWithin(usage.longTermGrowth, runway / 1000, prediction));
}

const MAX_RUNWAY_MS = 24 * 60 * 60 * 1000;

/**
 * How long the space bought by an emergency must last: at least `safetyFactor` resizes; until the next window in which
 * the planned budget allows growth; and, when actions are scarce, the time until the budget refills shared among the
 * actions left, so that each one buys its share of the day instead of reaching only the next window.
 */
function runwayMs(ctx: Context): number {
  const prediction = ctx.tuning.prediction;
  const now = ctx.now.getTime();
  const minimum = resizeHorizonMs(ctx.input.history, prediction);
  const window = ctx.policy.maintenanceWindow;
  const plannedAt = ctx.budget.plannedAvailableAt;
  const from = plannedAt === undefined ? undefined : new Date(Math.max(now, plannedAt.getTime()));
  const opens = from === undefined ? undefined : ctx.window.open && from.getTime() === now ? ctx.window.nextStart : window.nextOpen(from);
  const untilWindow = opens === undefined ? MAX_RUNWAY_MS : opens.getTime() - now;
  const untilRefill = ctx.budget.budgetResetsAt === undefined ? MAX_RUNWAY_MS : ctx.budget.budgetResetsAt.getTime() - now;
  const actionsAfterThis = Math.max(0, ctx.budget.availableForEmergency - 1);
  const share = untilRefill / (actionsAfterThis + 1);
  return Math.min(MAX_RUNWAY_MS, Math.max(minimum, untilWindow, share));
}

function describeEmergencyCeiling(ctx: Context, ceiling: number): string {
  const { limit } = ctx.policy;
  if (ceiling < limit) return `already at ${formatSize(ctx.current)}, the largest size the provider can grow this disk to while attached`;
  if (!ctx.policy.emergencyGrow.exceedLimitOnEmergency) {
    return `already at the limit ${formatSize(limit)} (emergencyGrow.exceedLimitOnEmergency is false)`;
  }
  const overshoot = overshootBytes(ctx.policy, ctx.provider, ctx.tuning);
  return `already at the emergency ceiling ${formatSize(ceiling)} (limit ${formatSize(limit)} + overshoot ${formatSize(overshoot)})`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Rule 5: planned growth, in the maintenance window, from the planned budget.

function plannedGrowth(ctx: Context): Outcome | undefined {
  const { target, ahead, ceiling } = ctx.targets;
  const { current } = ctx;
  const belowRequest = current < ctx.policy.request;
  const canGrowNow = ctx.window.open && ctx.budget.availableForPlanned > 0;
  const step = minimumStep(current, ctx.tuning);
  const due = (size: number): boolean => size > current && (belowRequest || size >= ceiling || size - current >= step);
  // Usage past the buffer is always due: the step is rounded up to the minimum instead of waiting for usage to reach it,
  // which on a volume smaller than the step divided by the buffer would never happen before the disk is full.
  const growthDue = target > current;
  // Outside the window only today's usage makes growth pending; in it, growth expected before the next chance counts too.
  // Hysteresis: the look-ahead alone grows only when at least half the expected growth is missing, so a rate estimate
  // that creeps up during a window does not spend the planned budget in small steps.
  const aheadDue = canGrowNow && due(ahead) && ahead - current >= ctx.targets.expectedGrowth / 2;
  const lagging = boundVolumes(ctx).filter((volume) => volume.requestedSize < current);
  if (!growthDue && !aheadDue && lagging.length === 0) return undefined;
  const grows = growthDue || aheadDue;
  const wanted = Math.max(canGrowNow ? Math.max(target, ahead) : target, belowRequest ? 0 : roundForProvider(current + step, ctx.provider, ceiling));
  const newSize = grows ? Math.min(wanted, ceiling, stepCeiling(ctx)) : current;
  const reason = belowRequest
    ? Reasons.BelowRequest
    : growthDue ? Reasons.BelowTargetBuffer : aheadDue ? Reasons.ExpectedGrowth : Reasons.ReplicaBelowEffectiveSize;
  const why = plannedWhy(ctx, reason);
  const capped = grows && Math.max(ctx.targets.desired, ahead) > newSize ? ` (capped at ${formatSize(newSize)})` : '';
  const growth = grows
    ? `from ${formatSize(current)} to ${formatSize(newSize)}${capped}`
    : `of ${lagging.map((volume) => `${volume.pvcName} (${formatSize(volume.requestedSize)})`).join(', ')} to the volume size ${formatSize(newSize)}`;
  if (canGrowNow) {
    return {
      state: VolumeStates.NeedsGrow,
      action: ActionKinds.ScheduledGrow,
      reason,
      message: `growing ${growth.replace(/^of /, '')}: ${why}`,
      newSize,
      patches: patchesTo(ctx, newSize),
    };
  }
  return pendingGrowth(ctx, `growth ${growth} (${why})`);
}

/** The largest size one resize may reach from the current size (growth.maximumStep), rounded down to the provider unit. */
function stepCeiling(ctx: Context): number {
  const step = ctx.tuning.maximumStepBytes;
  if (step === undefined) return Number.POSITIVE_INFINITY;
  const unit = ctx.provider.allocationUnit;
  return Math.max(ctx.current + unit, Math.floor((ctx.current + step) / unit) * unit);
}

function plannedWhy(ctx: Context, reason: Reason): string {
  if (reason === Reasons.BelowRequest) return `the request ${formatSize(ctx.policy.request)} is above the current size`;
  if (reason === Reasons.ReplicaBelowEffectiveSize) return 'every PVC of a volume has the same size';
  if (reason === Reasons.ExpectedGrowth) {
    const growthOf = (entry: Evaluated | undefined): number => rateOf(entry?.usage.longTermGrowth) ?? 0;
    const fastest = [...ctx.fresh].sort((a, b) => growthOf(b) - growthOf(a))[0];
    const perDay = growthOf(fastest) * 86_400;
    const rate = fastest === undefined ? '' : `instance ${fastest.volume.instance} grows by ${formatUsage(perDay)} a day; `;
    return `${rate}sized for the usage expected before the next chance to grow`;
  }
  const fullest = fullestInstance(ctx);
  const allowed = 100 - effectiveBufferPercent(ctx.policy, ctx.tuning);
  if (fullest === undefined) return 'free space below the target buffer';
  return `instance ${fullest.volume.instance} is ${formatPercentAbove(fullest.usage.percentUsed, allowed)} used, above the ${formatPercent(allowed)} the target buffer allows`;
}

function pendingGrowth(ctx: Context, growth: string): Outcome {
  const window = ctx.policy.maintenanceWindow;
  const plannedAt = ctx.budget.plannedAvailableAt;
  const wakeAt = plannedAt === undefined ? undefined : window.nextOpen(plannedAt);
  const nextStart = ctx.window.nextStart;
  const budgetBinding =
    plannedAt === undefined || ctx.window.open || (nextStart !== undefined && plannedAt.getTime() > nextStart.getTime());
  if (!budgetBinding) {
    const opens = wakeAt === undefined ? 'never opens' : `opens at ${formatTime(wakeAt)}`;
    return {
      state: VolumeStates.PendingGrowth,
      action: NoOp,
      reason: Reasons.OutsideMaintenanceWindow,
      message: `${growth} waits for the maintenance window (${window.describe()}), which ${opens}`,
      wakeAt,
    };
  }
  const when = plannedAt === undefined
    ? `all ${ctx.policy.emergencyGrow.maxActionsPerDay} daily actions are reserved for emergencies`
    : `possible again at ${formatTime(wakeAt ?? plannedAt)}`;
  return {
    state: VolumeStates.PendingGrowth,
    action: NoOp,
    reason: Reasons.PlannedBudgetExhausted,
    message: `${growth} waits for the planned budget: ${budgetUse(ctx)}; ${when}`,
    wakeAt,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Rule 6: nothing to do now.

function steadyState(ctx: Context): Outcome {
  const { current } = ctx;
  const { desired, ceiling } = ctx.targets;
  const fullest = fullestInstance(ctx);
  const level = fullest === undefined ? '' : `instance ${fullest.volume.instance} is ${formatPercent(fullest.usage.percentUsed)} used`;
  if (current > ctx.policy.limit) {
    return steady(VolumeStates.AtLimit, Reasons.OverLimitAfterEmergency, `${formatSize(current)} is above the limit ${formatSize(ctx.policy.limit)} after an emergency grow; ${level}`);
  }
  if (current >= ceiling && desired > current) {
    if (ceiling < ctx.policy.limit) {
      return steady(VolumeStates.AtLimit, Reasons.OnlineGrowthBoundary, `${level}; the target ${formatSize(desired)} is past ${formatSize(ceiling)}, the largest size the provider can grow this disk to while attached`);
    }
    return steady(VolumeStates.AtLimit, Reasons.LimitReached, `${level}; the target ${formatSize(desired)} is above the limit ${formatSize(ctx.policy.limit)}`);
  }
  const missing = ctx.evaluated.filter((entry) => entry.usage.excluded !== undefined);
  if (missing.length > 0) return waitingOutcome(worstExclusion(ctx), describeExclusions(ctx));
  return steady(VolumeStates.Balanced, Reasons.WithinTargetBuffer, `${level}, within the ${ctx.policy.targetBuffer}% target buffer at ${formatSize(current)}`);
}

function steady(state: VolumeState, reason: Reason, message: string): Outcome {
  return { state, action: NoOp, reason, message };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers.

function fullestInstance(ctx: Context): Evaluated | undefined {
  let fullest: Evaluated | undefined;
  for (const entry of ctx.fresh) if (fullest === undefined || entry.usage.percentUsed > fullest.usage.percentUsed) fullest = entry;
  return fullest;
}

/** PVCs that can be expanded: only bound claims may change their request. */
function boundVolumes(ctx: Context): InstanceVolume[] {
  return ctx.input.instances.filter((volume) => volume.capacity !== undefined);
}

/** Every bound PVC below `size` is patched to it, once: one action, one patch per disk. */
function patchesTo(ctx: Context, size: number): PvcPatch[] {
  return boundVolumes(ctx)
    .filter((volume) => volume.requestedSize < size)
    .sort((a, b) => a.pvcName.localeCompare(b.pvcName))
    .map((volume) => ({ instance: volume.instance, pvcName: volume.pvcName, from: volume.requestedSize, to: size }));
}

function budgetUse(ctx: Context): string {
  const { maxActionsPerDay, reservedActionsForEmergency } = ctx.policy.emergencyGrow;
  return `${ctx.budget.actionsLast24h} of ${maxActionsPerDay} actions used in the last 24h, ${reservedActionsForEmergency} reserved for emergencies`;
}

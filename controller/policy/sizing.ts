/**
 * Size arithmetic: what size gives the fullest instance its target buffer, how sizes are rounded for the provider, and
 * the ceilings that planned and emergency growth may not pass. All sizes are PVC bytes unless a name says otherwise.
 */
import { roundUpTo } from '../../shared/quantity.ts';
import { growthWithin } from './predict.ts';
import type { EngineTuning, InstanceUsage, ProviderFacts, VolumePolicy } from './types.ts';

/**
 * Percent kept free by the target. The configured buffer, raised when needed so that a volume at its target sits at
 * least `thresholdMarginPoints` below the critical threshold: otherwise reaching the target would itself be an emergency.
 */
export function effectiveBufferPercent(policy: VolumePolicy, tuning: EngineTuning): number {
  const clearOfThreshold = 100 - policy.emergencyGrow.criticalThreshold + tuning.thresholdMarginPoints;
  return Math.min(95, Math.max(policy.targetBuffer, clearOfThreshold));
}

/** Usable filesystem bytes one instance needs: the buffer on bytes and on inodes, and room above the critical minimum. */
export function requiredUsableBytes(usage: InstanceUsage, policy: VolumePolicy, tuning: EngineTuning): number {
  const keep = 1 - effectiveBufferPercent(policy, tuning) / 100;
  const byBuffer = usage.usedBytes / keep;
  const byMinimumFree = usage.usedBytes + policy.emergencyGrow.criticalMinimumFree * tuning.minimumFreeMarginFactor;
  // ext4 creates inodes in proportion to size, so the inode share shrinks as the filesystem grows.
  const byInodes = usage.inodePercentUsed === undefined ? 0 : (usage.usableBytes * usage.inodePercentUsed) / 100 / keep;
  return Math.max(byBuffer, byMinimumFree, byInodes);
}

/** Filesystem bytes to PVC bytes with the ratio observed on that instance. */
export function pvcBytesFor(usableBytes: number, usage: InstanceUsage): number {
  return usableBytes / (usage.ratio > 0 ? usage.ratio : 1);
}

/**
 * Less than this over a unit is the readings' rounding, not a need: a filesystem's size is whole blocks, so the same usage
 * on a grown disk can ask for a byte more than the size that was bought for it, and must not buy another unit.
 */
const ROUNDING_NOISE_BYTES = 1024;

/** Rounds up to the allocation unit, then to the next billing tier when tiers are known and the tier fits. */
export function roundForProvider(bytes: number, provider: ProviderFacts, ceiling = Number.POSITIVE_INFINITY): number {
  const rounded = roundUpTo(Math.max(0, Math.ceil(bytes - ROUNDING_NOISE_BYTES)), provider.allocationUnit);
  const tier = provider.billingTiers?.find((size) => size >= rounded);
  return tier !== undefined && tier <= ceiling ? tier : rounded;
}

/** Provider limits for a disk currently at `current`: its largest size and the online-growth boundary if below it. */
export function providerCeiling(provider: ProviderFacts, current: number): number {
  let ceiling = provider.maxVolumeSize ?? Number.POSITIVE_INFINITY;
  const boundary = provider.onlineGrowthBoundary;
  if (boundary !== undefined && current <= boundary) ceiling = Math.min(ceiling, boundary);
  return ceiling;
}

/** Highest size planned growth may reach. */
export function plannedCeiling(policy: VolumePolicy, provider: ProviderFacts, current: number): number {
  return Math.min(policy.limit, providerCeiling(provider, current));
}

/** The bounded overshoot above the limit that `exceedLimitOnEmergency` allows: max(10% of limit, 1Gi), rounded up. */
export function overshootBytes(policy: VolumePolicy, provider: ProviderFacts, tuning: EngineTuning): number {
  const raw = Math.max((policy.limit * tuning.overshootPercent) / 100, tuning.overshootMinBytes);
  return roundUpTo(Math.ceil(raw), provider.allocationUnit);
}

/** Highest size an emergency may reach. */
export function emergencyCeiling(policy: VolumePolicy, provider: ProviderFacts, tuning: EngineTuning, current: number): number {
  const userCeiling = policy.emergencyGrow.exceedLimitOnEmergency ? policy.limit + overshootBytes(policy, provider, tuning) : policy.limit;
  return Math.min(userCeiling, providerCeiling(provider, current));
}

/** Smallest planned step: max(5% of current, 1Gi) by default. */
export function minimumStep(current: number, tuning: EngineTuning): number {
  return Math.max((current * tuning.minimumStepPercent) / 100, tuning.minimumStepBytes);
}

/** Smallest emergency step: max(25% of current, 1Gi) by default. */
export function emergencyStepSize(current: number, provider: ProviderFacts, tuning: EngineTuning): number {
  const stepped = current + Math.max((current * tuning.emergencyStepPercent) / 100, tuning.emergencyStepBytes);
  return roundForProvider(stepped, provider);
}

export interface Targets {
  /** Unclamped, rounded: what the usage asks for. */
  desired: number;
  /** Clamped to [request, planned ceiling], never below current. */
  target: number;
  /** The target for the usage expected at the end of the look-ahead: what planned growth sizes for. */
  ahead: number;
  /** How much larger the usage expected at the end of the look-ahead needs the volume to be than today's usage does. */
  expectedGrowth: number;
  ceiling: number;
}

/**
 * Sizes for the current usage and for the usage expected after `lookaheadSeconds` at each instance's long-term growth rate. The
 * expected growth is bounded by `lookaheadMaxGrowth` times the current usage, so a short burst cannot buy a huge disk.
 */
export function computeTargets(
  usages: readonly InstanceUsage[],
  sizing: { policy: VolumePolicy; provider: ProviderFacts; tuning: EngineTuning },
  current: number,
  lookaheadSeconds = 0,
): Targets {
  const { policy, provider, tuning } = sizing;
  const ceiling = plannedCeiling(policy, provider, current);
  const clamp = (needed: number): number => Math.max(current, Math.min(ceiling, Math.max(policy.request, roundForProvider(needed, provider, ceiling))));
  const needFor = (usage: InstanceUsage): number => pvcBytesFor(requiredUsableBytes(usage, policy, tuning), usage);
  const needed = Math.max(0, ...usages.map(needFor));
  const neededAhead = Math.max(0, ...usages.map((usage) => needFor(projectedUsage(usage, lookaheadSeconds, tuning))));
  const expectedGrowth = Math.max(0, roundForProvider(neededAhead, provider) - roundForProvider(needed, provider));
  return { desired: Math.max(roundForProvider(needed, provider), current), target: clamp(needed), ahead: clamp(Math.max(needed, neededAhead)), expectedGrowth, ceiling };
}

/** The instance's usage after `seconds` more of its long-term growth (see `growthWithin`; never less than now). */
export function projectedUsage(usage: InstanceUsage, seconds: number, tuning: EngineTuning): InstanceUsage {
  const expected = growthWithin(usage.longTermGrowth, seconds, tuning.prediction);
  if (expected <= 0) return usage;
  const growth = Math.min(expected, usage.usedBytes * tuning.lookaheadMaxGrowth);
  return { ...usage, usedBytes: usage.usedBytes + growth, availableBytes: Math.max(0, usage.availableBytes - growth) };
}

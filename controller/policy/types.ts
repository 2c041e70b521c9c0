/**
 * Input and output types of the sizing policy engine. The input is fully resolved: sizes are byte counts, defaults are
 * applied, the maintenance window is parsed. The engine never sees a Kubernetes object.
 */
import { GiB } from '../../shared/quantity.ts';
import type { MaintenanceWindow } from './window.ts';

export const VolumeStates = {
  Balanced: 'Balanced',
  NeedsGrow: 'NeedsGrow',
  Emergency: 'Emergency',
  PendingGrowth: 'PendingGrowth',
  Resizing: 'Resizing',
  AtLimit: 'AtLimit',
  WaitingForDiskStatus: 'WaitingForDiskStatus',
} as const;
export type VolumeState = (typeof VolumeStates)[keyof typeof VolumeStates];

export const ActionKinds = { EmergencyGrow: 'EmergencyGrow', ScheduledGrow: 'ScheduledGrow' } as const;
export type ActionKind = (typeof ActionKinds)[keyof typeof ActionKinds];
export const NoOp = 'NoOp' as const;
export type DecisionAction = ActionKind | typeof NoOp;

/**
 * Rejected: the API server refused every patch of the action (admission, a ResourceQuota: 403 or 422), so no disk was
 * touched. Such attempts are not counted in the daily budget; they have their own bound (rejectedRetry*, maxRejectedPerDay).
 */
export const ActionResults = { Success: 'Success', Failed: 'Failed', Pending: 'Pending', Rejected: 'Rejected' } as const;
export type ActionResult = (typeof ActionResults)[keyof typeof ActionResults];

/** Machine-readable reasons. Stable: they appear in status, events and metrics (see docs/sizing-policy.md). */
export const Reasons = {
  WithinTargetBuffer: 'WithinTargetBuffer',
  BelowTargetBuffer: 'BelowTargetBuffer',
  ExpectedGrowth: 'ExpectedGrowth',
  BelowRequest: 'BelowRequest',
  ReplicaBelowEffectiveSize: 'ReplicaBelowEffectiveSize',
  OutsideMaintenanceWindow: 'OutsideMaintenanceWindow',
  PlannedBudgetExhausted: 'PlannedBudgetExhausted',
  CriticalUsage: 'CriticalUsage',
  CriticalInodeUsage: 'CriticalInodeUsage',
  CriticalFreeSpace: 'CriticalFreeSpace',
  PredictedFull: 'PredictedFull',
  PredictedCritical: 'PredictedCritical',
  EmergencyGrowDisabled: 'EmergencyGrowDisabled',
  EmergencyBudgetExhausted: 'EmergencyBudgetExhausted',
  EmergencyAtLimit: 'EmergencyAtLimit',
  EmergencyResizeBlocked: 'EmergencyResizeBlocked',
  LimitReached: 'LimitReached',
  OnlineGrowthBoundary: 'OnlineGrowthBoundary',
  OverLimitAfterEmergency: 'OverLimitAfterEmergency',
  ResizeInProgress: 'ResizeInProgress',
  FilesystemResizePending: 'FilesystemResizePending',
  ResizeFailed: 'ResizeFailed',
  ResizeInfeasible: 'ResizeInfeasible',
  ResizeStuck: 'ResizeStuck',
  NoVolumes: 'NoVolumes',
  DiskStatusMissing: 'DiskStatusMissing',
  DiskStatusStale: 'DiskStatusStale',
  DiskStatusInvalid: 'DiskStatusInvalid',
  DiskStatusPredatesResize: 'DiskStatusPredatesResize',
} as const;
export type Reason = (typeof Reasons)[keyof typeof Reasons];

export interface EmergencyGrowPolicy {
  enabled: boolean;
  /** Percent used (as `df` shows it) at or above which an instance is critical; 80-99. */
  criticalThreshold: number;
  /** Bytes available to PostgreSQL below which an instance is critical. */
  criticalMinimumFree: number;
  exceedLimitOnEmergency: boolean;
  maxActionsPerDay: number;
  reservedActionsForEmergency: number;
}

/** One logical volume's policy (cluster + data | WAL | one tablespace), defaults applied, sizes in bytes. */
export interface VolumePolicy {
  request: number;
  limit: number;
  /** Percent of the usable space to keep free; 5-50. */
  targetBuffer: number;
  maintenanceWindow: MaintenanceWindow;
  emergencyGrow: EmergencyGrowPolicy;
}

/** Defaults of the user-facing fields, as the API declares them. */
export const POLICY_DEFAULTS = {
  targetBuffer: 20,
  emergencyGrow: {
    enabled: true,
    criticalThreshold: 95,
    criticalMinimumFree: '1Gi',
    exceedLimitOnEmergency: false,
    maxActionsPerDay: 4,
    reservedActionsForEmergency: 1,
  },
} as const;

/** One statfs sample of a mounted volume, taken by the node agent. */
export interface DiskReading {
  sampledAt: Date;
  /** f_blocks x f_frsize. */
  totalBytes: number;
  /** f_bfree x f_frsize: free including the blocks reserved for root. */
  freeBytes: number;
  /** f_bavail x f_frsize: free to PostgreSQL. */
  availableBytes: number;
  inodesTotal?: number | undefined;
  inodesFree?: number | undefined;
}

/** Derived from the PVC's resize conditions and `status.allocatedResourceStatuses`. */
export interface ResizeCondition {
  phase: 'InProgress' | 'Failed' | 'Infeasible';
  message?: string | undefined;
}

/** One instance's PVC for this logical volume, with what its disk reported. */
export interface InstanceVolume {
  instance: string;
  pvcName: string;
  /** `spec.resources.requests.storage`. */
  requestedSize: number;
  /** `status.capacity.storage`; undefined while the claim is not bound. */
  capacity: number | undefined;
  resize?: ResizeCondition | undefined;
  reading: DiskReading | undefined;
  /** Recent readings, oldest first (may include `reading`); used for the fill rate. */
  recentReadings: readonly DiskReading[];
  /** Sparse readings over the last days (one every few minutes), oldest first; used for the growth planned growth expects. */
  longTermReadings?: readonly DiskReading[] | undefined;
}

/** One growth step of the logical volume, as recorded in its action history. */
export interface ActionRecord {
  kind: ActionKind;
  from: number;
  to: number;
  timestamp: Date;
  result: ActionResult;
  /** When every PVC reached `to` (for learning how long a resize takes). */
  completedAt?: Date | undefined;
  instance?: string | undefined;
}

/** What the storage provider does with sizes; see the reference's cloud facts. */
export interface ProviderFacts {
  /** Sizes are rounded up to a multiple of this (whole GiB on Azure, EBS and PD). */
  allocationUnit: number;
  /** Billing tiers (ascending byte sizes); when set, a grow rounds up to the next tier, as that size is paid anyway. */
  billingTiers?: readonly number[] | undefined;
  /** A disk at or below this size cannot grow past it while attached (Azure Premium SSD v1 and Standard: 4 TiB). */
  onlineGrowthBoundary?: number | undefined;
  /** Largest disk the provider offers. */
  maxVolumeSize?: number | undefined;
}

export const DEFAULT_PROVIDER: ProviderFacts = { allocationUnit: GiB };

/** Engine constants that are not user fields. Each default is justified in docs/sizing-policy.md. */
export interface EngineTuning {
  minimumStepPercent: number;
  minimumStepBytes: number;
  /** Largest growth of a single resize (growth.maximumStep); undefined for no bound. Further steps follow, budget allowing. */
  maximumStepBytes?: number | undefined;
  emergencyStepPercent: number;
  emergencyStepBytes: number;
  /** The target keeps usage at least this many points below the critical threshold. */
  thresholdMarginPoints: number;
  /** The target keeps at least this multiple of criticalMinimumFree available. */
  minimumFreeMarginFactor: number;
  maxReadingAgeMs: number;
  overshootPercent: number;
  overshootMinBytes: number;
  resizeStuckAfterMs: number;
  /**
   * After a grow whose patch was rejected (quota, admission), wait this long before patching again, doubling with each
   * further rejection up to `rejectedRetryMaxMs`: the same patch a moment later is rejected the same way.
   */
  rejectedRetryMs: number;
  rejectedRetryMaxMs: number;
  /**
   * Rejected attempts (result Rejected) allowed in any 24 h. They are not counted in the daily budget (no disk was
   * touched, and an emergency must still find its reserve once the quota is raised), so they have their own bound.
   */
  maxRejectedPerDay: number;
  /** Planned growth sizes for the usage expected until the next chance to grow, at most this many times today's usage more. */
  lookaheadMaxGrowth: number;
  /** The long-term growth rate needs readings spanning at least this long. */
  growthRateMinSpanMs: number;
  prediction: PredictionTuning;
}

export interface PredictionTuning {
  enabled: boolean;
  lookbackMs: number;
  minReadings: number;
  minSpanMs: number;
  /** The recent rate, over at least this span, replaces the fitted one when growth has slowed to less than half of it. */
  recentSpanMs: number;
  /** An interval holding more than this share of the window's growth, with calm intervals beside it, is a completed step. */
  stepShare: number;
  /** A run of growth is a step when it is more than stepContrast times faster than the series' typical rate. */
  stepContrast: number;
  /** A run of growing readings is taken for a burst once it spans at least this long. */
  burstMinSpanMs: number;
  /** Growth lasting longer than this is a trend, never a step, however fast. */
  stepMaxDurationMs: number;
  /** The long-term growth rate also looks at the last this-many hours, so that growth begun hours ago counts. */
  recentGrowthSpanMs: number;
  defaultResizeLatencyMs: number;
  minResizeLatencyMs: number;
  maxResizeLatencyMs: number;
  latencySamples: number;
  /** Act when the projected time to the critical threshold (or to full) is below this multiple of the resize latency. */
  safetyFactor: number;
}

const MINUTE = 60_000;

export const DEFAULT_TUNING: EngineTuning = {
  minimumStepPercent: 5,
  minimumStepBytes: GiB,
  emergencyStepPercent: 25,
  emergencyStepBytes: GiB,
  thresholdMarginPoints: 5,
  minimumFreeMarginFactor: 2,
  maxReadingAgeMs: 2 * MINUTE,
  overshootPercent: 10,
  overshootMinBytes: GiB,
  resizeStuckAfterMs: 30 * MINUTE,
  rejectedRetryMs: 5 * MINUTE,
  rejectedRetryMaxMs: 60 * MINUTE,
  maxRejectedPerDay: 6,
  lookaheadMaxGrowth: 1,
  growthRateMinSpanMs: 6 * 60 * MINUTE,
  prediction: {
    enabled: true,
    lookbackMs: 10 * MINUTE,
    minReadings: 3,
    minSpanMs: MINUTE,
    recentSpanMs: 30_000,
    stepShare: 2 / 3,
    stepContrast: 4,
    burstMinSpanMs: 5_000,
    stepMaxDurationMs: 60 * MINUTE,
    recentGrowthSpanMs: 3 * 60 * MINUTE,
    defaultResizeLatencyMs: 5 * MINUTE,
    minResizeLatencyMs: MINUTE,
    maxResizeLatencyMs: 60 * MINUTE,
    latencySamples: 5,
    safetyFactor: 2,
  },
};

export interface DecisionInput {
  /** Label used in messages, e.g. `data`, `wal`, `tablespace app`. */
  volume: string;
  policy: VolumePolicy;
  instances: readonly InstanceVolume[];
  history: readonly ActionRecord[];
  provider?: ProviderFacts | undefined;
  tuning?: EngineTuning | undefined;
}

export interface PvcPatch {
  instance: string;
  pvcName: string;
  from: number;
  to: number;
}

export interface BudgetStatus {
  actionsLast24h: number;
  availableForPlanned: number;
  availableForEmergency: number;
  /** Oldest counted action + 24 h; undefined when nothing is counted. */
  budgetResetsAt: Date | undefined;
}

export interface WindowStatus {
  open: boolean;
  /** When the open window closes. */
  closesAt: Date | undefined;
  /** Next start strictly after now (undefined when always open). */
  nextStart: Date | undefined;
}

/** Long-term growth in bytes per second, in the parts a projection treats differently. */
export interface LongTermGrowth {
  /** How fast the volume typically grows: projected over any horizon. */
  typical: number;
  /** How much faster the last hours grow (never negative): projected for at most the hours it was measured over. */
  recentExcess: number;
}

export interface InstanceUsage {
  instance: string;
  pvcName: string;
  /** Why the instance's reading was not used; undefined when it was. */
  excluded: Reason | undefined;
  usedBytes: number;
  usableBytes: number;
  availableBytes: number;
  percentUsed: number;
  inodePercentUsed: number | undefined;
  /** Bytes per second, from recent readings; undefined when there are too few. */
  fillRate: number | undefined;
  /**
   * Growth over the last days, from the long-term readings, in the parts that are projected differently (see
   * `growthWithin`; `rateOf` gives the rate now); undefined when they span too little time.
   */
  longTermGrowth: LongTermGrowth | undefined;
  /** Usable filesystem bytes per PVC byte. */
  ratio: number;
}

export interface Decision {
  state: VolumeState;
  action: DecisionAction;
  reason: Reason;
  message: string;
  /** Largest requested size among the volume's PVCs. */
  currentSize: number;
  /** Size that gives the fullest instance the target buffer, rounded, clamped to [request, limit], never below current. */
  targetSize: number;
  /** The same before clamping to the limit (how much the usage asks for). */
  desiredSize: number;
  /** Size every PVC is patched to when action is not NoOp. */
  newSize: number | undefined;
  patches: readonly PvcPatch[];
  /** Earliest time the decision can change with unchanged input (window opening, budget refill). */
  wakeAt: Date | undefined;
  budget: BudgetStatus;
  window: WindowStatus;
  instances: readonly InstanceUsage[];
}

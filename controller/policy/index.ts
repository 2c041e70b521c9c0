/** Sizing policy engine: pure decisions about one logical volume's size. See docs/sizing-policy.md. */
export * from './types.ts';
export { decide } from './decide.ts';
export {
  MAINTENANCE_WINDOW_DEFAULTS,
  WindowErrorCodes,
  alwaysOpenWindow,
  formatDuration,
  parseDuration,
  parseMaintenanceWindow,
  validateMaintenanceWindow,
  type MaintenanceWindow,
  type MaintenanceWindowSpec,
  type WindowErrorCode,
} from './window.ts';
export { BUDGET_WINDOW_MS, countedActions, evaluateBudget, type BudgetLimits, type BudgetView } from './budget.ts';
export { isPlausibleReading, usageOf, type Usage } from './usage.ts';
export {
  computeTargets,
  effectiveBufferPercent,
  emergencyCeiling,
  minimumStep,
  overshootBytes,
  plannedCeiling,
  roundForProvider,
  type Targets,
} from './sizing.ts';
export { fillRate, growthWithin, longTermGrowth, rateEvidenceSince, resizeLatencyMs, secondsToUse } from './predict.ts';
export { replay, usageAt, type ReplayOptions, type ReplayReport, type ReplayResize, type UsagePoint } from './replay.ts';
export { LONG_TERM_HISTORY, RECENT_HISTORY, keepSampled, type ReadingHistoryOptions } from './history.ts';

/**
 * The daily resize budget: a rolling 24 h window over the recorded actions of one logical volume. Every recorded action
 * counts, whatever its result (a failed attempt may still have modified some disks, and providers count modifications),
 * except a Rejected one: the API server refused every patch, no disk was touched, and counting it would let a quota or
 * an admission policy spend the emergency reserve. Rejected attempts have their own bound (see rejectedAttempts).
 */
import type { ActionRecord, BudgetStatus } from './types.ts';

export const BUDGET_WINDOW_MS = 24 * 60 * 60 * 1000;

export interface BudgetLimits {
  maxActionsPerDay: number;
  reservedActionsForEmergency: number;
}

export interface BudgetView extends BudgetStatus {
  /** When a planned action becomes possible: now if possible now, undefined if never (all actions reserved). */
  plannedAvailableAt: Date | undefined;
  /** When an emergency action becomes possible: now if possible now, undefined if maxActionsPerDay is 0. */
  emergencyAvailableAt: Date | undefined;
}

/** Actions counted at `now`: those in the half-open window (now - 24 h, now], plus any recorded in the future. */
export function countedActions(history: readonly ActionRecord[], now: Date): number[] {
  const since = now.getTime() - BUDGET_WINDOW_MS;
  return history.filter((action) => action.result !== 'Rejected').map((action) => action.timestamp.getTime()).filter((t) => t > since).sort((a, b) => a - b);
}

/** Rejected attempts in the same window, oldest first (their own bound, not the budget). */
export function rejectedAttempts(history: readonly ActionRecord[], now: Date): number[] {
  const since = now.getTime() - BUDGET_WINDOW_MS;
  return history.filter((action) => action.result === 'Rejected').map((action) => action.timestamp.getTime()).filter((t) => t > since).sort((a, b) => a - b);
}

/** When another rejected attempt is allowed: now when fewer than `max` are in the window, else when the oldest leaves it. */
export function rejectedAttemptAllowedAt(history: readonly ActionRecord[], max: number, now: Date): Date {
  const rejected = rejectedAttempts(history, now);
  if (rejected.length < max) return now;
  const decisive = rejected[rejected.length - max];
  return decisive === undefined ? now : new Date(Math.max(now.getTime(), decisive + BUDGET_WINDOW_MS));
}

export function evaluateBudget(history: readonly ActionRecord[], limits: BudgetLimits, now: Date): BudgetView {
  const counted = countedActions(history, now);
  const max = Math.max(0, limits.maxActionsPerDay);
  const plannedAllowance = Math.max(0, max - Math.max(0, limits.reservedActionsForEmergency));
  const oldest = counted[0];
  return {
    actionsLast24h: counted.length,
    availableForPlanned: Math.max(0, plannedAllowance - counted.length),
    availableForEmergency: Math.max(0, max - counted.length),
    budgetResetsAt: oldest === undefined ? undefined : new Date(oldest + BUDGET_WINDOW_MS),
    plannedAvailableAt: availableAt(counted, plannedAllowance, now),
    emergencyAvailableAt: availableAt(counted, max, now),
  };
}

/** First time at which fewer than `allowance` actions are counted (each counted action expires 24 h after it). */
function availableAt(counted: readonly number[], allowance: number, now: Date): Date | undefined {
  if (allowance <= 0) return undefined;
  if (counted.length < allowance) return now;
  // counted.length - allowance + 1 of the oldest actions must expire; the last of them decides.
  const decisive = counted[counted.length - allowance];
  return decisive === undefined ? now : new Date(Math.max(now.getTime(), decisive + BUDGET_WINDOW_MS));
}

/** metav1.Condition handling: pure, with the time as an argument. */
import { rfc3339 } from '../../shared/time.ts';

/** The condition types the product writes: `Valid` on a DynamicStorage, `DynamicStorageReady` on a CNPG Cluster. */
export const ConditionTypes = {
  Valid: 'Valid',
  DynamicStorageReady: 'DynamicStorageReady',
} as const;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number | undefined;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/**
 * Returns the conditions with `next` set: the transition time changes only when the status does, so that "since when"
 * stays meaningful across reconciles.
 */
export function setCondition(conditions: readonly Condition[], next: ConditionInput, now: Date): Condition[] {
  const existing = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = existing && existing.status === next.status ? existing.lastTransitionTime : rfc3339(now);
  const updated: Condition = { ...next, lastTransitionTime };
  const others = conditions.filter((c) => c.type !== next.type);
  return [...others, updated].sort((a, b) => a.type.localeCompare(b.type));
}

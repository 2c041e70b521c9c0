/**
 * What the validating webhook refuses, from the same checks as `kubectl cnpg storage validate` (validateDynamicStorage,
 * without a Cluster: at admission the Cluster may not exist yet, and its sizes change under the policy).
 *
 * Only the checks the API server cannot make are refused here (the maintenance window's cron schedule and time zone):
 * the OpenAPI schema and CEL rules have already been enforced by the API server before a validating webhook is called,
 * so a difference between their reproduction here and the API server would be a bug of ours, and must not lock users out
 * of their own policy.
 *
 * On an update, only new problems are refused (as Kubernetes ratchets CEL rules): a policy stored before the webhook was
 * installed can still be edited (its limit raised in an incident) before its window is fixed.
 */
import { validateDynamicStorage } from './validate.ts';
import { renderProblemsMessage, ValidationCodes, type ValidationProblem } from './problems.ts';

const admissionCodes: ReadonlySet<string> = new Set<string>([ValidationCodes.InvalidSchedule, ValidationCodes.InvalidTimeZone]);

export interface AdmissionVerdict {
  allowed: boolean;
  /** The problems refused, in the offline command's order and words. */
  problems: ValidationProblem[];
  /** One message listing them, as the Valid condition words it; empty when allowed. */
  message: string;
}

const key = (p: ValidationProblem): string => `${p.field}\u0000${p.code}\u0000${p.message}`;

/** Pure: whether a DynamicStorage may be created (no `oldObject`) or updated from `oldObject`. */
export function admitDynamicStorage(object: unknown, oldObject?: unknown): AdmissionVerdict {
  const refusedProblems = (candidate: unknown): ValidationProblem[] => validateDynamicStorage(candidate).filter((p) => admissionCodes.has(p.code));
  const known = new Set(oldObject === undefined ? [] : refusedProblems(oldObject).map(key));
  const problems = refusedProblems(object).filter((p) => !known.has(key(p)));
  return { allowed: problems.length === 0, problems, message: problems.length === 0 ? '' : renderProblemsMessage(problems) };
}

/**
 * Validation problems: a field path, a stable code and a message worded as kube-apiserver words its field errors
 * (`spec.storage.limit: Required value: ...`), so that the offline command, the Valid condition and `kubectl apply`
 * say the same thing about the same mistake.
 */
import { ConditionTypes } from '../kube/conditions.ts';

/** Stable codes. They appear in conditions, events and the offline command's JSON output: never change one. */
export const ValidationCodes = {
  // What the OpenAPI schema checks.
  RequiredField: 'RequiredField',
  InvalidType: 'InvalidType',
  OutOfRange: 'OutOfRange',
  TooShort: 'TooShort',
  TooLong: 'TooLong',
  TooMany: 'TooMany',
  UnsupportedValue: 'UnsupportedValue',
  DuplicateName: 'DuplicateName',
  UnknownField: 'UnknownField',
  ValidationIncomplete: 'ValidationIncomplete',
  // What the CEL rules check.
  RequestAndLimitRequired: 'RequestAndLimitRequired',
  SizeNotAllowed: 'SizeNotAllowed',
  RequestAboveLimit: 'RequestAboveLimit',
  CriticalMinimumFreeNotBelowLimit: 'CriticalMinimumFreeNotBelowLimit',
  ReservedActionsAboveMaximum: 'ReservedActionsAboveMaximum',
  MinimumStepAboveMaximumStep: 'MinimumStepAboveMaximumStep',
  InvalidQuantity: 'InvalidQuantity',
  QuantityOutOfRange: 'QuantityOutOfRange',
  InvalidDuration: 'InvalidDuration',
  NoVolumeRole: 'NoVolumeRole',
  ClusterNameImmutable: 'ClusterNameImmutable',
  // What only the controller (and the offline command) can check.
  InvalidSchedule: 'InvalidSchedule',
  InvalidTimeZone: 'InvalidTimeZone',
  ClusterNotFound: 'ClusterNotFound',
  TablespaceNotFound: 'TablespaceNotFound',
  WalStorageNotConfigured: 'WalStorageNotConfigured',
  ClusterSizeBelowRequest: 'ClusterSizeBelowRequest',
  ClusterSizeAboveLimit: 'ClusterSizeAboveLimit',
  ClusterAlreadyManaged: 'ClusterAlreadyManaged',
} as const;
export type ValidationCode = (typeof ValidationCodes)[keyof typeof ValidationCodes];

/** kube-apiserver's field error types (k8s.io/apimachinery/pkg/util/validation/field), plus an unknown field. */
export type FieldErrorType =
  | 'Required value'
  | 'Invalid value'
  | 'Unsupported value'
  | 'Too long'
  | 'Too many'
  | 'Duplicate value'
  | 'Forbidden'
  | 'Not found'
  | 'Unknown field';

export interface ValidationProblem {
  /** Path of the offending field, `spec.storage.limit`; empty for the object as a whole. */
  readonly field: string;
  readonly code: ValidationCode;
  readonly type: FieldErrorType;
  /** The message after `<field>: `, exactly as kube-apiserver prints it for the same error. */
  readonly message: string;
}

/** A value rendered as kube-apiserver renders it in a field error (Go's %q for strings, JSON for objects). */
export function renderValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** The marker for "do not print a value", as field.OmitValueType does in Go. */
export const omitValue: unique symbol = Symbol('omitValue');

export function fieldErrorMessage(type: FieldErrorType, value: unknown, detail = ''): string {
  const bodyWithoutValue = type === 'Required value' || type === 'Forbidden' || type === 'Too long' || value === omitValue;
  const body = bodyWithoutValue ? type : `${type}: ${renderValue(value)}`;
  return detail === '' ? body : `${body}: ${detail}`;
}

export function problem(field: string, code: ValidationCode, type: FieldErrorType, value: unknown, detail = ''): ValidationProblem {
  return { field, code, type, message: fieldErrorMessage(type, value, detail) };
}

/** One line per problem, `<field>: <message>`, as kubectl prints the API server's causes. */
export function formatProblem(p: ValidationProblem): string {
  if (p.type === 'Unknown field') return `unknown field "${p.field}"`;
  return `${p.field === '' ? '<nil>' : p.field}: ${p.message}`;
}

/** Deterministic order: by field path, then code, then message. */
export function sortProblems(problems: readonly ValidationProblem[]): ValidationProblem[] {
  const key = (p: ValidationProblem): string => `${p.field}\u0000${p.code}\u0000${p.message}`;
  return [...problems].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** metav1.Condition's message limit. */
export const maxConditionMessageLength = 32768;

/**
 * All problems in ONE message for the Valid condition and its Warning event, in a deterministic order so that an
 * unchanged policy never produces a different message (which would rewrite the status and repeat the event).
 */
export function renderProblemsMessage(problems: readonly ValidationProblem[], maxLength = maxConditionMessageLength): string {
  if (problems.length === 0) return 'the policy passed every check';
  const lines = sortProblems(problems).map(formatProblem);
  const prefix = lines.length === 1 ? '' : `${lines.length} problems: `;
  let message = prefix + lines.join('; ');
  if (message.length <= maxLength) return message;
  // Keep whole problems and say how many were left out.
  message = prefix;
  for (const [index, line] of lines.entries()) {
    const rest = `; and ${lines.length - index} more`;
    const next = index === 0 ? line : `; ${line}`;
    if (message.length + next.length + rest.length > maxLength) return `${message}${index === 0 ? rest.slice(2) : rest}`;
    message += next;
  }
  return message;
}

export const validConditionType = ConditionTypes.Valid;
export const validReason = 'Valid';
export const invalidPolicyReason = 'InvalidPolicy';

/** The Valid condition (without lastTransitionTime, which the status writer keeps) for a set of problems. */
export interface ValidConditionFields {
  type: typeof validConditionType;
  status: 'True' | 'False';
  reason: string;
  message: string;
  observedGeneration?: number;
}

/** Reason: the problems' code when they share one (e.g. ClusterNotFound), InvalidPolicy when they differ. */
export function validCondition(problems: readonly ValidationProblem[], observedGeneration?: number): ValidConditionFields {
  const codes = new Set(problems.map((p) => p.code));
  const [onlyCode] = codes;
  const reason = problems.length === 0 ? validReason : codes.size === 1 && onlyCode !== undefined ? onlyCode : invalidPolicyReason;
  return {
    type: validConditionType,
    status: problems.length === 0 ? 'True' : 'False',
    reason,
    message: renderProblemsMessage(problems),
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
  };
}

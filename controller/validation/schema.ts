/**
 * What kube-apiserver does with a custom object before storing it, done offline from the CRD's own schema: drop nulls,
 * fill in defaults, check types, required fields, enums, ranges, lengths and list keys, then evaluate the CEL rules
 * (see cel-rules.ts). Messages are worded as the API server words them; see problems.ts.
 *
 * Like the API server, CEL rules are skipped when a "blocking" error was found (wrong type, missing required field,
 * unsupported enum value, too long, too many), because the rules could not be evaluated on such an object.
 */
import type { CelValidationRule, JsonSchema } from '../../shared/api/json-schema.ts';
import { celRuleImplementations } from './cel-rules.ts';
import { omitValue, problem, ValidationCodes, type FieldErrorType, type ValidationProblem } from './problems.ts';
import { isObject } from '../../shared/objects.ts';

type Json = Record<string, unknown>;

const additionalSchema = (schema: JsonSchema): JsonSchema | undefined =>
  typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;

/** A deep copy of `value` with nulls dropped and the schema's defaults filled in, as the API server stores it. */
export function applySchemaDefaults(value: unknown, schema: JsonSchema): unknown {
  if (Array.isArray(value)) {
    const items = schema.items;
    return value.map((item: unknown) => (items ? applySchemaDefaults(item, items) : structuredClone(item)));
  }
  if (!isObject(value)) return structuredClone(value);
  const result: Json = {};
  for (const [key, child] of Object.entries(value)) {
    if (child === null && !(schema.properties?.[key]?.nullable ?? false)) continue;
    const childSchema = schema.properties?.[key] ?? additionalSchema(schema);
    result[key] = childSchema ? applySchemaDefaults(child, childSchema) : structuredClone(child);
  }
  for (const [key, propertySchema] of Object.entries(schema.properties ?? {})) {
    if (result[key] === undefined && propertySchema.default !== undefined) {
      result[key] = applySchemaDefaults(structuredClone(propertySchema.default), propertySchema);
    }
  }
  return result;
}

interface PendingRule {
  rule: CelValidationRule;
  self: unknown;
  oldSelf: unknown;
  path: string;
}

interface WalkState {
  problems: ValidationProblem[];
  blocking: boolean;
  rules: PendingRule[];
}

const blockingTypes = new Set<FieldErrorType>(['Required value', 'Unsupported value', 'Too long', 'Too many']);

function report(state: WalkState, p: ValidationProblem, blocking = blockingTypes.has(p.type)): void {
  state.problems.push(p);
  if (blocking) state.blocking = true;
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(value: unknown, expected: JsonSchema['type']): boolean {
  const actual = jsonTypeOf(value);
  return expected === undefined || actual === expected || (expected === 'number' && actual === 'integer');
}

const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

function checkScalar(value: unknown, schema: JsonSchema, path: string, state: WalkState): void {
  if (schema.enum && !schema.enum.includes(value)) {
    const supported = schema.enum.map((v) => JSON.stringify(v)).join(', ');
    report(state, problem(path, ValidationCodes.UnsupportedValue, 'Unsupported value', value, `supported values: ${supported}`));
  }
  if (typeof value === 'string') {
    // Code points, as kube-openapi counts (utf8.RuneCountInString).
    const length = Array.from(value).length;
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      report(state, problem(path, ValidationCodes.TooLong, 'Too long', value, `may not be more than ${schema.maxLength} bytes`));
    }
    if (schema.minLength !== undefined && length < schema.minLength) {
      report(state, problem(path, ValidationCodes.TooShort, 'Invalid value', value, `${path} in body should be at least ${schema.minLength} chars long`));
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
      report(state, problem(path, ValidationCodes.InvalidType, 'Invalid value', value, `${path} in body should match '${schema.pattern}'`));
    }
  }
  if (typeof value === 'number') {
    if (schema.maximum !== undefined && value > schema.maximum) {
      report(state, problem(path, ValidationCodes.OutOfRange, 'Invalid value', value, `${path} in body should be less than or equal to ${schema.maximum}`));
    }
    if (schema.minimum !== undefined && value < schema.minimum) {
      report(state, problem(path, ValidationCodes.OutOfRange, 'Invalid value', value, `${path} in body should be greater than or equal to ${schema.minimum}`));
    }
  }
}

function checkListMapKeys(items: readonly unknown[], schema: JsonSchema, path: string, state: WalkState): void {
  const keys = schema['x-kubernetes-list-map-keys'] ?? [];
  if (schema['x-kubernetes-list-type'] !== 'map' || keys.length === 0) return;
  const seen = new Set<string>();
  for (const [index, item] of items.entries()) {
    if (!isObject(item)) continue;
    const identity: Json = Object.fromEntries(keys.map((key) => [key, item[key]]));
    const id = JSON.stringify(identity);
    if (seen.has(id)) report(state, problem(`${path}[${index}]`, ValidationCodes.DuplicateName, 'Duplicate value', identity));
    seen.add(id);
  }
}

function walkObject(value: Json, schema: JsonSchema, path: string, oldValue: unknown, state: WalkState): void {
  for (const key of schema.required ?? []) {
    if (value[key] === undefined) report(state, problem(join(path, key), ValidationCodes.RequiredField, 'Required value', omitValue));
  }
  const additional = additionalSchema(schema);
  if (schema.maxProperties !== undefined && Object.keys(value).length > schema.maxProperties) {
    report(state, problem(path, ValidationCodes.TooMany, 'Too many', Object.keys(value).length, `must have at most ${schema.maxProperties} items`));
  }
  const old = isObject(oldValue) ? oldValue : {};
  for (const [key, child] of Object.entries(value)) {
    const childSchema = schema.properties?.[key];
    if (childSchema) walk(child, childSchema, join(path, key), old[key], state);
    else if (additional) walk(child, additional, `${path}[${key}]`, old[key], state);
    else report(state, problem(join(path, key), ValidationCodes.UnknownField, 'Unknown field', omitValue, 'field not declared in schema'), false);
  }
}

function walk(value: unknown, schema: JsonSchema, path: string, oldValue: unknown, state: WalkState): void {
  if (!typeMatches(value, schema.type)) {
    const actual = jsonTypeOf(value);
    report(state, problem(path, ValidationCodes.InvalidType, 'Invalid value', actual, `${path} in body must be of type ${String(schema.type)}: ${JSON.stringify(actual)}`), true);
    return;
  }
  if (isObject(value)) {
    walkObject(value, schema, path, oldValue, state);
  } else if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      report(state, problem(path, ValidationCodes.TooMany, 'Too many', value.length, `must have at most ${schema.maxItems} items`));
    }
    const items = schema.items;
    if (items) for (const [index, item] of value.entries()) walk(item, items, `${path}[${index}]`, undefined, state);
    checkListMapKeys(value, schema, path, state);
  } else {
    checkScalar(value, schema, path, state);
  }
  for (const rule of schema['x-kubernetes-validations'] ?? []) state.rules.push({ rule, self: value, oldSelf: oldValue, path });
}

const reasonTypes: Record<string, FieldErrorType> = {
  FieldValueRequired: 'Required value',
  FieldValueForbidden: 'Forbidden',
  FieldValueDuplicate: 'Duplicate value',
  FieldValueInvalid: 'Invalid value',
};

export class MissingCelImplementationError extends Error {
  readonly code = 'MissingCelImplementation';
}

function evaluateRule({ rule, self, oldSelf, path }: PendingRule): ValidationProblem | undefined {
  const implementation = celRuleImplementations[rule.rule];
  if (!implementation) throw new MissingCelImplementationError(`no TypeScript implementation of the CEL rule at ${path}: ${rule.rule}`);
  if (implementation.transition === true && oldSelf === undefined) return undefined;
  if (implementation.holds(self, oldSelf)) return undefined;
  const field = rule.fieldPath === undefined ? path : join(path, rule.fieldPath.replace(/^\./, ''));
  const type = reasonTypes[rule.reason ?? 'FieldValueInvalid'] ?? 'Invalid value';
  // The API server prints the value only for a rule on a scalar without fieldPath.
  const scalar = typeof self !== 'object' || self === null;
  const value = rule.fieldPath === undefined && scalar ? self : omitValue;
  const message = implementation.message ? implementation.message(self) : rule.message ?? `failed rule: ${rule.rule}`;
  return problem(field, implementation.code, type, value, message);
}

export const incompleteValidationMessage =
  'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation';

/**
 * Every problem the API server would report for `value` (already defaulted) against `schema`, plus unknown fields
 * (which the API server drops, or rejects under strict field validation). `oldValue` enables transition rules.
 */
export function validateAgainstSchema(value: unknown, schema: JsonSchema, path = '', oldValue?: unknown): ValidationProblem[] {
  const state: WalkState = { problems: [], blocking: false, rules: [] };
  walk(value, schema, path, oldValue, state);
  if (state.blocking) {
    if (state.rules.length > 0) state.problems.push(problem('', ValidationCodes.ValidationIncomplete, 'Invalid value', null, incompleteValidationMessage));
    return state.problems;
  }
  for (const pending of state.rules) {
    const failed = evaluateRule(pending);
    if (failed) state.problems.push(failed);
  }
  return state.problems;
}

/** Every CEL rule text in a schema, for checking that each has an implementation. */
export function celRulesOf(schema: JsonSchema): string[] {
  const rules = new Set<string>();
  const visit = (s: JsonSchema): void => {
    for (const rule of s['x-kubernetes-validations'] ?? []) rules.add(rule.rule);
    for (const child of Object.values(s.properties ?? {})) visit(child);
    if (s.items) visit(s.items);
    const additional = additionalSchema(s);
    if (additional) visit(additional);
  };
  visit(schema);
  return [...rules];
}

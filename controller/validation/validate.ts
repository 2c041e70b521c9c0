/**
 * validateDynamicStorage: every problem with a DynamicStorage object at once, from three sources.
 *
 * 1. What the API server checks at admission (OpenAPI schema and CEL rules), reproduced from the CRD's schema.
 * 2. What CEL cannot check: the maintenance window's cron schedule and IANA time zone.
 * 3. With a Cluster in the context: the Cluster exists, has WAL storage and the tablespaces named, and its own sizes lie
 *    within [request, limit].
 *
 * Pure: no clock, no client, no environment. The controller turns the result into the Valid condition (validCondition)
 * and the offline command prints it.
 */
import { untypedVolumeSlots, type UntypedVolumeSlot } from '../../shared/cnpg.ts';
import { dynamicStorageOpenApiSchema } from '../../shared/api/dynamicstorage.schema.generated.ts';
import { validateMaintenanceWindow } from '../policy/window.ts';
import { checkAgainstCluster, type CnpgCluster } from './cluster.ts';
import { omitValue, problem, sortProblems, ValidationCodes, type ValidationProblem } from './problems.ts';
import { applySchemaDefaults, validateAgainstSchema } from './schema.ts';
import { isObject } from '../../shared/objects.ts';

type Json = Record<string, unknown>;

export interface ValidationContext {
  /**
   * The CNPG Cluster named by spec.cluster.name: an object to check the policy against, `null` when it does not exist,
   * left out to skip these checks (the offline command without the Cluster at hand).
   */
  cluster?: CnpgCluster | null;
  /** The stored object on an update, so that the immutability of spec.cluster.name is checked. */
  oldObject?: unknown;
}

/** The object as the API server stores it: nulls dropped, defaults filled in from the CRD's schema. */
export function withDefaults(object: unknown): unknown {
  return applySchemaDefaults(object, dynamicStorageOpenApiSchema);
}

const windowCodes = new Set<string>([ValidationCodes.InvalidSchedule, ValidationCodes.InvalidTimeZone]);

/** Cron schedule and time zone of every maintenance window (the duration is a CEL rule, checked with the schema). */
function checkMaintenanceWindows(slots: readonly UntypedVolumeSlot[]): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  for (const { field: path, policy } of slots) {
    const window = policy.maintenanceWindow;
    if (!isObject(window)) continue;
    const schedule = typeof window.schedule === 'string' ? window.schedule : undefined;
    const timezone = typeof window.timezone === 'string' ? window.timezone : undefined;
    const field = `${path}.maintenanceWindow`;
    for (const error of validateMaintenanceWindow({ schedule, timezone }, field)) {
      if (!windowCodes.has(error.code)) continue;
      const detail = error.message.startsWith(`${error.field}: `) ? error.message.slice(error.field.length + 2) : error.message;
      const code = error.code === ValidationCodes.InvalidSchedule ? ValidationCodes.InvalidSchedule : ValidationCodes.InvalidTimeZone;
      problems.push(problem(error.field, code, 'Invalid value', omitValue, detail));
    }
  }
  return problems;
}

/** Every problem with `object` (a DynamicStorage as written or as stored), in a deterministic order; empty when valid. */
export function validateDynamicStorage(object: unknown, context: ValidationContext = {}): ValidationProblem[] {
  if (!isObject(object)) {
    return [problem('', ValidationCodes.InvalidType, 'Invalid value', omitValue, 'a DynamicStorage must be an object')];
  }
  // metadata is checked by the API server's own rules and status is written by the controller: neither is policy (and
  // status, the larger part, is not copied through the defaults).
  const defaulted = withDefaults(withoutStatus(object)) as Json;
  const { metadata: _metadata, ...policy } = defaulted;
  const old = isObject(context.oldObject) ? (withDefaults(withoutStatus(context.oldObject)) as Json) : undefined;
  const problems = validateAgainstSchema(policy, dynamicStorageOpenApiSchema, '', old);
  const slots = untypedVolumeSlots(defaulted.spec);
  problems.push(...checkMaintenanceWindows(slots));
  if (context.cluster !== undefined && isObject(defaulted.spec)) {
    problems.push(...checkAgainstCluster(defaulted.spec, slots, context.cluster, namespaceOf(defaulted)));
  }
  return sortProblems(problems);
}

function withoutStatus(object: Json): Json {
  const { status: _status, ...rest } = object;
  return rest;
}

function namespaceOf(object: Json): string {
  const metadata = object.metadata;
  return isObject(metadata) && typeof metadata.namespace === 'string' ? metadata.namespace : 'default';
}

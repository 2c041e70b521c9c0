/**
 * The action history the daily budget counts, read defensively. It lives in two places: the DynamicStorage status (the
 * whole record: results, completion times, messages) and an annotation the controller writes on every PVC it patches,
 * in the same patch as the new size. The annotation survives a deleted and re-created DynamicStorage, so a fresh object
 * does not mean a fresh budget. Both are validated when read: an entry that is unparsable or dated in the future is
 * reported and dropped, never thrown, and never allowed to block growth for ever. Pure.
 */
import type * as k8s from '@kubernetes/client-node';
import type { SizingAction } from '../shared/api/dynamicstorage.generated.ts';
import { errorMessage } from '../shared/errors.ts';
import { formatQuantity, parseQuantity } from '../shared/quantity.ts';
import { rfc3339 } from '../shared/time.ts';
import { ActionKinds, ActionResults, BUDGET_WINDOW_MS, type ActionKind, type ActionRecord, type ActionResult } from './policy/index.ts';

/** On each PVC the controller patched: the volume's recent actions, as JSON (see encodeActionsAnnotation). */
export const actionsAnnotation = 'dynamicstorage.cnpg.io/actions';

/** Clocks drift: an action up to this far ahead of the controller's clock is still believed. */
export const FUTURE_SKEW_MS = 5 * 60_000;

/** At most this many actions in the annotation: the budget admits at most 50 a day (maxActionsPerDay's maximum). */
export const MAX_ANNOTATED_ACTIONS = 50;

/** Longer annotations are not read at all (50 entries take about 4 KiB). */
export const MAX_ANNOTATION_BYTES = 8 * 1024;

export interface HistoryRead {
  records: ActionRecord[];
  /** One line per dropped entry: where, and why. */
  problems: string[];
}

const kinds: readonly string[] = Object.values(ActionKinds);
const results: readonly string[] = Object.values(ActionResults);

function time(text: unknown, field: string): Date {
  if (typeof text !== 'string') throw new Error(`${field} is missing`);
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`${field} "${text.slice(0, 64)}" is not a time`);
  return date;
}

function checkNotFuture(date: Date, field: string, now: Date): void {
  if (date.getTime() > now.getTime() + FUTURE_SKEW_MS) throw new Error(`${field} ${date.toISOString()} is in the future`);
}

/** A value from an untrusted object, short enough for a message. */
function show(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  return (text ?? 'nothing').slice(0, 64);
}

function sizingRecord(action: SizingAction, now: Date): ActionRecord {
  const kind: unknown = action.kind;
  if (typeof kind !== 'string' || !kinds.includes(kind)) throw new Error(`kind ${show(kind)} is unknown`);
  const timestamp = time(action.timestamp, 'timestamp');
  checkNotFuture(timestamp, 'timestamp', now);
  const result: unknown = action.result ?? ActionResults.Pending;
  if (typeof result !== 'string' || !results.includes(result)) throw new Error(`result ${show(result)} is unknown`);
  let completedAt: Date | undefined;
  if (action.completedAt !== undefined) {
    completedAt = time(action.completedAt, 'completedAt');
    checkNotFuture(completedAt, 'completedAt', now);
  }
  return {
    kind: kind as ActionKind,
    from: action.from === undefined ? 0 : parseQuantity(action.from, 'from'),
    to: action.to === undefined ? 0 : parseQuantity(action.to, 'to'),
    timestamp,
    result: result as ActionResult,
    completedAt,
    instance: action.instance,
  };
}

/** The status's recentActions, each validated: a bad entry is reported and dropped. */
export function readStatusActions(actions: readonly SizingAction[] | undefined, now: Date, where = 'recentActions'): HistoryRead {
  const read: HistoryRead = { records: [], problems: [] };
  for (const [index, action] of (actions ?? []).entries()) {
    try {
      read.records.push(sizingRecord(action, now));
    } catch (err) {
      read.problems.push(`${where}[${index}]: ${errorMessage(err)}; ignored`);
    }
  }
  return read;
}

interface AnnotatedAction {
  k: ActionKind;
  t: string;
  f: string;
  to: string;
}

/** The annotation's value: the actions of the budget window (the newest MAX_ANNOTATED_ACTIONS), oldest first. */
export function encodeActionsAnnotation(records: readonly ActionRecord[], now: Date): string {
  const since = now.getTime() - BUDGET_WINDOW_MS;
  const kept = [...records]
    .filter((r) => r.timestamp.getTime() > since)
    .sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime())
    .slice(-MAX_ANNOTATED_ACTIONS);
  const entries: AnnotatedAction[] = kept.map((r) => ({
    k: r.kind, t: rfc3339(r.timestamp), f: formatQuantity(r.from), to: formatQuantity(r.to),
  }));
  return JSON.stringify(entries);
}

/** One PVC's annotation, validated. Entries become Success records: a patch that was applied to this PVC. */
export function readActionsAnnotation(pvc: k8s.V1PersistentVolumeClaim, now: Date): HistoryRead {
  const text = pvc.metadata?.annotations?.[actionsAnnotation];
  const where = `PVC ${pvc.metadata?.name ?? ''} annotation ${actionsAnnotation}`;
  const read: HistoryRead = { records: [], problems: [] };
  if (text === undefined) return read;
  if (text.length > MAX_ANNOTATION_BYTES) return { records: [], problems: [`${where}: longer than ${MAX_ANNOTATION_BYTES} bytes; ignored`] };
  let decoded: unknown;
  try {
    decoded = JSON.parse(text);
  } catch {
    return { records: [], problems: [`${where}: not JSON; ignored`] };
  }
  if (!Array.isArray(decoded)) return { records: [], problems: [`${where}: not a list; ignored`] };
  for (const [index, entry] of (decoded as unknown[]).slice(-MAX_ANNOTATED_ACTIONS).entries()) {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Partial<Record<keyof AnnotatedAction, unknown>>;
    try {
      const action: SizingAction = {
        kind: e.k as SizingAction['kind'], timestamp: e.t as string, result: ActionResults.Success,
        from: typeof e.f === 'string' ? e.f : undefined, to: typeof e.to === 'string' ? e.to : undefined,
      };
      if (action.to === undefined) throw new Error('to is missing');
      read.records.push(sizingRecord(action, now));
    } catch (err) {
      read.problems.push(`${where}[${index}]: ${errorMessage(err)}; ignored`);
    }
  }
  return read;
}

function keyOf(record: ActionRecord): string {
  return `${record.kind}@${Math.floor(record.timestamp.getTime() / 1000)}`;
}

/**
 * The volume's history: the status's records, plus every action recorded on the PVCs that the status does not know
 * (the DynamicStorage was re-created, or its status was edited). Oldest first.
 */
export function mergeHistories(status: HistoryRead, annotations: readonly HistoryRead[]): HistoryRead {
  const known = new Set(status.records.map(keyOf));
  const records = [...status.records];
  const problems = [...status.problems];
  for (const read of annotations) {
    problems.push(...read.problems);
    for (const record of read.records) {
      const key = keyOf(record);
      if (known.has(key)) continue;
      known.add(key);
      records.push(record);
    }
  }
  records.sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime());
  return { records, problems };
}

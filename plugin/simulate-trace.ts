/**
 * The usage trace of `kubectl cnpg storage simulate --trace`: CSV with the header `timestamp,instance,used_bytes`, one row
 * per instance per sample. Timestamps are unix seconds (decimals allowed) or RFC 3339; `used_bytes` is a non-negative
 * number of bytes. Each instance's rows must go forward in time (instances may interleave); every instance needs at
 * least two samples. Pure: text in, per-instance series out, or a SimulateInputError naming the line.
 */
import type { InstanceTrace, UsagePoint } from '../controller/policy/replay.ts';
import { SimulateErrorCodes, SimulateInputError } from './simulate-errors.ts';

export const traceHeader = ['timestamp', 'instance', 'used_bytes'] as const;

const unixSeconds = /^\d+(\.\d+)?$/;
const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/;
const bytesNumber = /^\d+(\.\d+)?([eE][+-]?\d+)?$/;
/** A DNS-1123 subdomain (Kubernetes object names, which CNPG's instance and PVC names are). */
const instanceName = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** A timestamp of the trace in milliseconds since the epoch, or undefined when it is neither form. */
export function parseTimestamp(text: string): number | undefined {
  if (unixSeconds.test(text)) return Math.round(Number(text) * 1000);
  const match = rfc3339.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second, fraction = '', zone = '', sign, zoneHours = '0', zoneMinutes = '0'] = match;
  const fields = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number];
  const [y, mo, d, h, mi, s] = fields;
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(utc);
  // Date.UTC rolls 2024-02-30 over to March 1st: a date that does not come back unchanged does not exist.
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h || back.getUTCMinutes() !== mi || back.getUTCSeconds() !== s) {
    return undefined;
  }
  if (Number(zoneHours) > 23 || Number(zoneMinutes) > 59) return undefined;
  const offsetMinutes = zone.toUpperCase() === 'Z' ? 0 : (sign === '-' ? -1 : 1) * (Number(zoneHours) * 60 + Number(zoneMinutes));
  return utc - offsetMinutes * 60_000 + Math.round(Number(`0${fraction}`) * 1000);
}

function splitRow(line: string): string[] {
  return line.split(',').map((field) => {
    const trimmed = field.trim();
    return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
  });
}

interface Series {
  points: UsagePoint[];
  lastLine: number;
}

function parseRow(fields: readonly string[], lineNumber: number): { at: number; instance: string; usedBytes: number } {
  const fail = (code: (typeof SimulateErrorCodes)[keyof typeof SimulateErrorCodes], message: string): never => {
    throw new SimulateInputError(code, `line ${lineNumber}: ${message}`, { line: lineNumber });
  };
  if (fields.length !== traceHeader.length) fail(SimulateErrorCodes.InvalidTraceRow, `expected 3 fields (timestamp,instance,used_bytes), found ${fields.length}`);
  const [timestampText = '', instance = '', bytesText = ''] = fields;
  const at = parseTimestamp(timestampText);
  if (at === undefined) fail(SimulateErrorCodes.InvalidTimestamp, `timestamp "${timestampText}" is neither unix seconds nor RFC 3339 (2024-06-01T00:00:00Z)`);
  if (!instanceName.test(instance)) fail(SimulateErrorCodes.InvalidInstance, `instance "${instance}" is not an instance name (lowercase letters, digits, "-" and ".")`);
  if (!bytesNumber.test(bytesText)) fail(SimulateErrorCodes.InvalidUsedBytes, `used_bytes "${bytesText}" is not a non-negative number of bytes`);
  const usedBytes = Math.round(Number(bytesText));
  if (!Number.isSafeInteger(usedBytes)) fail(SimulateErrorCodes.InvalidUsedBytes, `used_bytes "${bytesText}" is too large`);
  return { at: at ?? 0, instance, usedBytes };
}

/** Every instance's series, in the order instances first appear in the file. */
export function parseTraceCsv(text: string): InstanceTrace[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const headerIndex = lines.findIndex((line) => line.trim() !== '');
  if (headerIndex < 0) throw new SimulateInputError(SimulateErrorCodes.EmptyTrace, 'the trace is empty: expected the header timestamp,instance,used_bytes and rows');
  const header = splitRow(lines[headerIndex] ?? '').map((field) => field.toLowerCase());
  if (header.join(',') !== traceHeader.join(',')) {
    throw new SimulateInputError(SimulateErrorCodes.InvalidTraceHeader, `line ${headerIndex + 1}: the header must be timestamp,instance,used_bytes, not "${lines[headerIndex]?.trim() ?? ''}"`, { line: headerIndex + 1 });
  }
  const series = new Map<string, Series>();
  for (let index = headerIndex + 1; index < lines.length; index += 1) {
    const line = lines[index] ?? '';
    if (line.trim() === '') continue;
    const lineNumber = index + 1;
    const row = parseRow(splitRow(line), lineNumber);
    const entry = series.get(row.instance) ?? { points: [], lastLine: 0 };
    const previous = entry.points.at(-1);
    if (previous !== undefined && row.at <= previous.at.getTime()) {
      const what = row.at === previous.at.getTime() ? 'repeats' : 'goes back before';
      throw new SimulateInputError(
        SimulateErrorCodes.TraceOutOfOrder,
        `line ${lineNumber}: the timestamp of ${row.instance} ${what} its previous sample (line ${entry.lastLine}); each instance's rows must go forward in time`,
        { line: lineNumber },
      );
    }
    entry.points.push({ at: new Date(row.at), usedBytes: row.usedBytes });
    entry.lastLine = lineNumber;
    series.set(row.instance, entry);
  }
  if (series.size === 0) throw new SimulateInputError(SimulateErrorCodes.EmptyTrace, 'the trace has a header but no rows');
  for (const [instance, { points, lastLine }] of series) {
    if (points.length < 2) {
      throw new SimulateInputError(SimulateErrorCodes.TraceTooShort, `line ${lastLine}: ${instance} has a single sample; every instance needs at least two`, { line: lastLine });
    }
  }
  return [...series].map(([instance, { points }]) => ({ instance, trace: points }));
}

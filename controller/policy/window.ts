/**
 * Maintenance windows: a 5-field cron schedule read as wall-clock time in an IANA time zone, plus a duration of elapsed
 * time. Parsed once into a value object that answers questions about explicit instants; nothing here reads the clock.
 *
 * cron-parser validates the expression and expands its fields, but occurrences are computed here with luxon's zone data:
 * cron-parser 5.10 skips the spring-forward day when iterating backwards, returns a repeated hour's start twice, and fails
 * with "loop limit exceeded" across Lord Howe's 30-minute change (see docs/sizing-policy.md, "Maintenance windows").
 */
import { CronExpressionParser } from 'cron-parser';
import { IANAZone } from 'luxon';
import { maintenanceWindowDefaults } from '../../shared/cnpg.ts';
import { InvalidInputError } from '../../shared/errors.ts';

export const WindowErrorCodes = {
  InvalidSchedule: 'InvalidSchedule',
  InvalidTimeZone: 'InvalidTimeZone',
  InvalidDuration: 'InvalidDuration',
} as const;
export type WindowErrorCode = (typeof WindowErrorCodes)[keyof typeof WindowErrorCodes];

/** What a window that leaves a field out takes (the API server fills in the same). */
export const MAINTENANCE_WINDOW_DEFAULTS = maintenanceWindowDefaults;

/** The user's window as written in the Cluster's storage configuration; empty or missing fields take the defaults. */
export interface MaintenanceWindowSpec {
  schedule?: string | undefined;
  duration?: string | undefined;
  timezone?: string | undefined;
}

export interface MaintenanceWindow {
  /** `always` when no window is configured: planned growth may happen at any time. */
  readonly kind: 'always' | 'scheduled';
  readonly schedule: string;
  readonly timezone: string;
  readonly durationMs: number;
  /** Open at `at`: the latest start at or before `at` is less than the duration ago. */
  contains(at: Date): boolean;
  /** Latest start at or before `at`, if any within the look-back bound. */
  mostRecentStart(at: Date): Date | undefined;
  /** Earliest start strictly after `at`. */
  nextStart(at: Date): Date | undefined;
  /** `at` itself when the window is open then, else the next start. */
  nextOpen(at: Date): Date | undefined;
  /** When the window that is open at `at` closes (latest start + duration); undefined when closed or always open. */
  closesAt(at: Date): Date | undefined;
  /** One-line description for messages: `0 3 * * * Europe/Berlin for 2h`. */
  describe(): string;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Longest gap between two starts a valid schedule can have: 29 February skips 2100, so 8 years. */
const SEARCH_DAYS = 8 * 366 + 2;
const MIN_DURATION_MS = MINUTE;
const MAX_DURATION_MS = 366 * DAY;

const macros: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const fieldNames = ['minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;
const monthNames = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const dayNames = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const maxDaysInMonth = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

interface CronSets {
  minutes: readonly number[];
  hours: readonly number[];
  months: ReadonlySet<number>;
  daysOfMonth: ReadonlySet<number>;
  daysOfWeek: ReadonlySet<number>;
  domRestricted: boolean;
  dowRestricted: boolean;
}

/** Validates every part of a window and returns all problems at once (empty when valid). */
export function validateMaintenanceWindow(spec: MaintenanceWindowSpec, field = 'maintenanceWindow'): InvalidInputError[] {
  const resolved = withDefaults(spec);
  const errors: InvalidInputError[] = [];
  const schedule = checkSchedule(resolved.schedule, `${field}.schedule`);
  if (schedule instanceof InvalidInputError) errors.push(schedule);
  const zone = checkTimeZone(resolved.timezone, `${field}.timezone`);
  if (zone instanceof InvalidInputError) errors.push(zone);
  const duration = checkDuration(resolved.duration, `${field}.duration`);
  if (duration instanceof InvalidInputError) errors.push(duration);
  return errors;
}

/** Parses a window once; throws the first InvalidInputError (codes InvalidSchedule, InvalidTimeZone, InvalidDuration). */
export function parseMaintenanceWindow(spec: MaintenanceWindowSpec, field = 'maintenanceWindow'): MaintenanceWindow {
  const resolved = withDefaults(spec);
  const sets = checkSchedule(resolved.schedule, `${field}.schedule`);
  if (sets instanceof InvalidInputError) throw sets;
  const zone = checkTimeZone(resolved.timezone, `${field}.timezone`);
  if (zone instanceof InvalidInputError) throw zone;
  const durationMs = checkDuration(resolved.duration, `${field}.duration`);
  if (durationMs instanceof InvalidInputError) throw durationMs;
  return new ScheduledWindow(resolved.schedule.trim(), zone, sets, durationMs);
}

/** No window configured: always open. */
export const alwaysOpenWindow: MaintenanceWindow = {
  kind: 'always',
  schedule: '',
  timezone: 'UTC',
  durationMs: Number.POSITIVE_INFINITY,
  contains: () => true,
  mostRecentStart: () => undefined,
  nextStart: () => undefined,
  nextOpen: (at) => at,
  closesAt: () => undefined,
  describe: () => 'no maintenance window (always open)',
};

/** Go-style duration (`2h`, `90m`, `1h30m`, `1.5h`) in milliseconds; throws InvalidInputError (InvalidDuration). */
export function parseDuration(text: string, field = 'duration'): number {
  const result = checkDuration(text, field);
  if (result instanceof InvalidInputError) throw result;
  return result;
}

function withDefaults(spec: MaintenanceWindowSpec): { schedule: string; duration: string; timezone: string } {
  return {
    schedule: spec.schedule?.trim() ? spec.schedule : MAINTENANCE_WINDOW_DEFAULTS.schedule,
    duration: spec.duration?.trim() ? spec.duration : MAINTENANCE_WINDOW_DEFAULTS.duration,
    timezone: spec.timezone?.trim() ? spec.timezone : MAINTENANCE_WINDOW_DEFAULTS.timezone,
  };
}

const durationUnits: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, ms: 1, s: 1000, m: MINUTE, h: HOUR };
const durationPattern = /^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|ms|s|m|h)/;

function checkDuration(text: string, field: string): number | InvalidInputError {
  const trimmed = text.trim();
  let rest = trimmed;
  let total = 0;
  while (rest.length > 0) {
    const match = durationPattern.exec(rest);
    if (!match) {
      return new InvalidInputError(WindowErrorCodes.InvalidDuration, field, `"${text}" is not a duration (examples: 2h, 90m, 1h30m)`);
    }
    const [token] = match;
    const unit = /[a-z\u00b5]+$/.exec(token)?.[0] ?? '';
    total += Number(token.slice(0, token.length - unit.length)) * (durationUnits[unit] ?? 0);
    rest = rest.slice(token.length);
  }
  if (trimmed.length === 0) {
    return new InvalidInputError(WindowErrorCodes.InvalidDuration, field, 'must not be empty (examples: 2h, 90m, 1h30m)');
  }
  const ms = Math.round(total);
  if (ms < MIN_DURATION_MS || ms > MAX_DURATION_MS) {
    return new InvalidInputError(WindowErrorCodes.InvalidDuration, field, `"${text}" must be between 1m and 8784h (366 days)`);
  }
  return ms;
}

function checkTimeZone(name: string, field: string): IANAZone | InvalidInputError {
  const trimmed = name.trim();
  if (!IANAZone.isValidZone(trimmed)) {
    return new InvalidInputError(WindowErrorCodes.InvalidTimeZone, field, `"${name}" is not an IANA time zone (examples: UTC, Europe/Berlin, America/New_York)`);
  }
  return IANAZone.create(trimmed);
}

function checkSchedule(text: string, field: string): CronSets | InvalidInputError {
  const invalid = (message: string): InvalidInputError => new InvalidInputError(WindowErrorCodes.InvalidSchedule, field, message);
  const trimmed = text.trim();
  const expanded = trimmed.startsWith('@') ? macros[trimmed.toLowerCase()] : trimmed;
  if (expanded === undefined) {
    return invalid(`"${text}" is not supported; the macros are ${Object.keys(macros).join(', ')}`);
  }
  const parts = expanded.split(/\s+/);
  if (parts.length === 6) {
    return invalid(`"${text}" has 6 fields; seconds are not supported, use 5 fields: minute hour day-of-month month day-of-week`);
  }
  if (parts.length !== 5) {
    return invalid(`"${text}" has ${parts.length} fields; expected 5: minute hour day-of-month month day-of-week`);
  }
  const lexical = checkFieldTokens(parts);
  if (lexical !== undefined) return invalid(`"${text}": ${lexical}`);
  let sets: CronSets;
  try {
    sets = expandFields(expanded);
  } catch (err) {
    return invalid(`"${text}": ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!firesOnSomeDate(sets)) return invalid(`"${text}" never matches a calendar date`);
  return sets;
}

/**
 * Accepts the standard dialect (numbers, `*`, `?`, ranges, lists, steps, month and day names) and refuses cron-parser's
 * extensions (`L`, `W`, `#`, `H`), which other cron implementations read differently or randomly.
 */
function checkFieldTokens(parts: readonly string[]): string | undefined {
  for (const [index, part] of parts.entries()) {
    const name = fieldNames[index] ?? 'field';
    const names = index === 3 ? monthNames : index === 4 ? dayNames : [];
    for (const token of part.split(/[,/-]/)) {
      const lower = token.toLowerCase();
      const known = /^\d+$/.test(token) || token === '*' || (token === '?' && (index === 2 || index === 4)) || names.includes(lower);
      if (!known) return `${name} field "${part}" contains "${token}", which is not supported`;
    }
  }
  return undefined;
}

function expandFields(expression: string): CronSets {
  const { fields } = CronExpressionParser.parse(expression, { currentDate: new Date(0), tz: 'UTC' });
  const numbers = (values: readonly (number | string)[]): number[] => values.filter((v): v is number => typeof v === 'number');
  return {
    minutes: numbers(fields.minute.values).sort((a, b) => a - b),
    hours: numbers(fields.hour.values).sort((a, b) => a - b),
    months: new Set(numbers(fields.month.values)),
    daysOfMonth: new Set(numbers(fields.dayOfMonth.values)),
    daysOfWeek: new Set(numbers(fields.dayOfWeek.values).map((day) => day % 7)),
    domRestricted: !fields.dayOfMonth.isWildcard,
    dowRestricted: !fields.dayOfWeek.isWildcard,
  };
}

function firesOnSomeDate(sets: CronSets): boolean {
  if (sets.minutes.length === 0 || sets.hours.length === 0) return false;
  if (!sets.domRestricted || sets.dowRestricted) return sets.months.size > 0;
  for (const month of sets.months) {
    for (const day of sets.daysOfMonth) if (day <= (maxDaysInMonth[month - 1] ?? 0)) return true;
  }
  return false;
}

/** Classic cron day matching: with both day fields restricted a day matches either one; otherwise both must match. */
function dayMatches(sets: CronSets, dayIndex: number): boolean {
  const date = new Date(dayIndex * DAY);
  if (!sets.months.has(date.getUTCMonth() + 1)) return false;
  const domMatch = sets.daysOfMonth.has(date.getUTCDate());
  const dowMatch = sets.daysOfWeek.has(date.getUTCDay());
  if (sets.domRestricted && sets.dowRestricted) return domMatch || dowMatch;
  return domMatch && dowMatch;
}

/** How many local days of starts a window remembers. */
const STARTS_CACHE_DAYS = 64;

class ScheduledWindow implements MaintenanceWindow {
  readonly kind = 'scheduled' as const;
  readonly schedule: string;
  readonly timezone: string;
  readonly durationMs: number;
  readonly #zone: IANAZone;
  readonly #sets: CronSets;
  /** Starts per local day: pure in the day, and the time-zone lookups behind them dominate a long replay. */
  readonly #startsByDay = new Map<number, number[]>();

  constructor(schedule: string, zone: IANAZone, sets: CronSets, durationMs: number) {
    this.schedule = schedule;
    this.timezone = zone.name;
    this.#zone = zone;
    this.#sets = sets;
    this.durationMs = durationMs;
  }

  contains(at: Date): boolean {
    const start = this.mostRecentStart(at);
    return start !== undefined && at.getTime() < start.getTime() + this.durationMs;
  }

  mostRecentStart(at: Date): Date | undefined {
    const t = at.getTime();
    // A local day's starts are instants within about a day of its wall-clock midnight; start one day late to be safe.
    const first = this.#localDayIndex(t) + 1;
    for (let day = first; day > first - SEARCH_DAYS; day -= 1) {
      if (!dayMatches(this.#sets, day)) continue;
      const candidates = this.#startsOfDay(day).filter((start) => start <= t);
      if (candidates.length > 0) return new Date(Math.max(...candidates));
    }
    return undefined;
  }

  nextStart(at: Date): Date | undefined {
    const t = at.getTime();
    const first = this.#localDayIndex(t) - 1;
    for (let day = first; day < first + SEARCH_DAYS; day += 1) {
      if (!dayMatches(this.#sets, day)) continue;
      const candidates = this.#startsOfDay(day).filter((start) => start > t);
      if (candidates.length > 0) return new Date(Math.min(...candidates));
    }
    return undefined;
  }

  nextOpen(at: Date): Date | undefined {
    return this.contains(at) ? at : this.nextStart(at);
  }

  closesAt(at: Date): Date | undefined {
    const start = this.mostRecentStart(at);
    if (start === undefined) return undefined;
    const end = start.getTime() + this.durationMs;
    return at.getTime() < end ? new Date(end) : undefined;
  }

  describe(): string {
    return `${this.schedule} ${this.timezone} for ${formatDuration(this.durationMs)}`;
  }

  #localDayIndex(t: number): number {
    return Math.floor((t + this.#zone.offset(t) * MINUTE) / DAY);
  }

  /** Every start on one local calendar day, as instants (a repeated wall time counts once, at its first occurrence). */
  #startsOfDay(dayIndex: number): number[] {
    const cached = this.#startsByDay.get(dayIndex);
    if (cached !== undefined) return cached;
    const starts = this.#computeStartsOfDay(dayIndex);
    if (this.#startsByDay.size >= STARTS_CACHE_DAYS) this.#startsByDay.clear();
    this.#startsByDay.set(dayIndex, starts);
    return starts;
  }

  #computeStartsOfDay(dayIndex: number): number[] {
    const midnight = dayIndex * DAY;
    const change = offsetChangeAround(this.#zone, midnight - 15 * HOUR, midnight + DAY + 13 * HOUR);
    const starts: number[] = [];
    for (const hour of this.#sets.hours) {
      for (const minute of this.#sets.minutes) starts.push(resolveWallTime(change, midnight + hour * HOUR + minute * MINUTE));
    }
    return starts;
  }
}

/** The zone's offset (minutes) before and after the one change between `from` and `to`, and the instant of that change. */
interface OffsetChange {
  before: number;
  after: number;
  at: number;
}

/** Binary search to the minute; zone changes happen on whole minutes. At most one change within ~2 days is assumed. */
function offsetChangeAround(zone: IANAZone, from: number, to: number): OffsetChange {
  const before = zone.offset(from);
  const after = zone.offset(to);
  if (before === after) return { before, after, at: to };
  let low = Math.floor(from / MINUTE);
  let high = Math.ceil(to / MINUTE);
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (zone.offset(middle * MINUTE) === before) low = middle;
    else high = middle;
  }
  return { before, after, at: high * MINUTE };
}

/**
 * The instant a wall-clock time denotes. A time that occurs twice (clocks set back) resolves to its first occurrence; a
 * time that does not exist (clocks set forward) is read with the offset in force before the change, which is what the
 * clock would have shown without it (02:30 on a spring-forward night in Berlin becomes 03:30 CEST).
 */
function resolveWallTime(change: OffsetChange, wallMs: number): number {
  const early = wallMs - change.before * MINUTE;
  const late = wallMs - change.after * MINUTE;
  const earlyValid = early < change.at;
  const lateValid = late >= change.at;
  if (earlyValid && lateValid) return Math.min(early, late);
  if (earlyValid) return early;
  if (lateValid) return late;
  return wallMs - Math.min(change.before, change.after) * MINUTE;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return 'always';
  const hours = Math.floor(ms / HOUR);
  const minutes = Math.floor((ms % HOUR) / MINUTE);
  const seconds = Math.round((ms % MINUTE) / 1000);
  const parts = [hours > 0 ? `${hours}h` : '', minutes > 0 ? `${minutes}m` : '', seconds > 0 ? `${seconds}s` : ''];
  return parts.join('') || '0s';
}

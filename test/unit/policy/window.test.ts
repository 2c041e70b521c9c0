import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CronExpressionParser } from 'cron-parser';
import { InvalidInputError } from '../../../shared/errors.ts';
import { alwaysOpenWindow, parseDuration, parseMaintenanceWindow, validateMaintenanceWindow } from '../../../controller/policy/index.ts';

const at = (iso: string): Date => new Date(iso);
const win = (schedule: string, timezone: string, duration = '2h') => parseMaintenanceWindow({ schedule, timezone, duration });

interface StartCase {
  name: string;
  schedule: string;
  timezone: string;
  duration?: string;
  /** [probe, expected most recent start at or before it]. */
  mostRecent?: [string, string];
  /** [probe, expected next start strictly after it]. */
  next?: [string, string];
  open?: string[];
  closed?: string[];
}

const startCases: StartCase[] = [
  // Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST (01:00Z); 2024-10-27 03:00 CEST -> 02:00 CET (01:00Z).
  {
    name: 'Berlin: a start in the skipped hour runs as if the clock had not jumped (02:30 -> 03:30 CEST)',
    schedule: '30 2 * * *', timezone: 'Europe/Berlin',
    mostRecent: ['2024-03-31T12:00:00Z', '2024-03-31T01:30:00Z'], next: ['2024-03-30T12:00:00Z', '2024-03-31T01:30:00Z'],
    open: ['2024-03-31T01:30:00Z', '2024-03-31T03:29:59Z'], closed: ['2024-03-31T01:29:59Z', '2024-03-31T03:30:00Z'],
  },
  {
    name: 'Berlin: the day after spring-forward is not skipped when looking back',
    schedule: '30 2 * * *', timezone: 'Europe/Berlin',
    mostRecent: ['2024-04-01T00:29:00Z', '2024-03-31T01:30:00Z'],
  },
  {
    name: 'Berlin: a start in the repeated hour runs once, at its first occurrence',
    schedule: '30 2 * * *', timezone: 'Europe/Berlin',
    mostRecent: ['2024-10-27T12:00:00Z', '2024-10-27T00:30:00Z'], next: ['2024-10-27T00:30:00Z', '2024-10-28T01:30:00Z'],
  },
  {
    name: 'Berlin: the duration is elapsed time across the fall-back change',
    schedule: '0 2 * * *', timezone: 'Europe/Berlin', duration: '2h',
    open: ['2024-10-27T00:00:00Z', '2024-10-27T01:59:59Z'], closed: ['2024-10-27T02:00:00Z'],
  },
  {
    name: 'Berlin: hourly windows in the repeated hour start once per wall time',
    schedule: '0 * * * *', timezone: 'Europe/Berlin', duration: '30m',
    next: ['2024-10-27T00:30:00Z', '2024-10-27T02:00:00Z'], open: ['2024-10-27T00:10:00Z'], closed: ['2024-10-27T01:10:00Z'],
  },
  // America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT (07:00Z); 2024-11-03 02:00 EDT -> 01:00 EST (06:00Z).
  {
    name: 'New York: skipped 02:30 becomes 03:30 EDT',
    schedule: '30 2 * * *', timezone: 'America/New_York',
    mostRecent: ['2024-03-10T12:00:00Z', '2024-03-10T07:30:00Z'], next: ['2024-03-09T12:00:00Z', '2024-03-10T07:30:00Z'],
  },
  {
    name: 'New York: repeated 01:30 starts at its EDT occurrence only',
    schedule: '30 1 * * *', timezone: 'America/New_York',
    mostRecent: ['2024-11-03T12:00:00Z', '2024-11-03T05:30:00Z'], next: ['2024-11-03T05:30:00Z', '2024-11-04T06:30:00Z'],
  },
  {
    name: 'New York: a window across midnight',
    schedule: '0 23 * * *', timezone: 'America/New_York', duration: '3h',
    mostRecent: ['2024-06-01T04:30:00Z', '2024-06-01T03:00:00Z'], open: ['2024-06-01T03:00:00Z', '2024-06-01T05:59:59Z'],
    closed: ['2024-06-01T02:59:59Z', '2024-06-01T06:00:00Z'],
  },
  // Australia/Lord_Howe: 30-minute change. 2024-04-07 02:00 (+11) -> 01:30 (+10:30); 2024-10-06 02:00 (+10:30) -> 02:30 (+11).
  {
    name: 'Lord Howe: skipped 02:15 is read with the +10:30 offset',
    schedule: '15 2 * * *', timezone: 'Australia/Lord_Howe',
    next: ['2024-10-05T00:00:00Z', '2024-10-05T15:45:00Z'], mostRecent: ['2024-10-06T00:00:00Z', '2024-10-05T15:45:00Z'],
  },
  {
    name: 'Lord Howe: repeated 01:45 starts at its +11 occurrence',
    schedule: '45 1 * * *', timezone: 'Australia/Lord_Howe',
    next: ['2024-04-06T00:00:00Z', '2024-04-06T14:45:00Z'], mostRecent: ['2024-04-07T15:00:00Z', '2024-04-06T14:45:00Z'],
  },
  {
    name: 'Lord Howe: 02:15 on the fall-back day exists once (+10:30)',
    schedule: '15 2 * * *', timezone: 'Australia/Lord_Howe',
    next: ['2024-04-06T00:00:00Z', '2024-04-06T15:45:00Z'],
  },
  // Asia/Kolkata: +05:30 all year.
  {
    name: 'Kolkata: half-hour offset',
    schedule: '0 3 * * *', timezone: 'Asia/Kolkata',
    mostRecent: ['2024-04-08T00:00:00Z', '2024-04-07T21:30:00Z'],
  },
  {
    name: 'Kolkata: a window across midnight',
    schedule: '30 23 * * *', timezone: 'Asia/Kolkata', duration: '2h30m',
    open: ['2024-06-01T18:00:00Z', '2024-06-01T20:29:59Z'], closed: ['2024-06-01T17:59:59Z', '2024-06-01T20:30:00Z'],
  },
  // Schedules and durations.
  {
    name: 'UTC: a duration longer than the period keeps the window open',
    schedule: '0 3 * * *', timezone: 'UTC', duration: '36h',
    open: ['2024-06-01T02:00:00Z', '2024-06-01T02:59:59Z', '2024-06-01T03:00:00Z'],
  },
  {
    name: 'UTC: day-of-month and day-of-week both restricted match either',
    schedule: '0 3 1 * 1', timezone: 'UTC',
    next: ['2024-06-01T04:00:00Z', '2024-06-03T03:00:00Z'], mostRecent: ['2024-06-02T00:00:00Z', '2024-06-01T03:00:00Z'],
  },
  {
    name: 'UTC: a stepped day-of-month restricts the days',
    schedule: '0 3 */2 * *', timezone: 'UTC',
    next: ['2024-06-01T04:00:00Z', '2024-06-03T03:00:00Z'],
  },
  {
    name: 'UTC: Sunday may be written 7',
    schedule: '0 3 * * 7', timezone: 'UTC',
    next: ['2024-06-01T04:00:00Z', '2024-06-02T03:00:00Z'],
  },
  {
    name: 'UTC: 29 February looks back years',
    schedule: '0 0 29 2 *', timezone: 'UTC',
    mostRecent: ['2027-01-01T00:00:00Z', '2024-02-29T00:00:00Z'], next: ['2024-03-01T00:00:00Z', '2028-02-29T00:00:00Z'],
  },
  {
    name: 'UTC: month and day names, and macros',
    schedule: '0 3 * jan,JUL mon-fri', timezone: 'UTC',
    next: ['2024-06-01T00:00:00Z', '2024-07-01T03:00:00Z'],
  },
  {
    name: 'UTC: @daily',
    schedule: '@daily', timezone: 'UTC',
    next: ['2024-06-01T00:00:00Z', '2024-06-02T00:00:00Z'], open: ['2024-06-01T01:59:59Z'], closed: ['2024-06-01T02:00:00Z'],
  },
];

describe('policy/window: starts and openings across time zones', () => {
  for (const c of startCases) {
    it(c.name, () => {
      const window = win(c.schedule, c.timezone, c.duration);
      if (c.mostRecent) assert.equal(window.mostRecentStart(at(c.mostRecent[0]))?.toISOString(), at(c.mostRecent[1]).toISOString());
      if (c.next) assert.equal(window.nextStart(at(c.next[0]))?.toISOString(), at(c.next[1]).toISOString());
      for (const t of c.open ?? []) assert.equal(window.contains(at(t)), true, `open at ${t}`);
      for (const t of c.closed ?? []) assert.equal(window.contains(at(t)), false, `closed at ${t}`);
    });
  }

  it('reports when the open window closes and when it opens next', () => {
    const window = win('0 3 * * *', 'UTC');
    assert.equal(window.closesAt(at('2024-06-01T03:30:00Z'))?.toISOString(), '2024-06-01T05:00:00.000Z');
    assert.equal(window.closesAt(at('2024-06-01T06:00:00Z')), undefined);
    assert.equal(window.nextOpen(at('2024-06-01T03:30:00Z'))?.toISOString(), '2024-06-01T03:30:00.000Z');
    assert.equal(window.nextOpen(at('2024-06-01T06:00:00Z'))?.toISOString(), '2024-06-02T03:00:00.000Z');
    assert.equal(window.describe(), '0 3 * * * UTC for 2h');
  });

  it('applies the defaults to missing fields', () => {
    const window = parseMaintenanceWindow({ schedule: '', timezone: undefined });
    assert.deepEqual([window.schedule, window.timezone, window.durationMs], ['0 3 * * *', 'UTC', 2 * 3600_000]);
  });

  it('is always open without a window', () => {
    assert.equal(alwaysOpenWindow.contains(at('2024-06-01T12:00:00Z')), true);
    assert.equal(alwaysOpenWindow.nextStart(at('2024-06-01T12:00:00Z')), undefined);
  });
});

describe('policy/window: cron-parser 5.10 around DST (why starts are computed here)', () => {
  it('skips the spring-forward day when iterating backwards', () => {
    const expression = CronExpressionParser.parse('30 2 * * *', { currentDate: at('2024-04-01T12:00:00Z'), tz: 'Europe/Berlin' });
    const starts = [expression.prev(), expression.prev()].map((date) => date.toISOString());
    assert.deepEqual(starts, ['2024-04-01T00:30:00.000Z', '2024-03-30T01:30:00.000Z']);
    assert.equal(win('30 2 * * *', 'Europe/Berlin').mostRecentStart(at('2024-04-01T00:29:00Z'))?.toISOString(), '2024-03-31T01:30:00.000Z');
  });

  it('fails forward across the Lord Howe half-hour change', () => {
    const expression = CronExpressionParser.parse('15 2 * * *', { currentDate: at('2024-04-06T00:00:00Z'), tz: 'Australia/Lord_Howe' });
    assert.throws(() => expression.next(), /loop limit exceeded/);
  });
});

describe('policy/window: validation', () => {
  const scheduleErrors: [string, string][] = [
    ['0 0 3 * * *', '"0 0 3 * * *" has 6 fields; seconds are not supported, use 5 fields: minute hour day-of-month month day-of-week'],
    ['0 3 * *', '"0 3 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week'],
    ['H 3 * * *', '"H 3 * * *": minute field "H" contains "H", which is not supported'],
    ['0 3 L * *', '"0 3 L * *": day-of-month field "L" contains "L", which is not supported'],
    ['0 3 * * 1#2', '"0 3 * * 1#2": day-of-week field "1#2" contains "1#2", which is not supported'],
    ['61 3 * * *', '"61 3 * * *": Constraint error, got value 61 expected range 0-59'],
    ['@every 1h', '"@every 1h" is not supported; the macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly'],
  ];
  for (const [schedule, message] of scheduleErrors) {
    it(`rejects schedule ${JSON.stringify(schedule)}`, () => {
      assert.throws(() => parseMaintenanceWindow({ schedule }), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.equal(err.code, 'InvalidSchedule');
        assert.equal(err.field, 'maintenanceWindow.schedule');
        assert.equal(err.message, `maintenanceWindow.schedule: ${message}`);
        return true;
      });
    });
  }

  it('rejects schedules that never fire', () => {
    for (const schedule of ['0 0 30 2 *', '0 0 31 4,6 *']) {
      assert.throws(() => parseMaintenanceWindow({ schedule }), (err: unknown) => err instanceof InvalidInputError && err.code === 'InvalidSchedule');
    }
  });

  it('rejects an unknown time zone', () => {
    assert.throws(() => parseMaintenanceWindow({ timezone: 'Mars/Olympus' }), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.equal(err.code, 'InvalidTimeZone');
      assert.equal(err.message, 'maintenanceWindow.timezone: "Mars/Olympus" is not an IANA time zone (examples: UTC, Europe/Berlin, America/New_York)');
      return true;
    });
  });

  const durations: [string, number | string][] = [
    ['2h', 7_200_000], ['90m', 5_400_000], ['1h30m', 5_400_000], ['1.5h', 5_400_000], ['1m', 60_000],
    ['abc', '"abc" is not a duration (examples: 2h, 90m, 1h30m)'], ['2d', '"2d" is not a duration (examples: 2h, 90m, 1h30m)'],
    ['30s', '"30s" must be between 1m and 8784h (366 days)'], ['9000h', '"9000h" must be between 1m and 8784h (366 days)'],
  ];
  for (const [text, expected] of durations) {
    it(`duration ${JSON.stringify(text)}`, () => {
      if (typeof expected === 'number') {
        assert.equal(parseDuration(text), expected);
        return;
      }
      assert.throws(() => parseDuration(text, 'maintenanceWindow.duration'), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.equal(err.code, 'InvalidDuration');
        assert.equal(err.message, `maintenanceWindow.duration: ${expected}`);
        return true;
      });
    });
  }

  it('reports every problem at once', () => {
    const errors = validateMaintenanceWindow({ schedule: '0 0 3 * * *', timezone: 'Nowhere', duration: 'soon' }, 'spec.storage.maintenanceWindow');
    assert.deepEqual(errors.map((err) => [err.code, err.field]), [
      ['InvalidSchedule', 'spec.storage.maintenanceWindow.schedule'],
      ['InvalidTimeZone', 'spec.storage.maintenanceWindow.timezone'],
      ['InvalidDuration', 'spec.storage.maintenanceWindow.duration'],
    ]);
    assert.deepEqual(validateMaintenanceWindow({}), []);
  });
});

describe('policy/window: properties', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'];
  const schedules = ['0 3 * * *', '30 2 * * *', '*/20 * * * *', '0 */6 * * 1-5', '15 1 1,15 * *', '45 1 * * 0', '0 0 * * *'];
  const durations = ['30m', '2h', '25h'];
  // 2024-2025, which holds every DST change of these zones twice.
  const instant = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2026, 0, 1) }).map((ms) => new Date(ms));
  const windowArb = fc.record({ schedule: fc.constantFrom(...schedules), timezone: fc.constantFrom(...zones), duration: fc.constantFrom(...durations) });

  it('agree among themselves: starts, openings and closings', () => {
    fc.assert(
      fc.property(windowArb, instant, (spec, t) => {
        const window = parseMaintenanceWindow(spec);
        const recent = window.mostRecentStart(t);
        const next = window.nextStart(t);
        assert.ok(recent !== undefined && next !== undefined);
        assert.ok(recent.getTime() <= t.getTime() && next.getTime() > t.getTime());
        // No start strictly between the most recent one and t.
        assert.ok((window.nextStart(recent)?.getTime() ?? Infinity) > t.getTime());
        assert.equal(window.mostRecentStart(next)?.getTime(), next.getTime());
        assert.equal(window.contains(t), t.getTime() < recent.getTime() + window.durationMs);
        const opens = window.nextOpen(t);
        assert.ok(opens !== undefined && opens.getTime() >= t.getTime() && window.contains(opens));
      }),
      { numRuns: 150 },
    );
  });

  it('match cron-parser where there is no DST', () => {
    fc.assert(
      fc.property(fc.constantFrom(...schedules), fc.constantFrom('UTC', 'Asia/Kolkata'), instant, (schedule, timezone, t) => {
        const expression = CronExpressionParser.parse(schedule, { currentDate: t, tz: timezone });
        const window = win(schedule, timezone);
        assert.equal(window.nextStart(t)?.getTime(), expression.next().getTime());
      }),
      { numRuns: 150 },
    );
  });
});

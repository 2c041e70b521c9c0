import assert from 'node:assert/strict';
import { GiB } from '../../../shared/quantity.ts';
import { DEFAULT_TUNING, decide, fillRate, growthWithin, longTermGrowth, type DiskReading } from '../../../controller/policy/index.ts';
import { rateOf, sustainedForMs } from '../../../controller/policy/predict.ts';
import { HOUR, IN_WINDOW, MINUTE, OUT_OF_WINDOW, action, input, instance, policy, reading } from './fixtures.ts';

const MiB = 1024 ** 2;
const SECOND = 1000;
const tuning = DEFAULT_TUNING.prediction;

/** Readings of a filesystem of `usable` bytes, `used(t)` at each of `times` (ms before `now`). */
function series(now: Date, usable: number, times: readonly number[], used: (msBefore: number) => number): DiskReading[] {
  return times.map((before) => reading({ used: used(before), usable, at: new Date(now.getTime() - before) }));
}

/** Every `every` ms from `from` ms before now to now. */
function every(from: number, step: number): number[] {
  const times: number[] = [];
  for (let before = from; before >= 0; before -= step) times.push(before);
  return times;
}

describe('policy/predict: fill rates that describe growth still going on', () => {
  it('a completed step is not a trend: a volume filled to 90% and left alone is not predicted full', () => {
    // As `make demo` does it: a quiet volume (unchanged readings re-sent every 30 s), one write to 90%, quiet again.
    const usable = 62 * MiB;
    const now = OUT_OF_WINDOW;
    const stepAt = 65 * SECOND;
    const readings = series(now, usable, [...every(8 * MINUTE, 30 * SECOND).filter((b) => b > stepAt), stepAt, 35 * SECOND, 5 * SECOND], (before) =>
      before > stepAt ? 6 * MiB : 0.9 * usable);
    const rate = fillRate(readings, undefined, tuning, now) ?? 0;
    assert.ok(rate < 1024, `rate ${rate} B/s`);
    const latest = readings.at(-1);
    const decision = decide(input({
      policy: policy({ request: 64 * MiB, limit: 512 * MiB, emergencyGrow: { criticalMinimumFree: 4 * MiB } }),
      tuning: { ...DEFAULT_TUNING, minimumStepBytes: 8 * MiB },
      instances: [{ ...instance({ size: 64 * MiB, used: 0.9 * usable, usable, at: latest?.sampledAt ?? now }), recentReadings: readings }],
    }), now);
    assert.equal(decision.state, 'PendingGrowth', decision.message);
    assert.equal(decision.reason, 'OutsideMaintenanceWindow');
  });

  it('slow growth followed by one write is no burst: the write is a step', () => {
    // A few KiB every 5 s (the database's own churn), then one write of 50Mi within a second, still the latest reading.
    const usable = 62 * MiB;
    const now = OUT_OF_WINDOW;
    const times = [...every(60 * SECOND, 5 * SECOND).filter((b) => b > 1 * SECOND), 0];
    const readings = series(now, usable, times, (before) => 2 * MiB + (60 * SECOND - before) / SECOND * 1024 + (before === 0 ? 50 * MiB : 0));
    const rate = fillRate(readings, undefined, tuning, now) ?? 0;
    assert.ok(rate < 64 * 1024, `rate ${rate} B/s`);
  });

  it('the write itself, as the latest reading, is not a trend yet', () => {
    const usable = 62 * MiB;
    const now = OUT_OF_WINDOW;
    const readings = series(now, usable, [...every(8 * MINUTE, 30 * SECOND).filter((b) => b > 2 * SECOND), 0], (before) => (before > 0 ? 6 * MiB : 0.9 * usable));
    assert.ok((fillRate(readings, undefined, tuning, now) ?? 0) < 1024);
  });

  it('a write in pieces that ended is a step: two writes 6 s apart, read every second, then unchanged readings', () => {
    // The real node's window scenario: rows inserted, a pause, the checkpoint's flush; two quiet minutes before it.
    const usable = 62 * MiB;
    const now = OUT_OF_WINDOW;
    for (const quiet of [1, 3, 5].map((s) => s * SECOND)) {
      const used = (before: number): number => {
        const since = 9 * SECOND + quiet - before;
        if (since < 0) return 30 * MiB;
        if (since < 2 * SECOND) return 30 * MiB + (since / (2 * SECOND)) * 20 * MiB;
        if (since < 8 * SECOND) return 50 * MiB;
        return 50 * MiB + Math.min(1, (since - 8 * SECOND) / SECOND) * 5.8 * MiB;
      };
      const readings = series(now, usable, every(2 * MINUTE, SECOND), used);
      const rate = fillRate(readings, undefined, tuning, now) ?? 0;
      assert.ok(rate < 1024, `${quiet / SECOND} s after: rate ${rate} B/s`);
      const decision = decide(input({
        policy: policy({ request: 64 * MiB, limit: 512 * MiB, emergencyGrow: { criticalMinimumFree: 4 * MiB } }),
        tuning: { ...DEFAULT_TUNING, minimumStepBytes: 8 * MiB },
        instances: [{ ...instance({ size: 64 * MiB, used: used(0), usable, at: now }), recentReadings: readings }],
      }), now);
      assert.equal(decision.state, 'PendingGrowth', `${quiet / SECOND} s after: ${decision.message}`);
    }
  });

  it('writes that go on for a minute or more are a trend, between the writes too; quiet for longer than their pauses, they stopped', () => {
    // 4 MiB every 6 s for 8 minutes, read every second (about 680 KiB/s); the latest write `lastBefore` ms ago.
    const now = OUT_OF_WINDOW;
    const rateWith = (lastBefore: number): number => fillRate(series(now, 100 * GiB, every(10 * MINUTE, SECOND), (before) => {
      const since = Math.max(before, lastBefore) - lastBefore;
      const writes = before > 8 * MINUTE ? 0 : 1 + Math.floor((8 * MINUTE - since) / (6 * SECOND));
      return 10 * GiB + writes * 4 * MiB;
    }), undefined, tuning, now) ?? 0;
    const expected = (4 * MiB) / 6;
    for (const lastBefore of [0, 2 * SECOND, 4 * SECOND]) {
      const rate = rateWith(lastBefore);
      assert.ok(Math.abs(rate - expected) / expected < 0.25, `${lastBefore / SECOND} s after the latest write: ${rate} B/s`);
    }
    const stopped = rateWith(12 * SECOND);
    assert.ok(stopped < 1024, `12 s after the last write: ${stopped} B/s`);
  });

  it('a burst is seen within seconds, at its own rate', () => {
    // Quiet for 10 minutes, then a bulk load of 600 MB per 15 s (40 MB/s), read every 5 s: three readings into it.
    const now = OUT_OF_WINDOW;
    const rate = 40 * 1000 ** 2;
    const startedBefore = 12 * SECOND;
    const times = [...every(10 * MINUTE, 30 * SECOND).filter((b) => b > startedBefore), 10 * SECOND, 5 * SECOND, 0];
    const readings = series(now, 100 * GiB, times, (before) => 20 * GiB + Math.max(0, startedBefore - before) * rate / SECOND);
    const measured = fillRate(readings, undefined, tuning, now) ?? 0;
    assert.ok(Math.abs(measured - rate) / rate < 0.05, `measured ${measured} B/s`);
  });

  it('a trend that stopped is not extrapolated', () => {
    // 8 minutes of 50 MiB/s, then flat for 2 minutes.
    const now = OUT_OF_WINDOW;
    const readings = series(now, 500 * GiB, every(10 * MINUTE, 5 * SECOND), (before) => 100 * GiB + Math.min(8 * 60, (10 * MINUTE - before) / SECOND) * 50 * MiB);
    const measured = fillRate(readings, undefined, tuning, now) ?? 0;
    assert.ok(measured < MiB, `measured ${measured} B/s`);
  });

  it('steady growth is measured at its rate', () => {
    const now = OUT_OF_WINDOW;
    const readings = series(now, 500 * GiB, every(10 * MINUTE, 5 * SECOND), (before) => 100 * GiB - (before / SECOND) * 2 * MiB);
    const measured = fillRate(readings, undefined, tuning, now) ?? 0;
    assert.ok(Math.abs(measured - 2 * MiB) < 0.01 * MiB, `measured ${measured} B/s`);
  });

  it('no second grow after a spike: readings from before the resize completed do not count', () => {
    // An emergency grew 10Gi -> 20Gi at 11:55, done at 11:56; the spike's ramp ended then, usage flat at 70% since.
    const now = OUT_OF_WINDOW;
    const grew = action({ kind: 'EmergencyGrow', timestamp: new Date(now.getTime() - 5 * MINUTE), completedAt: new Date(now.getTime() - 4 * MINUTE), from: 10 * GiB, to: 20 * GiB });
    const before = series(now, 10 * GiB, every(10 * MINUTE, 5 * SECOND).filter((b) => b > 4 * MINUTE), (b) => 9.9 * GiB - (b / SECOND) * 3 * MiB);
    const after = series(now, 20 * GiB, every(4 * MINUTE - 5 * SECOND, 5 * SECOND), () => 14 * GiB);
    const decision = decide(input({
      policy: policy({ limit: 100 * GiB }),
      history: [grew],
      instances: [{ ...instance({ size: 20 * GiB, used: 14 * GiB, at: now }), recentReadings: [...before, ...after] }],
    }), now);
    assert.equal(decision.action, 'NoOp', decision.message);
    assert.equal(decision.state, 'Balanced');
  });

  it('slow growth is predicted to the critical threshold, not only to full', () => {
    // 40 KiB/s (below what used to count as noise) on a small volume, 30 MiB before the 95% threshold: about 12.5 minutes.
    const now = OUT_OF_WINDOW;
    const usable = 4 * GiB;
    const readings = series(now, usable, every(10 * MINUTE, 5 * SECOND), (before) => 0.95 * usable - 30 * MiB - (before / SECOND) * 40 * 1024 - (10 * MINUTE) * 0);
    const latest = readings.at(-1);
    const slow = decide(input({
      policy: policy({ request: 4 * GiB, limit: 16 * GiB, emergencyGrow: { criticalMinimumFree: 16 * MiB } }),
      history: [action({ timestamp: new Date(now.getTime() - 20 * HOUR), completedAt: new Date(now.getTime() - 20 * HOUR + 8 * MINUTE) })],
      instances: [{ ...instance({ size: 4 * GiB, used: 0.95 * usable - 30 * MiB, usable, at: latest?.sampledAt ?? now }), recentReadings: readings }],
    }), now);
    assert.equal(slow.reason, 'PredictedCritical', slow.message);
    assert.equal(slow.action, 'EmergencyGrow');
    assert.match(slow.message, /will reach the critical threshold in about 12m/);
  });

  it('the long-term growth rate needs hours of evidence, averages a daily cycle and sees growth begun hours ago', () => {
    const now = IN_WINDOW;
    const short = series(now, 100 * GiB, every(HOUR, 15 * MINUTE), (before) => 50 * GiB - before / HOUR * GiB);
    assert.equal(rateOf(longTermGrowth(short, tuning, DEFAULT_TUNING.growthRateMinSpanMs, now)), undefined);
    const day = 24 * HOUR;
    const cycle = series(now, 100 * GiB, every(2 * day, 15 * MINUTE), (before) => 50 * GiB - (before / day) * 2 * GiB + Math.sin((before / day) * 2 * Math.PI) * 5 * GiB);
    const rate = rateOf(longTermGrowth(cycle, tuning, DEFAULT_TUNING.growthRateMinSpanMs, now)) ?? 0;
    assert.ok(Math.abs(rate * 86_400 - 2 * GiB) < 0.25 * GiB, `${rate * 86_400 / GiB} GiB a day`);
    // Two flat days, then 1Gi an hour for the last 3 hours (archiving broke): the recent hours decide.
    const runaway = series(now, 100 * GiB, every(2 * day, 15 * MINUTE), (before) => 20 * GiB + Math.max(0, 3 * HOUR - before) / HOUR * GiB);
    const recent = rateOf(longTermGrowth(runaway, tuning, DEFAULT_TUNING.growthRateMinSpanMs, now)) ?? 0;
    assert.ok(Math.abs(recent * 3600 - GiB) < 0.1 * GiB, `${recent * 3600 / GiB} GiB an hour`);
  });
  describe('a growth rate is not projected further ahead than the span it was measured over', () => {
    const day = 24 * HOUR;
    const minSpan = DEFAULT_TUNING.growthRateMinSpanMs;

    it('hours of a runaway WAL are projected for those hours, the flat days before it for the whole horizon', () => {
      // Two flat days, then 1Gi an hour for the last 3 hours (archiving broke).
      const now = IN_WINDOW;
      const runaway = series(now, 100 * GiB, every(2 * day, 15 * MINUTE), (before) => 20 * GiB + Math.max(0, 3 * HOUR - before) / HOUR * GiB);
      const growth = longTermGrowth(runaway, tuning, minSpan, now);
      assert.ok(growth !== undefined);
      assert.ok(Math.abs(growth.typical) < 0.01 * GiB / HOUR, `typical ${growth.typical * 3600 / GiB} GiB an hour`);
      assert.ok(Math.abs(growth.recentExcess * 3600 - GiB) < 0.1 * GiB, `excess ${growth.recentExcess * 3600 / GiB} GiB an hour`);
      const inADay = growthWithin(growth, day / SECOND, tuning);
      assert.ok(Math.abs(inADay - 3 * GiB) < 0.3 * GiB, `${inADay / GiB} GiB in a day, not 24`);
      assert.ok(Math.abs(growthWithin(growth, HOUR / SECOND, tuning) - GiB) < 0.1 * GiB);
    });

    it('steady growth and a daily cycle are projected over the whole horizon', () => {
      const now = IN_WINDOW;
      const steady = series(now, 100 * GiB, every(2 * day, 15 * MINUTE), (before) => 50 * GiB - (before / day) * 4 * GiB);
      const inADay = growthWithin(longTermGrowth(steady, tuning, minSpan, now), day / SECOND, tuning);
      assert.ok(Math.abs(inADay - 4 * GiB) < 0.05 * GiB, `${inADay / GiB} GiB in a day`);
      const cycle = series(now, 100 * GiB, every(2 * day, 15 * MINUTE), (before) => 50 * GiB - (before / day) * 2 * GiB + Math.sin((before / day) * 2 * Math.PI) * 5 * GiB);
      const cycleDay = growthWithin(longTermGrowth(cycle, tuning, minSpan, now), day / SECOND, tuning);
      assert.ok(Math.abs(cycleDay - 2 * GiB) < 0.25 * GiB, `${cycleDay / GiB} GiB in a day`);
    });

    it('growth that comes in nightly loads keeps its daily mean: most 15-minute intervals do not grow, the days do', () => {
      // 3Gi loaded within 15 minutes every night at 22:00, flat otherwise; now is 03:30, the last load 5.5 hours ago.
      const now = IN_WINDOW;
      const loads = (before: number): number => {
        const at = now.getTime() - before;
        let loaded = 0;
        for (let night = Date.UTC(2024, 4, 29, 22); night <= at; night += day) loaded += Math.min(1, (at - night) / (10 * MINUTE));
        return loaded;
      };
      const nightly = series(now, 100 * GiB, every(2 * day, 15 * MINUTE), (before) => 40 * GiB + loads(before) * 3 * GiB);
      const inADay = growthWithin(longTermGrowth(nightly, tuning, minSpan, now), day / SECOND, tuning);
      assert.ok(Math.abs(inADay - 3 * GiB) < 0.3 * GiB, `${inADay / GiB} GiB in a day`);
    });

    it('before the readings span the minimum, the recent rate is projected in full', () => {
      const now = IN_WINDOW;
      const young = series(now, 100 * GiB, every(4 * HOUR, 15 * MINUTE), (before) => 20 * GiB - (before / HOUR) * GiB);
      const inADay = growthWithin(longTermGrowth(young, tuning, minSpan, now), day / SECOND, tuning);
      assert.ok(Math.abs(inADay - 24 * GiB) < 0.5 * GiB, `${inADay / GiB} GiB in a day`);
    });

    it('planned growth in the window buys the hours of a runaway, not a day of it', () => {
      // The runaway above on a 40Gi volume, now 31Gi used: the target for today's usage is 39Gi, below the size.
      const now = IN_WINDOW;
      const longTermReadings = series(now, 40 * GiB, every(2 * day, 15 * MINUTE), (before) => 28 * GiB + Math.max(0, 3 * HOUR - before) / HOUR * GiB);
      const decision = decide(input({
        policy: policy({ request: 40 * GiB, limit: 400 * GiB }),
        instances: [{ ...instance({ size: 40 * GiB, used: 31 * GiB, usable: 40 * GiB, at: now }), longTermReadings }],
      }), now);
      assert.equal(decision.action, 'ScheduledGrow', decision.message);
      assert.equal(decision.reason, 'ExpectedGrowth');
      // 31Gi + about 3Gi, kept at 80% used: 43Gi; a day of 1Gi an hour would be 69Gi.
      assert.ok(decision.newSize !== undefined && decision.newSize >= 42 * GiB && decision.newSize <= 44 * GiB, `${(decision.newSize ?? 0) / GiB}Gi: ${decision.message}`);
    });
  });

  it('a fill has gone on for as long as the readings show it at about its rate, across resizes', () => {
    const now = OUT_OF_WINDOW;
    const rate = 10 * MiB;
    // Flat until 40 minutes ago, then 10Mi/s; a resize 10 minutes ago changed the filesystem's size.
    const used = (before: number): number => 5 * GiB + Math.max(0, 40 * MINUTE - before) / SECOND * rate;
    const readings = [
      ...series(now, 30 * GiB, every(2 * HOUR, 15 * MINUTE).filter((b) => b > 10 * MINUTE), used),
      ...series(now, 60 * GiB, every(10 * MINUTE, 5 * SECOND), used),
    ];
    const lasted = sustainedForMs(readings, rate, now);
    assert.ok(lasted >= 40 * MINUTE && lasted <= 55 * MINUTE, `${lasted / MINUTE} minutes`);
    assert.equal(sustainedForMs(readings, 100 * rate, now), 0);
    assert.equal(sustainedForMs(readings, 0, now), 0);
  });
});

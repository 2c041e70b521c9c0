import assert from 'node:assert/strict';
import { GiB } from '../../../shared/quantity.ts';
import { replay, usageAt, type UsagePoint } from '../../../controller/policy/index.ts';
import { maxActionsInWindow } from '../../../controller/policy/replay.ts';
import { HOUR, policy } from './fixtures.ts';

const start = Date.UTC(2024, 5, 1);
const point = (hours: number, usedGi: number): UsagePoint => ({ at: new Date(start + hours * HOUR), usedBytes: usedGi * GiB });
/** Two days: steady growth, with a burst of 8Gi in 10 minutes on the first afternoon. */
const burstyTrace = [point(0, 5), point(14, 12), point(14 + 1 / 6, 20), point(48, 40)];

describe('policy/replay', () => {
  it('interpolates usage linearly and holds it flat outside the trace', () => {
    const trace = [point(0, 10), point(10, 20)];
    assert.equal(usageAt(trace, start - HOUR), 10 * GiB);
    assert.equal(usageAt(trace, start + 5 * HOUR), 15 * GiB);
    assert.equal(usageAt(trace, start + 11 * HOUR), 20 * GiB);
  });

  it('keeps a bursty, fast-growing volume in space within the daily budget', () => {
    const report = replay({ policy: policy(), trace: burstyTrace, initialSize: 10 * GiB, resizeLatencyMs: 2 * 60_000 });
    assert.deepEqual(
      report.resizes.map((r) => `${r.at.toISOString()} ${r.kind} ${r.from / GiB}->${r.to / GiB} ${r.reason}`),
      [
        '2024-06-01T03:00:00.000Z ScheduledGrow 10->18 ExpectedGrowth',
        '2024-06-01T14:01:00.000Z EmergencyGrow 18->29 PredictedCritical',
        '2024-06-01T23:13:00.000Z EmergencyGrow 29->42 PredictedCritical',
        '2024-06-02T03:00:00.000Z ScheduledGrow 42->66 ExpectedGrowth',
      ],
    );
    assert.equal(report.secondsOutOfSpace, 0);
    assert.ok(report.secondsOverCritical <= 300, `over critical for ${report.secondsOverCritical}s`);
    assert.ok(report.maxActionsIn24h <= 4);
    assert.equal(report.finalSize, 66 * GiB);
    assert.ok(report.overProvisioning > 1 && report.overProvisioning < 1.5, `over-provisioning ${report.overProvisioning}`);
  });

  it('shows the cost of disabling emergencies: time out of space', () => {
    const report = replay({
      policy: policy({ emergencyGrow: { enabled: false } }),
      trace: burstyTrace,
      initialSize: 10 * GiB,
      resizeLatencyMs: 2 * 60_000,
    });
    assert.equal(report.emergencyResizes, 0);
    assert.ok(report.secondsOutOfSpace > 3600, `out of space for ${report.secondsOutOfSpace}s`);
    assert.ok((report.secondsByState.Emergency ?? 0) > 0);
  });

  it('is deterministic', () => {
    const options = { policy: policy(), trace: burstyTrace, initialSize: 10 * GiB, resizeLatencyMs: 60_000, stepMs: 5 * 60_000 };
    assert.deepEqual(replay(options), replay(options));
  });

  it('refuses a trace of one point', () => {
    assert.throws(() => replay({ policy: policy(), trace: [point(0, 1)], initialSize: 10 * GiB, resizeLatencyMs: 1 }), /at least two points/);
  });

  it('interpolates a long trace, forward and back, as the plain definition does', () => {
    const trace = Array.from({ length: 50 }, (_, i) => point(i, (i * 7) % 13));
    const naive = (t: number): number => {
      const after = trace.findIndex((p) => p.at.getTime() >= t);
      if (after <= 0) return (after === 0 ? trace[0] : trace.at(-1))?.usedBytes ?? 0;
      const [a, b] = [trace[after - 1]!, trace[after]!];
      return a.usedBytes + ((b.usedBytes - a.usedBytes) * (t - a.at.getTime())) / (b.at.getTime() - a.at.getTime());
    };
    for (const hours of [-1, 0, 0.25, 3, 3.5, 48.9, 49, 60, 2.5]) {
      assert.equal(usageAt(trace, start + hours * HOUR), naive(start + hours * HOUR), `at ${hours}h`);
    }
  });

  it('counts the most actions in any 24 hours', () => {
    assert.equal(maxActionsInWindow([]), 0);
    assert.equal(maxActionsInWindow([0]), 1);
    assert.equal(maxActionsInWindow([0, 23 * HOUR, 24 * HOUR, 25 * HOUR, 47 * HOUR]), 3);
    assert.equal(maxActionsInWindow([5 * HOUR, 0, 1 * HOUR]), 3);
  });

  describe('per instance', () => {
    const fast = { initialSize: 10 * GiB, resizeLatencyMs: 60_000, stepMs: 5 * 60_000 };

    it('with identical instances, decides exactly as the shared trace does', () => {
      const shared = replay({ policy: policy(), trace: burstyTrace, instances: 3, ...fast });
      const own = replay({ policy: policy(), instanceTraces: ['replay-1', 'replay-2', 'replay-3'].map((instance) => ({ instance, trace: burstyTrace })), ...fast });
      assert.deepEqual(own, shared);
      assert.deepEqual(shared.instances.map((i) => i.instance), ['replay-1', 'replay-2', 'replay-3']);
    });

    it('sizes every PVC for a replica that diverges from the others (a stuck slot), as if it were alone', function () {
      this.timeout(30_000);
      const flat = [point(0, 5), point(48, 5)];
      const stuck = [point(0, 5), point(20, 5), point(36, 30), point(48, 30)];
      const options = { ...fast, stepMs: 2 * 60_000 };
      const report = replay({
        policy: policy(),
        instanceTraces: [{ instance: 'pg-1', trace: flat }, { instance: 'pg-2', trace: stuck }, { instance: 'pg-3', trace: flat }],
        ...options,
      });
      const alone = replay({ policy: policy(), trace: stuck, ...options });
      const timeline = (r: typeof report): string[] => r.resizes.map((x) => `${x.at.toISOString()} ${x.kind} ${x.from}->${x.to} ${x.reason}`);
      assert.ok(report.resizes.length > 0, 'the diverging replica was never given room');
      assert.deepEqual(timeline(report), timeline(alone));
      assert.equal(report.finalSize, alone.finalSize);
      assert.ok(report.resizes.every((r) => r.fullestInstance === 'pg-2'), JSON.stringify(report.resizes.map((r) => r.fullestInstance)));
      const [pg1, pg2, pg3] = report.instances;
      assert.ok(pg2 !== undefined && pg1 !== undefined && pg3 !== undefined);
      assert.ok(pg2.maxPercentUsed > pg1.maxPercentUsed);
      assert.deepEqual({ ...pg1, instance: 'pg-3' }, pg3);
      assert.equal(pg1.secondsOverCritical + pg1.secondsOutOfSpace, 0);
      assert.equal(report.secondsOverCritical, pg2.secondsOverCritical);
      assert.equal(report.secondsOutOfSpace, pg2.secondsOutOfSpace);
      // The same volume without the diverging replica never grows: the replica alone drove the size.
      const calm = replay({ policy: policy(), instanceTraces: [{ instance: 'pg-1', trace: flat }, { instance: 'pg-3', trace: flat }], ...options });
      assert.deepEqual(calm.resizes, []);
      assert.equal(calm.finalSize, 10 * GiB);
    });

    it('spans from the earliest to the latest sample of any instance', () => {
      const report = replay({
        policy: policy(),
        instanceTraces: [{ instance: 'a', trace: [point(1, 1), point(3, 1)] }, { instance: 'b', trace: [point(0, 1), point(2, 1)] }],
        ...fast,
      });
      assert.equal(report.start.getTime(), start);
      assert.equal(report.end.getTime(), start + 3 * HOUR);
    });

    it('refuses no instances and an instance with one point', () => {
      assert.throws(() => replay({ policy: policy(), instanceTraces: [], ...fast }), /instanceTraces is empty/);
      assert.throws(() => replay({ policy: policy(), instanceTraces: [{ instance: 'pg-1', trace: [point(0, 1)] }], ...fast }), /trace of pg-1 needs at least two points/);
    });
  });
});

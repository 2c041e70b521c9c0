import assert from 'node:assert/strict';
import { GiB } from '../../../shared/quantity.ts';
import { replay, usageAt, type UsagePoint } from '../../../controller/policy/index.ts';
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
        '2024-06-01T04:26:00.000Z ScheduledGrow 10->11 BelowTargetBuffer',
        '2024-06-01T08:12:30.000Z EmergencyGrow 11->22 PredictedCritical',
        '2024-06-01T14:06:30.000Z EmergencyGrow 22->44 PredictedCritical',
        '2024-06-02T21:26:00.000Z EmergencyGrow 44->58 PredictedCritical',
      ],
    );
    assert.equal(report.secondsOutOfSpace, 0);
    assert.ok(report.secondsOverCritical <= 300, `over critical for ${report.secondsOverCritical}s`);
    assert.ok(report.maxActionsIn24h <= 4);
    assert.equal(report.finalSize, 58 * GiB);
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
});

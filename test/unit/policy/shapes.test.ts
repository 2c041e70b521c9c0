import assert from 'node:assert/strict';
import { GiB } from '../../../shared/quantity.ts';
import { replay, type UsagePoint } from '../../../controller/policy/index.ts';
import { HOUR, policy } from './fixtures.ts';

const start = Date.UTC(2024, 5, 1);
const at = (hours: number, usedGi: number): UsagePoint => ({ at: new Date(start + hours * HOUR), usedBytes: usedGi * GiB });

describe('policy: whole usage shapes, replayed through the engine', () => {
  it('a runaway WAL growing for hours stays in space within the daily budget', () => {
    // Archiving breaks at 01:00: WAL grows 4Gi an hour for 10 hours on a 10Gi volume, then archiving catches up.
    const trace = [at(0, 2), at(1, 2), at(11, 42), at(11.5, 2), at(30, 2)];
    const report = replay({ policy: policy({ limit: 500 * GiB }), trace, initialSize: 10 * GiB, resizeLatencyMs: 60_000, stepMs: 10_000 });
    assert.equal(report.secondsOutOfSpace, 0, JSON.stringify(report.resizes));
    assert.ok(report.maxActionsIn24h <= 4, `${report.maxActionsIn24h} actions in 24 h`);
  });

  it('steady growth is served by planned growth in the windows, never by an emergency', () => {
    // 5Gi growing 4Gi a day for 10 days on a 10Gi volume; the window opens daily at 03:00.
    const trace = [at(0, 5), at(240, 45)];
    const report = replay({ policy: policy({ limit: 200 * GiB }), trace, initialSize: 10 * GiB, resizeLatencyMs: 60_000, stepMs: 60_000 });
    assert.equal(report.secondsOutOfSpace, 0);
    assert.ok(report.scheduledResizes >= 2, JSON.stringify(report.resizes));
    assert.deepEqual(report.resizes.filter((r) => r.kind !== 'ScheduledGrow'), []);
  });

  it('a transient spike grows the volume once, not twice', () => {
    // Flat at 4.5Gi of 10Gi; in 3 minutes 6Gi more arrive (more than fits), stay 20 minutes, and go.
    const trace = [at(0, 4.5), at(10, 4.5), at(10.05, 10.5), at(10.4, 10.5), at(10.41, 4.5), at(20, 4.5)];
    const report = replay({ policy: policy({ limit: 100 * GiB }), trace, initialSize: 10 * GiB, resizeLatencyMs: 60_000, stepMs: 5_000 });
    assert.equal(report.secondsOutOfSpace, 0);
    assert.equal(report.resizes.length, 1, JSON.stringify(report.resizes));
  });
});

import assert from 'node:assert/strict';
import { parseMaintenanceWindow } from '../../../controller/policy/index.ts';
import { windowAfter } from '../../../hack/demo-window.ts';

describe('make demo: the maintenance window it sets', () => {
  const cases = [
    '2026-12-02T10:15:00.000Z', '2026-12-02T10:15:14.999Z', '2026-12-02T10:15:15.001Z', '2026-12-02T10:15:59.999Z',
    '2026-12-02T10:59:30.000Z', '2026-12-02T23:59:14.000Z', '2026-12-02T23:59:45.000Z', '2026-12-31T23:59:59.000Z',
  ];
  for (const at of cases) {
    it(`started at ${at}: opens at least 45 s later, at a whole minute, and the engine agrees`, () => {
      const now = new Date(at);
      const window = windowAfter(now, 45_000);
      const lead = window.opensAt.getTime() - now.getTime();
      assert.ok(lead >= 45_000 && lead < 105_000, `lead ${lead} ms`);
      assert.equal(window.opensAt.getUTCSeconds(), 0);
      const parsed = parseMaintenanceWindow({ schedule: window.schedule, duration: window.duration, timezone: window.timezone });
      assert.equal(parsed.contains(now), false);
      assert.equal(parsed.contains(new Date(window.opensAt.getTime() - 1)), false);
      assert.equal(parsed.contains(window.opensAt), true);
      assert.deepEqual(parsed.nextStart(now), window.opensAt);
    });
  }
});

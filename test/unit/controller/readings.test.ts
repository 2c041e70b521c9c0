import assert from 'node:assert/strict';
import { LONG_TERM_HISTORY, RECENT_HISTORY, SampledSeries, keepSampled } from '../../../controller/policy/history.ts';
import type { DiskReading } from '../../../controller/policy/index.ts';
import { ReadingsStore } from '../../../controller/readings.ts';
import type { VolumeReading } from '../../../shared/readings.ts';

const GiB = 1024 ** 3;
const start = Date.UTC(2026, 0, 1);

/** A deterministic sequence of readings: mostly every `every` ms, with jitter, bursts, pauses and a step back in time. */
function readings(count: number, every: number, seed: number): DiskReading[] {
  let state = seed;
  const next = (): number => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const out: DiskReading[] = [];
  let at = start;
  for (let i = 0; i < count; i += 1) {
    const roll = next();
    at += roll < 0.05 ? -every : roll < 0.1 ? 20 * every : roll < 0.3 ? every / 3 : every;
    const total = (10 + Math.floor(i / 500)) * GiB;
    const free = Math.floor(total * (0.2 + 0.6 * next()));
    out.push({ sampledAt: new Date(at), totalBytes: total, freeBytes: free, availableBytes: free - 0.05 * total, ...(i % 7 === 0 ? {} : { inodesTotal: 655_360, inodesFree: 600_000 - i }) });
  }
  return out;
}

describe('controller/readings: the readings history, kept compact', () => {
  for (const [name, options, every] of [['recent', RECENT_HISTORY, 5_000], ['long-term', LONG_TERM_HISTORY, 15 * 60_000]] as const) {
    it(`keeps exactly what keepSampled keeps (${name}: through growth, wrapping and drops)`, () => {
      const compact = new SampledSeries(options);
      const plain: DiskReading[] = [];
      for (const reading of readings(2_000, every, name.length)) {
        compact.keep(reading);
        keepSampled(plain, reading, options);
        assert.equal(compact.length, plain.length);
      }
      // Inode counts not reported come back as undefined.
      assert.deepEqual(compact.toArray(), plain.map((r) => ({ ...r, inodesTotal: r.inodesTotal, inodesFree: r.inodesFree })));
      assert.equal(compact.lastTime(), plain.at(-1)?.sampledAt.getTime());
    });
  }

  it('is empty at first', () => {
    const series = new SampledSeries(RECENT_HISTORY);
    assert.equal(series.length, 0);
    assert.equal(series.lastTime(), undefined);
    assert.deepEqual(series.toArray(), []);
  });

  it('the store ends the recent history with the latest reading, kept or not, and hands out new arrays', () => {
    const store = new ReadingsStore();
    const report = (at: number, availableBytes: number): VolumeReading => ({
      node: 'node-a', namespace: 'db', pvc: 'pg-1', sampledAt: new Date(start + at).toISOString(), status: 'ok',
      usage: { totalBytes: 10 * GiB, freeBytes: availableBytes + GiB, availableBytes, inodesTotal: 100, inodesFree: 50 },
    } as unknown as VolumeReading);
    store.update(report(0, 5 * GiB));
    store.update(report(5_000, 4 * GiB));
    store.update(report(6_000, 3 * GiB));
    const got = store.forPvc('db', 'pg-1');
    assert.deepEqual(got.recent.map((r) => [r.sampledAt.getTime() - start, r.availableBytes]), [[0, 5 * GiB], [5_000, 4 * GiB], [6_000, 3 * GiB]]);
    assert.equal(got.longTerm.length, 1);
    assert.notEqual(store.forPvc('db', 'pg-1').recent, got.recent, 'a new array each time');
    assert.equal(store.rawFrom('db', 'pg-1', 'node-a')?.sampledAt, new Date(start + 6_000).toISOString());
    assert.equal(store.rawFrom('db', 'pg-1', 'node-b'), undefined);
  });
});

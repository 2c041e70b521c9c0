import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mochaHooks, replaySettings } from './hooks.ts';

describe('unit hooks: replaying a property test', function () {
  it('reads the seed and path fast-check printed', function () {
    assert.equal(replaySettings({}), undefined);
    assert.equal(replaySettings({ FC_SEED: ' ' }), undefined);
    assert.deepEqual(replaySettings({ FC_SEED: '-1819918769' }), { seed: -1819918769 });
    assert.deepEqual(replaySettings({ FC_SEED: '42', FC_PATH: '12:3:0' }), { seed: 42, path: '12:3:0' });
    assert.throws(() => replaySettings({ FC_SEED: 'abc' }), /FC_SEED must be an integer/);
  });

  it('makes every property of the run use the seed given', function () {
    const before = fc.readConfigureGlobal();
    const saved = { seed: process.env.FC_SEED, path: process.env.FC_PATH };
    try {
      process.env.FC_SEED = '7';
      delete process.env.FC_PATH;
      mochaHooks.beforeAll();
      const draws: number[][] = [];
      for (let i = 0; i < 2; i += 1) {
        const seen: number[] = [];
        fc.assert(fc.property(fc.integer(), (n) => { seen.push(n); }), { numRuns: 5 });
        draws.push(seen);
      }
      assert.equal(fc.readConfigureGlobal().seed, 7);
      assert.deepEqual(draws[0], draws[1], 'two runs of a property draw the same values');
    } finally {
      fc.resetConfigureGlobal();
      fc.configureGlobal(before);
      if (saved.seed === undefined) delete process.env.FC_SEED; else process.env.FC_SEED = saved.seed;
      if (saved.path === undefined) delete process.env.FC_PATH; else process.env.FC_PATH = saved.path;
    }
  });
});

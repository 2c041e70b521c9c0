import assert from 'node:assert/strict';
import { formatPercent, formatPercentAbove } from '../../../controller/policy/format.ts';

describe('policy/format: percentages in messages', () => {
  it('rounds down to one decimal, so that a level is never shown above what it is', () => {
    assert.equal(formatPercent(80.09), '80.0%');
    assert.equal(formatPercent(95), '95.0%');
  });

  it('says a level is above a threshold with two decimals only when one would show them equal', () => {
    assert.equal(formatPercentAbove(80.03, 80), '80.03%');
    assert.equal(formatPercentAbove(80.12, 80), '80.1%');
    assert.equal(formatPercentAbove(85, 80), '85.0%');
  });
});

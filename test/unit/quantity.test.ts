import assert from 'node:assert/strict';
import { formatBytesHuman, formatQuantity, parseQuantity, parseQuantityBig, roundUpTo } from '../../shared/quantity.ts';
import { InvalidInputError } from '../../shared/errors.ts';

describe('quantity', () => {
  const cases: [string, number][] = [
    ['0', 0], ['1', 1], ['10Gi', 10 * 1024 ** 3], ['1.5Gi', 1.5 * 1024 ** 3], ['64Mi', 64 * 1024 ** 2], ['1Ki', 1024],
    ['1k', 1000], ['1M', 1e6], ['1G', 1e9], ['2e3', 2000], ['2E3', 2000], ['1.5', 2], ['100m', 1], ['+5Mi', 5 * 1024 ** 2],
    ['-1Gi', -(1024 ** 3)], ['.5Ki', 512], ['1Ti', 1024 ** 4], ['32767Gi', 32767 * 1024 ** 3], ['1e0', 1],
  ];
  for (const [text, bytes] of cases) {
    it(`parses ${text} as ${bytes} bytes`, () => {
      assert.equal(parseQuantity(text), bytes);
    });
  }

  for (const bad of ['', 'Gi', '10 Gi', '10gi', '10GB', '1.2.3', 'abc', '10Gii', '1e', '--1', '0x10']) {
    it(`rejects ${JSON.stringify(bad)} with InvalidQuantity`, () => {
      assert.throws(() => parseQuantity(bad, 'spec.storage.limit'), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.equal(err.code, 'InvalidQuantity');
        assert.match(err.message, /^spec\.storage\.limit: /);
        return true;
      });
    });
  }

  it('keeps huge quantities exact as bigint but refuses them as numbers', () => {
    assert.equal(parseQuantityBig('8Ei'), 8n << 60n);
    assert.throws(() => parseQuantity('8Ei'), /larger than/);
  });

  it('formats with the largest exact binary suffix', () => {
    assert.equal(formatQuantity(25 * 1024 ** 3), '25Gi');
    assert.equal(formatQuantity(1536 * 1024 ** 2), '1536Mi');
    assert.equal(formatQuantity(1000), '1000');
    assert.equal(formatQuantity(0), '0');
    assert.equal(formatQuantity(1024 ** 4), '1Ti');
  });

  it('round-trips every formatted value', () => {
    for (const bytes of [1, 1023, 1024, 5 * 1024 ** 2 + 1, 7 * 1024 ** 3, 3 * 1024 ** 4]) {
      assert.equal(parseQuantity(formatQuantity(bytes)), bytes);
    }
  });

  it('renders human sizes and rounds up to a unit', () => {
    assert.equal(formatBytesHuman(18 * 1024 ** 3), '18Gi');
    assert.equal(formatBytesHuman(17.94 * 1024 ** 3), '17.9Gi');
    assert.equal(formatBytesHuman(512), '512');
    assert.equal(roundUpTo(1, 1024), 1024);
    assert.equal(roundUpTo(2048, 1024), 2048);
  });
});

import assert from 'node:assert/strict';
import { parseTimestamp, parseTraceCsv, traceHeader } from '../../../plugin/simulate-trace.ts';
import type { InstanceTrace } from '../../../controller/policy/replay.ts';
import { isoTime } from '../../../shared/time.ts';
import { SimulateInputError } from '../../../plugin/simulate-errors.ts';

/** The trace as CSV (RFC 3339 timestamps), in time order; what `parseTraceCsv` reads back. */
function formatTraceCsv(traces: readonly InstanceTrace[]): string {
  const rows = traces.flatMap(({ instance, trace }) => trace.map((point) => ({ at: point.at.getTime(), instance, used: point.usedBytes })));
  rows.sort((a, b) => a.at - b.at || a.instance.localeCompare(b.instance));
  const lines = rows.map((row) => `${isoTime(new Date(row.at))},${row.instance},${Math.round(row.used)}`);
  return `${[traceHeader.join(','), ...lines].join('\n')}\n`;
}

const header = 'timestamp,instance,used_bytes';

function failure(text: string): { code: string; line: number | undefined; message: string } {
  try {
    parseTraceCsv(text);
  } catch (err) {
    assert.ok(err instanceof SimulateInputError, `expected a SimulateInputError, got ${String(err)}`);
    return { code: err.code, line: err.line, message: err.message };
  }
  assert.fail('the trace was accepted');
}

describe('simulate: trace CSV', () => {
  it('reads unix seconds and RFC 3339, per instance, in the order instances first appear', () => {
    const traces = parseTraceCsv([
      header,
      '1767225600,pg-2,100',
      '2026-01-01T00:00:00Z,pg-1,1000',
      '1767225660.5,pg-2,200',
      '2026-01-01T01:00:30+01:00,pg-1,1.5e3',
      '',
    ].join('\n'));
    assert.deepEqual(traces.map((t) => [t.instance, t.trace.map((p) => [p.at.toISOString(), p.usedBytes])]), [
      ['pg-2', [['2026-01-01T00:00:00.000Z', 100], ['2026-01-01T00:01:00.500Z', 200]]],
      ['pg-1', [['2026-01-01T00:00:00.000Z', 1000], ['2026-01-01T00:00:30.000Z', 1500]]],
    ]);
  });

  it('accepts a byte order mark, CRLF line ends, spaces, quoted fields and blank lines', () => {
    const traces = parseTraceCsv(`\uFEFF${header}\r\n\r\n "1767225600" , "pg-1" , 5 \r\n1767225615,pg-1,6\r\n\r\n`);
    assert.deepEqual(traces.map((t) => t.trace.map((p) => p.usedBytes)), [[5, 6]]);
  });

  it('parses timestamps exactly, and refuses dates that do not exist', () => {
    assert.equal(parseTimestamp('0'), 0);
    assert.equal(parseTimestamp('1767225600.25'), 1_767_225_600_250);
    assert.equal(parseTimestamp('2026-01-01T00:00:00.123Z'), Date.UTC(2026, 0, 1, 0, 0, 0, 123));
    assert.equal(parseTimestamp('2026-01-01 02:00:00+02:00'), Date.UTC(2026, 0, 1));
    assert.equal(parseTimestamp('2025-12-31T20:30:00-03:30'), Date.UTC(2026, 0, 1));
    for (const bad of ['2024-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:00:00', '2026-01-01', '-5', '1e9', 'yesterday', '']) {
      assert.equal(parseTimestamp(bad), undefined, bad);
    }
  });

  const cases: [string, string, string, number | undefined, RegExp][] = [
    ['an empty file', '', 'EmptyTrace', undefined, /the trace is empty/],
    ['only blank lines', '\n\n  \n', 'EmptyTrace', undefined, /the trace is empty/],
    ['a header without rows', `${header}\n`, 'EmptyTrace', undefined, /a header but no rows/],
    ['a wrong header', 'time,pod,bytes\n1,pg-1,2\n', 'InvalidTraceHeader', 1, /^line 1: the header must be timestamp,instance,used_bytes, not "time,pod,bytes"$/],
    ['rows without a header', '1767225600,pg-1,5\n', 'InvalidTraceHeader', 1, /the header must be/],
    ['a row with two fields', `${header}\n1767225600,pg-1,5\n1767225615,pg-1\n`, 'InvalidTraceRow', 3, /^line 3: expected 3 fields \(timestamp,instance,used_bytes\), found 2$/],
    ['a row with four fields', `${header}\n1767225600,pg-1,5,6\n`, 'InvalidTraceRow', 2, /found 4/],
    ['a bad timestamp', `${header}\n1767225600,pg-1,5\nnoon,pg-1,6\n`, 'InvalidTimestamp', 3, /^line 3: timestamp "noon" is neither unix seconds nor RFC 3339/],
    ['a date that does not exist', `${header}\n2026-02-30T00:00:00Z,pg-1,5\n`, 'InvalidTimestamp', 2, /"2026-02-30T00:00:00Z"/],
    ['negative bytes', `${header}\n1767225600,pg-1,5\n1767225615,pg-1,-1\n`, 'InvalidUsedBytes', 3, /^line 3: used_bytes "-1" is not a non-negative number of bytes$/],
    ['bytes that are not a number', `${header}\n1767225600,pg-1,10Gi\n`, 'InvalidUsedBytes', 2, /used_bytes "10Gi"/],
    ['empty bytes', `${header}\n1767225600,pg-1,\n`, 'InvalidUsedBytes', 2, /used_bytes ""/],
    ['too many bytes', `${header}\n1767225600,pg-1,1e20\n`, 'InvalidUsedBytes', 2, /too large/],
    ['an empty instance', `${header}\n1767225600,,5\n`, 'InvalidInstance', 2, /instance "" is not an instance name/],
    ['an instance that is not a name', `${header}\n1767225600,PG 1,5\n`, 'InvalidInstance', 2, /instance "PG 1"/],
    ['an instance going back in time', `${header}\n1767225660,pg-1,5\n1767225600,pg-2,5\n1767225600,pg-1,6\n`, 'TraceOutOfOrder', 4,
      /^line 4: the timestamp of pg-1 goes back before its previous sample \(line 2\); each instance's rows must go forward in time$/],
    ['a repeated sample', `${header}\n1767225600,pg-1,5\n2026-01-01T00:00:00Z,pg-1,6\n`, 'TraceOutOfOrder', 3, /pg-1 repeats its previous sample \(line 2\)/],
    ['a single sample', `${header}\n1767225600,pg-1,5\n`, 'TraceTooShort', 2, /^line 2: pg-1 has a single sample; every instance needs at least two$/],
    ['one instance with a single sample', `${header}\n1767225600,pg-1,5\n1767225600,pg-2,5\n1767225615,pg-1,5\n`, 'TraceTooShort', 3, /pg-2 has a single sample/],
  ];
  for (const [name, text, code, line, message] of cases) {
    it(`refuses ${name} with ${code}${line === undefined ? '' : ` on line ${line}`}`, () => {
      const error = failure(text);
      assert.equal(error.code, code);
      assert.equal(error.line, line);
      assert.match(error.message, message);
    });
  }

  it('writes what it reads', () => {
    const text = `${header}\n2026-01-01T00:00:00Z,pg-1,5\n2026-01-01T00:00:00Z,pg-2,7\n2026-01-01T00:00:15Z,pg-1,6\n2026-01-01T00:00:15Z,pg-2,8\n`;
    assert.equal(formatTraceCsv(parseTraceCsv(text)), text);
  });
});

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { agentApiVersion, dfPercent, dfUsage, parseVolumeEvent, parseVolumeList, ReadingFormatError, type VolumeReading } from '../../../shared/readings.ts';
import { identity } from './fakes.ts';

const reading: VolumeReading = {
  ...identity('pg-1'), status: 'ok', sampledAt: '2025-01-01T00:00:00.000Z', changedAt: '2025-01-01T00:00:00.000Z',
  usage: {
    totalBytes: 100, usedBytes: 10, availableBytes: 90, freeBytes: 90, percentUsed: 10,
    inodesTotal: 10, inodesUsed: 1, inodesFree: 9, inodesPercentUsed: 10,
  },
};
const envelope = { apiVersion: agentApiVersion, node: 'node-a', epoch: 'e', seq: 3 };

describe('agent reading contract', () => {
  const cases: [number, number, number][] = [
    [0, 100, 0], [1, 100, 1], [50, 100, 50], [501, 1000, 51], [999, 1000, 100], [1000, 1000, 100], [5, 0, 0],
    [2 ** 52, 2 ** 53, 50], [2 ** 53 - 1, 2 ** 53, 100],
  ];
  for (const [part, whole, expected] of cases) {
    it(`dfPercent(${part}, ${whole}) = ${expected}`, () => { assert.equal(dfPercent(part, whole), expected); });
  }

  it('dfPercent is the exact ceiling for any size up to 8 PiB', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 2n ** 53n - 1n }), fc.double({ min: 0, max: 1, noNaN: true }), (whole, f) => {
      const part = BigInt(Math.floor(Number(whole) * f));
      const exact = (part * 100n + whole - 1n) / whole;
      return dfPercent(Number(part), Number(whole)) === Number(exact);
    }));
  });

  it('dfPercent of numbers that are not whole (a broken agent) is a plain ceiling, not a crash', () => {
    assert.equal(dfPercent(1.5, 3), 50);
    assert.equal(dfPercent(2.5, 3), 84);
  });

  it('dfUsage derives what the agent sends from the raw numbers alone, so the controller can recompute it', () => {
    const { usedBytes, percentUsed, inodesUsed, inodesPercentUsed, ...raw } = reading.usage ?? assert.fail();
    assert.deepEqual(dfUsage(raw), reading.usage);
    assert.deepEqual({ usedBytes, percentUsed, inodesUsed, inodesPercentUsed }, { usedBytes: 10, percentUsed: 10, inodesUsed: 1, inodesPercentUsed: 10 });
  });

  it('accepts a volume list and every event type', () => {
    const list = parseVolumeList({ ...envelope, kind: 'VolumeList', volumes: [reading] });
    assert.equal(list.volumes[0]?.key, 'db/pg-1');
    assert.equal(parseVolumeEvent({ ...envelope, type: 'SNAPSHOT', volumes: [reading] }).type, 'SNAPSHOT');
    assert.equal(parseVolumeEvent({ ...envelope, type: 'UPDATED', volume: reading }).type, 'UPDATED');
    assert.equal(parseVolumeEvent({ ...envelope, type: 'REMOVED', key: 'db/pg-1', identity: identity('pg-1') }).type, 'REMOVED');
    assert.equal(parseVolumeEvent({ ...envelope, type: 'HEARTBEAT', time: 'now' }).type, 'HEARTBEAT');
    const failed = { ...reading, status: 'error', error: { code: 'ENOENT', message: 'gone' } };
    delete (failed as Partial<VolumeReading>).usage;
    assert.equal(parseVolumeEvent({ ...envelope, type: 'UPDATED', volume: failed }).type, 'UPDATED');
  });

  const bad: [string, unknown, RegExp][] = [
    ['another apiVersion', { ...envelope, apiVersion: 'v2', type: 'HEARTBEAT', time: 'x' }, /apiVersion "v2"/],
    ['an unknown type', { ...envelope, type: 'NOPE' }, /unknown event type "NOPE"/],
    ['a missing seq', { ...envelope, seq: undefined, type: 'HEARTBEAT', time: 'x' }, /seq must be a finite number/],
    ['a bad role', { ...envelope, type: 'UPDATED', volume: { ...reading, role: 'log' } }, /volume.role must be one of data, wal, tablespace/],
    ['ok without usage', { ...envelope, type: 'UPDATED', volume: { ...reading, usage: undefined } }, /volume.usage is required/],
    ['a string byte count', { ...envelope, type: 'SNAPSHOT', volumes: [{ ...reading, usage: { ...reading.usage, usedBytes: '1' } }] }, /volumes\[0\].usage.usedBytes/],
    ['error without detail', { ...envelope, type: 'UPDATED', volume: { ...reading, status: 'error' } }, /volume.error is required/],
  ];
  for (const [name, value, message] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(() => parseVolumeEvent(value), (err: unknown) => err instanceof ReadingFormatError && message.test(err.message));
    });
  }
});

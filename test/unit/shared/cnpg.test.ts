import assert from 'node:assert/strict';
import type { DynamicStorageSpec, VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';
import {
  matchesLabels,
  placeSlot,
  pvcSelector,
  readSlot,
  roleOfPvcRole,
  slotEntries,
  untypedVolumeSlots,
  volumeSlots,
  type BySlot,
} from '../../../shared/cnpg.ts';

const policy = { request: '1Gi', limit: '10Gi' };
const spec: DynamicStorageSpec = {
  cluster: { name: 'pg' },
  storage: policy,
  walStorage: { ...policy, limit: '5Gi' },
  tablespaces: [{ name: 'idx', storage: policy }, { name: 'app', storage: policy }],
};

describe('shared/cnpg: the volume slots of a DynamicStorage', () => {
  it('lists data, WAL, then the tablespaces in order, with field, label, status and PVC labels', () => {
    const status: VolumeSizingStatus = { state: 'Balanced' };
    const slots = volumeSlots(spec, { wal: status, tablespaces: { app: status } });
    assert.deepEqual(slots.map((s) => [s.role, s.tablespace, s.label, s.field]), [
      ['data', undefined, 'data', 'spec.storage'],
      ['wal', undefined, 'wal', 'spec.walStorage'],
      ['tablespace', 'idx', 'tablespace idx', 'spec.tablespaces[0].storage'],
      ['tablespace', 'app', 'tablespace app', 'spec.tablespaces[1].storage'],
    ]);
    assert.deepEqual(slots.map((s) => s.previous), [undefined, status, undefined, status]);
    assert.equal(slots[1]?.policy.limit, '5Gi');
    assert.deepEqual(slots[2]?.selector, { 'cnpg.io/pvcRole': 'PG_TABLESPACE', 'cnpg.io/tablespaceName': 'idx' });
    assert.deepEqual(pvcSelector('pg', { role: 'wal' }), { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_WAL' });
    assert.deepEqual(volumeSlots({ cluster: { name: 'pg' } }), []);
  });

  it('reads unchecked input, keeping only policies that are objects', () => {
    const slots = untypedVolumeSlots({ storage: 'big', walStorage: policy, tablespaces: [null, { storage: policy }, { name: 'idx', storage: policy }, { name: 'x' }] });
    assert.deepEqual(slots.map((s) => [s.role, s.tablespace, s.index, s.field]), [
      ['wal', undefined, undefined, 'spec.walStorage'],
      ['tablespace', undefined, 1, 'spec.tablespaces[1].storage'],
      ['tablespace', 'idx', 2, 'spec.tablespaces[2].storage'],
    ]);
    assert.deepEqual(untypedVolumeSlots('spec'), []);
    assert.deepEqual(untypedVolumeSlots({ tablespaces: { idx: policy } }), []);
  });

  it('places and reads a volume\'s status, and lists what a status holds, tablespaces by name', () => {
    const sizing: BySlot<number> = {};
    placeSlot(sizing, { role: 'tablespace', tablespace: 'b' }, 3);
    placeSlot(sizing, { role: 'data' }, 1);
    placeSlot(sizing, { role: 'tablespace', tablespace: 'a' }, 2);
    assert.deepEqual(sizing, { data: 1, tablespaces: { b: 3, a: 2 } });
    assert.equal(readSlot(sizing, { role: 'tablespace', tablespace: 'a' }), 2);
    assert.equal(readSlot(sizing, { role: 'wal' }), undefined);
    assert.deepEqual(slotEntries(sizing).map((e) => [e.label, e.value]), [['data', 1], ['tablespace a', 2], ['tablespace b', 3]]);
    assert.deepEqual(slotEntries(undefined), []);
  });

  it('maps the pvcRole label to a role, and matches labels', () => {
    assert.equal(roleOfPvcRole('PG_WAL'), 'wal');
    assert.equal(roleOfPvcRole('PG_TABLESPACE'), 'tablespace');
    assert.equal(roleOfPvcRole('constructor'), undefined);
    assert.equal(roleOfPvcRole(undefined), undefined);
    assert.equal(matchesLabels({ a: '1', b: '2' }, { a: '1' }), true);
    assert.equal(matchesLabels({ a: '1' }, { a: '1', b: '2' }), false);
    assert.equal(matchesLabels(undefined, {}), true);
  });
});

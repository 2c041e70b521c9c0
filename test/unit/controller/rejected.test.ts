import assert from 'node:assert/strict';
import { actionResultOf } from '../../../controller/reconcile.ts';
import { readStatusActions } from '../../../controller/history.ts';

describe('a rejected patch', () => {
  it('is Rejected only when the API server refused every patch with 403 or 422 (admission, quota)', () => {
    assert.equal(actionResultOf(2, [403, 422]), 'Rejected');
    assert.equal(actionResultOf(1, [422]), 'Rejected');
    assert.equal(actionResultOf(2, [422]), 'Failed', 'one PVC was patched: a disk is being modified, it counts');
    assert.equal(actionResultOf(1, [500]), 'Failed', 'the API server failed: whether it applied is not known');
    assert.equal(actionResultOf(1, [undefined]), 'Failed', 'no answer at all');
  });

  it('is read back from status like any other result', () => {
    const read = readStatusActions([{ kind: 'EmergencyGrow', from: '1Gi', to: '2Gi', timestamp: '2026-03-01T11:00:00Z', result: 'Rejected' }], new Date('2026-03-01T12:00:00Z'));
    assert.deepEqual(read.problems, []);
    assert.equal(read.records[0]?.result, 'Rejected');
  });
});

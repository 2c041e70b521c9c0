import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import {
  actionsAnnotation, encodeActionsAnnotation, MAX_ANNOTATED_ACTIONS, mergeHistories, readActionsAnnotation, readStatusActions,
} from '../../../controller/history.ts';
import type { ActionRecord } from '../../../controller/policy/index.ts';
import type { SizingAction } from '../../../shared/api/dynamicstorage.generated.ts';
import { GiB } from '../../../shared/quantity.ts';

const now = new Date('2026-03-01T12:00:00Z');

function annotated(text: string): k8s.V1PersistentVolumeClaim {
  return { metadata: { name: 'pg-1', annotations: { [actionsAnnotation]: text } } };
}

describe('action history as read', () => {
  it('drops and reports entries dated in the future, unparsable sizes and unknown values, keeping the rest', () => {
    const actions = [
      { kind: 'EmergencyGrow', from: '1Gi', to: '2Gi', timestamp: '2026-03-01T10:00:00Z', result: 'Success' },
      { kind: 'EmergencyGrow', from: '1Gi', to: '2Gi', timestamp: '2099-01-01T00:00:00Z', result: 'Success' },
      { kind: 'ScheduledGrow', from: 'lots', to: '2Gi', timestamp: '2026-03-01T09:00:00Z' },
      { kind: 'ScheduledGrow', from: '1Gi', to: '2Gi', timestamp: 'yesterday' },
      { kind: 'Shrink', from: '1Gi', to: '2Gi', timestamp: '2026-03-01T09:00:00Z' },
      { kind: 'ScheduledGrow', from: '1Gi', to: '9Pi', timestamp: '2026-03-01T09:00:00Z' },
      { kind: 'ScheduledGrow', from: '1Gi', to: '2Gi', timestamp: '2026-03-01T12:03:00Z' },
    ] as SizingAction[];
    const read = readStatusActions(actions, now);
    assert.deepEqual(read.records.map((r) => r.timestamp.toISOString()), ['2026-03-01T10:00:00.000Z', '2026-03-01T12:03:00.000Z'], 'a few minutes of clock skew is believed');
    assert.deepEqual(read.problems, [
      'recentActions[1]: timestamp 2099-01-01T00:00:00.000Z is in the future; ignored',
      'recentActions[2]: from: "lots" is not a valid quantity (examples: 10Gi, 500Mi, 1Ti); ignored',
      'recentActions[3]: timestamp "yesterday" is not a time; ignored',
      'recentActions[4]: kind "Shrink" is unknown; ignored',
      'recentActions[5]: to: "9Pi" is larger than this product handles (8Pi); ignored',
    ]);
  });

  it('round-trips the PVC annotation, bounded to the budget window and MAX_ANNOTATED_ACTIONS', () => {
    const records: ActionRecord[] = Array.from({ length: 60 }, (_, i) => ({
      kind: 'EmergencyGrow', from: GiB, to: 2 * GiB, timestamp: new Date(now.getTime() - (60 - i) * 60_000), result: 'Success',
    }));
    records.unshift({ kind: 'ScheduledGrow', from: GiB, to: 2 * GiB, timestamp: new Date(now.getTime() - 25 * 3600_000), result: 'Success' });
    const text = encodeActionsAnnotation(records, now);
    assert.ok(text.length < 4096, `small: ${text.length}`);
    const read = readActionsAnnotation(annotated(text), now);
    assert.equal(read.records.length, MAX_ANNOTATED_ACTIONS);
    assert.deepEqual(read.problems, []);
    assert.equal(read.records[0]?.kind, 'EmergencyGrow');
    assert.equal(read.records.at(-1)?.timestamp.getTime(), now.getTime() - 60_000);
  });

  it('reports an annotation that is not JSON, too long, or holds bad entries', () => {
    assert.deepEqual(readActionsAnnotation(annotated('{nope'), now).problems, [`PVC pg-1 annotation ${actionsAnnotation}: not JSON; ignored`]);
    assert.match(readActionsAnnotation(annotated(`[${' '.repeat(9000)}]`), now).problems[0] ?? '', /longer than 8192 bytes/);
    const read = readActionsAnnotation(annotated('[{"k":"EmergencyGrow","t":"2099-01-01T00:00:00Z","f":"1Gi","to":"2Gi"},{"k":"EmergencyGrow","t":"2026-03-01T11:00:00Z","f":"1Gi","to":"2Gi"}, 7]'), now);
    assert.equal(read.records.length, 1);
    assert.equal(read.problems.length, 2);
  });

  it('adds the actions recorded on the PVCs that the status does not know, once', () => {
    const status = readStatusActions([{ kind: 'EmergencyGrow', from: '1Gi', to: '2Gi', timestamp: '2026-03-01T10:00:00Z', result: 'Pending' }], now);
    const onPvc = readActionsAnnotation(annotated(encodeActionsAnnotation([
      { kind: 'EmergencyGrow', from: GiB, to: 2 * GiB, timestamp: new Date('2026-03-01T10:00:00Z'), result: 'Pending' },
      { kind: 'ScheduledGrow', from: GiB / 2, to: GiB, timestamp: new Date('2026-03-01T08:00:00Z'), result: 'Success' },
    ], now)), now);
    const merged = mergeHistories(status, [onPvc, onPvc]);
    assert.deepEqual(merged.records.map((r) => [r.kind, r.result]), [['ScheduledGrow', 'Success'], ['EmergencyGrow', 'Pending']]);
  });
});

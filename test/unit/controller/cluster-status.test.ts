import assert from 'node:assert/strict';
import type { DynamicStorageStatus, VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';
import {
  annotationPatch,
  annotationValue,
  clusterConditionType,
  clusterStatusAnnotation,
  clusterSummary,
  conditionPatch,
  readStatusAnnotation,
  storageSizingBlock,
} from '../../../controller/cluster-status.ts';

const now = new Date('2026-03-01T12:00:00.000Z');

function volume(state: VolumeSizingStatus['state'], extra: Partial<VolumeSizingStatus> = {}): VolumeSizingStatus {
  return {
    effectiveSize: '10Gi', targetSize: '12Gi', actualSizes: { 'pg-1': '10Gi', 'pg-2': '10Gi' }, state, reason: 'R', message: 'words',
    instances: { 'pg-1': { persistentVolumeClaim: 'pg-1', used: '8Gi', percentUsed: 80, diskStatus: 'Reported' } },
    recentActions: [{ kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: '2026-03-01T03:00:00Z', result: 'Success', completedAt: '2026-03-01T03:01:00Z' }],
    lastAction: { kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: '2026-03-01T03:00:00Z', result: 'Success', completedAt: '2026-03-01T03:01:00Z', message: 'm' },
    budget: { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 3, budgetResetsAt: '2026-03-02T03:00:00Z' },
    nextMaintenanceWindow: '2026-03-02T03:00:00Z',
    ...extra,
  };
}

const status = (sizing: DynamicStorageStatus['storageSizing'], extra: Partial<DynamicStorageStatus> = {}): DynamicStorageStatus => ({ protection: 'Full', storageSizing: sizing, ...extra });

describe('storage sizing on the Cluster: the compact block and the summary', () => {
  it('the plugin block keeps per volume the sizes, state, last action, budget and next window, and nothing else', () => {
    const block = storageSizingBlock('pg', { data: volume('Balanced'), wal: volume('PendingGrowth', { nextMaintenanceWindow: '' }), tablespaces: { b: volume('Balanced'), a: volume('Resizing') } });
    assert.equal(block.dynamicStorage, 'pg');
    assert.deepEqual(block.storageSizing.data, {
      effectiveSize: '10Gi', targetSize: '12Gi', actualSizes: { 'pg-1': '10Gi', 'pg-2': '10Gi' }, state: 'Balanced',
      lastAction: { kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: '2026-03-01T03:00:00Z', result: 'Success' },
      budget: { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 3, budgetResetsAt: '2026-03-02T03:00:00Z' },
      nextMaintenanceWindow: '2026-03-02T03:00:00Z',
    });
    assert.equal(block.storageSizing.wal?.nextMaintenanceWindow, undefined, 'no window: left out');
    assert.deepEqual(Object.keys(block.storageSizing.tablespaces ?? {}), ['a', 'b'], 'tablespaces in name order');
    assert.ok(JSON.stringify(block.storageSizing.data).length < 450, `compact: ${JSON.stringify(block.storageSizing.data).length} characters a volume`);
    assert.deepEqual(storageSizingBlock('pg', undefined), { dynamicStorage: 'pg', storageSizing: {} });
  });

  it('the reason is the worst volume state, the message one line per volume', () => {
    const summary = clusterSummary('pg', status({ data: volume('Balanced'), wal: volume('Emergency'), tablespaces: { idx: volume('PendingGrowth') } }));
    assert.equal(summary.reason, 'Emergency');
    assert.equal(summary.status, 'False');
    assert.equal(summary.message, 'data: Balanced (size 10Gi, target 12Gi)\nwal: Emergency (size 10Gi, target 12Gi)\ntablespace idx: PendingGrowth (size 10Gi, target 12Gi)');
    const table: [VolumeSizingStatus['state'][], string, string][] = [
      [['Balanced', 'Balanced'], 'Balanced', 'True'],
      [['Balanced', 'Resizing'], 'Resizing', 'True'],
      [['Resizing', 'PendingGrowth'], 'PendingGrowth', 'True'],
      [['PendingGrowth', 'NeedsGrow'], 'NeedsGrow', 'True'],
      [['NeedsGrow', 'WaitingForDiskStatus'], 'WaitingForDiskStatus', 'Unknown'],
      [['WaitingForDiskStatus', 'AtLimit'], 'AtLimit', 'False'],
      [['AtLimit', 'Emergency'], 'Emergency', 'False'],
    ];
    for (const [[data, wal], reason, conditionStatus] of table) {
      const s = clusterSummary('pg', status({ data: volume(data), wal: volume(wal) }));
      assert.deepEqual([s.reason, s.status], [reason, conditionStatus], `${data} + ${wal}`);
    }
  });

  it('says when there is nothing sized yet, or the policy is invalid', () => {
    assert.deepEqual(clusterSummary('pg', undefined).reason, 'NoSizingStatus');
    assert.deepEqual(clusterSummary('pg', status({})).status, 'Unknown');
    const invalid = clusterSummary('pg', status({ data: volume('Balanced') }, {
      protection: 'None', conditions: [{ type: 'Valid', status: 'False', reason: 'InvalidSize', message: 'spec.storage.limit: not a quantity', lastTransitionTime: '2026-03-01T00:00:00Z' }],
    }));
    assert.deepEqual([invalid.status, invalid.reason], ['False', 'PolicyInvalid']);
    assert.match(invalid.message, /spec\.storage\.limit: not a quantity/);
  });

  it('the revision changes with anything in the block, and only with it', () => {
    const a = clusterSummary('pg', status({ data: volume('Balanced') }));
    assert.equal(clusterSummary('pg', status({ data: volume('Balanced', { message: 'other words', instances: {} }) })).revision, a.revision, 'not in the block');
    assert.notEqual(clusterSummary('pg', status({ data: volume('Balanced', { budget: { availableForPlanned: 1 } }) })).revision, a.revision);
    assert.match(a.revision, /^[0-9a-f]{12}$/);
  });
});

describe('storage sizing on the Cluster: the condition patch', () => {
  const summary = clusterSummary('pg', status({ data: volume('Balanced') }));
  const cnpg = [
    { type: 'Ready', status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready', lastTransitionTime: '2026-03-01T00:00:00Z' },
    { type: 'ContinuousArchiving', status: 'True', reason: 'ContinuousArchivingSuccess', message: 'ok', lastTransitionTime: '2026-03-01T00:00:00Z' },
  ];

  it('appends our condition after the operator\'s, guarded by the resourceVersion read', () => {
    const patch = conditionPatch({ metadata: { resourceVersion: '42' }, status: { conditions: cnpg } }, summary, 3, now);
    assert.deepEqual(patch, [
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/status/conditions/-', value: { type: clusterConditionType, status: 'True', reason: 'Balanced', message: summary.message, lastTransitionTime: '2026-03-01T12:00:00Z', observedGeneration: 3 } },
    ]);
  });

  it('creates the list, or the status, when there is none', () => {
    assert.deepEqual(conditionPatch({ metadata: { resourceVersion: '7' }, status: {} }, summary, undefined, now)?.[1]?.path, '/status/conditions');
    const patch = conditionPatch({ metadata: { resourceVersion: '7' } }, summary, undefined, now);
    assert.deepEqual(patch?.[1], { op: 'add', path: '/status', value: { conditions: [{ type: clusterConditionType, status: 'True', reason: 'Balanced', message: summary.message, lastTransitionTime: '2026-03-01T12:00:00Z' }] } });
  });

  it('replaces our element only, tested by its type at its index; the transition time stays while the status does', () => {
    const ours = { type: clusterConditionType, status: 'True' as const, reason: 'Resizing', message: 'data: Resizing', lastTransitionTime: '2026-02-01T00:00:00Z' };
    const patch = conditionPatch({ metadata: { resourceVersion: '9' }, status: { conditions: [cnpg[0] ?? {}, ours, cnpg[1] ?? {}] } }, summary, 4, now);
    assert.deepEqual(patch, [
      { op: 'test', path: '/status/conditions/1/type', value: clusterConditionType },
      { op: 'replace', path: '/status/conditions/1', value: { type: clusterConditionType, status: 'True', reason: 'Balanced', message: summary.message, lastTransitionTime: '2026-02-01T00:00:00Z', observedGeneration: 4 } },
    ]);
    const emergency = clusterSummary('pg', status({ data: volume('Emergency') }));
    const flipped = conditionPatch({ status: { conditions: [ours] } }, emergency, undefined, now);
    assert.equal((flipped?.[1]?.value as { lastTransitionTime: string }).lastTransitionTime, '2026-03-01T12:00:00Z', 'status changed: new transition time');
  });

  it('writes nothing when the condition already says the same (no churn)', () => {
    const ours = { type: clusterConditionType, status: summary.status, reason: summary.reason, message: summary.message, lastTransitionTime: '2026-02-01T00:00:00Z' };
    assert.equal(conditionPatch({ status: { conditions: [...cnpg, ours] } }, summary, 5, now), undefined);
  });
});

describe('storage sizing on the Cluster: the annotation', () => {
  const summary = clusterSummary('pg', status({ data: volume('PendingGrowth') }));

  it('holds the summary as JSON, written only when it changes, and reads back', () => {
    const patch = annotationPatch({ metadata: { annotations: { other: 'x' } } }, summary);
    assert.deepEqual(patch, { metadata: { annotations: { [clusterStatusAnnotation]: annotationValue(summary) } } });
    assert.equal(annotationPatch({ metadata: { annotations: { [clusterStatusAnnotation]: annotationValue(summary) } } }, summary), undefined);
    assert.deepEqual(readStatusAnnotation({ [clusterStatusAnnotation]: annotationValue(summary) }), { status: 'True', reason: 'PendingGrowth', message: summary.message, revision: summary.revision });
    assert.equal(readStatusAnnotation({ [clusterStatusAnnotation]: 'not json' }), undefined);
    assert.equal(readStatusAnnotation({ [clusterStatusAnnotation]: '{"reason":1}' }), undefined);
    assert.equal(readStatusAnnotation(undefined), undefined);
  });
});

describe('storage sizing on the Cluster: the revision', () => {
  it('is the same for a status read back from the API server (keys sorted) as for the one built in memory', () => {
    const built = status({ data: volume('Balanced') });
    const sortKeys = (v: unknown): unknown => (Array.isArray(v) ? v.map(sortKeys) : v && typeof v === 'object'
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])])) : v);
    const stored = sortKeys(built) as DynamicStorageStatus;
    assert.notEqual(JSON.stringify(stored), JSON.stringify(built));
    assert.equal(clusterSummary('pg', stored).revision, clusterSummary('pg', built).revision);
  });
});

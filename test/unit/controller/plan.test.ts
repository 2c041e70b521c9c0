import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { GiB, MiB, TiB } from '../../../shared/quantity.ts';
import { providerFacts, resizeCondition, resolveVolumePolicy, sizingAction } from '../../../controller/resolve.ts';
import { readStatusActions } from '../../../controller/history.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { newAction, planDynamicStorage, planVolume, trimHistory, volumeStatus, type DynamicStorageSnapshot, type VolumeSnapshot } from '../../../controller/plan.ts';
import { problem, ValidationCodes } from '../../../controller/validation/problems.ts';
import type { DiskReading } from '../../../controller/policy/index.ts';

const now = new Date('2026-03-01T12:00:00Z');

function pvc(name: string, requested: string, capacity: string, status: Partial<k8s.V1PersistentVolumeClaimStatus> = {}): k8s.V1PersistentVolumeClaim {
  return {
    metadata: { name, namespace: 'db', labels: { 'cnpg.io/instanceName': name, 'cnpg.io/cluster': 'pg' } },
    spec: { resources: { requests: { storage: requested } }, storageClassName: 'managed-csi' },
    status: { phase: 'Bound', capacity: { storage: capacity }, ...status },
  };
}

function reading(usedMi: number, sizeMi: number, at = now): DiskReading {
  const total = sizeMi * MiB;
  return { sampledAt: at, totalBytes: total, freeBytes: total - usedMi * MiB, availableBytes: total - usedMi * MiB };
}

function snapshot(overrides: Partial<VolumeSnapshot> = {}): VolumeSnapshot {
  return {
    role: 'data', label: 'data', field: 'spec.storage',
    policy: { request: '64Mi', limit: '1Gi', emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } },
    pvcs: [pvc('pg-1', '64Mi', '64Mi'), pvc('pg-2', '64Mi', '64Mi')],
    storageClass: { metadata: { name: 'managed-csi', annotations: { 'dynamicstorage.cnpg.io/allocation-unit': '1Mi' } }, provisioner: 'disk.csi.azure.com', allowVolumeExpansion: true },
    readings: new Map([['pg-1', { latest: reading(62, 64), recent: [] }], ['pg-2', { latest: reading(20, 64), recent: [] }]]),
    previous: undefined,
    ...overrides,
  };
}

describe('resolveVolumePolicy', () => {
  it('applies the API defaults and treats a missing window as always open', () => {
    const { policy, tuning, roundToAzureTier } = resolveVolumePolicy({ request: '10Gi', limit: '100Gi' }, 'spec.storage');
    assert.equal(policy.request, 10 * GiB);
    assert.equal(policy.limit, 100 * GiB);
    assert.equal(policy.targetBuffer, 20);
    assert.deepEqual(policy.emergencyGrow, {
      enabled: true, criticalThreshold: 95, criticalMinimumFree: GiB, exceedLimitOnEmergency: false, maxActionsPerDay: 4, reservedActionsForEmergency: 1,
    });
    assert.equal(policy.maintenanceWindow.contains(new Date('2026-03-01T12:00:00Z')), true);
    assert.equal(tuning.minimumStepBytes, GiB);
    assert.equal(tuning.maximumStepBytes, undefined);
    assert.equal(tuning.emergencyStepPercent, 25);
    assert.equal(roundToAzureTier, false);
  });

  it('maps the growth extension and a window', () => {
    const { policy, tuning, roundToAzureTier } = resolveVolumePolicy({
      request: '10Gi', limit: '100Gi', maintenanceWindow: { schedule: '0 3 * * *', duration: '2h', timezone: 'UTC' },
      growth: { minimumStep: '2Gi', maximumStep: '20Gi', emergencyStepPercent: 50, roundUpTo: 'AzurePremiumSSDTier' },
    }, 'spec.storage');
    assert.equal(policy.maintenanceWindow.contains(new Date('2026-03-01T12:00:00Z')), false);
    assert.equal(policy.maintenanceWindow.contains(new Date('2026-03-01T04:00:00Z')), true);
    assert.equal(tuning.minimumStepBytes, 2 * GiB);
    assert.equal(tuning.maximumStepBytes, 20 * GiB);
    assert.equal(tuning.emergencyStepPercent, 50);
    assert.equal(roundToAzureTier, true);
  });
});

describe('providerFacts', () => {
  it('knows Azure Disk limits per SKU', () => {
    const premium = providerFacts({ metadata: {}, provisioner: 'disk.csi.azure.com', parameters: { skuName: 'Premium_LRS' } }, false);
    assert.deepEqual(premium, { allocationUnit: GiB, maxVolumeSize: 32_767 * GiB, onlineGrowthBoundary: 4 * TiB });
    const v2 = providerFacts({ metadata: {}, provisioner: 'disk.csi.azure.com', parameters: { skuName: 'PremiumV2_LRS' } }, false);
    assert.deepEqual(v2, { allocationUnit: GiB, maxVolumeSize: 65_536 * GiB });
  });

  it('takes the allocation unit from the StorageClass annotation and billing tiers from the policy', () => {
    const facts = providerFacts({ metadata: { annotations: { 'dynamicstorage.cnpg.io/allocation-unit': '1Mi' } }, provisioner: 'example.com/csi' }, true);
    assert.equal(facts.allocationUnit, MiB);
    assert.equal(facts.billingTiers?.[0], 4 * GiB);
    assert.equal(facts.billingTiers.at(-1), 32_767 * GiB);
    assert.deepEqual(providerFacts(undefined, false), { allocationUnit: GiB });
  });
});

describe('resizeCondition', () => {
  it('reads the shapes Kubernetes writes during and after a resize', () => {
    assert.equal(resizeCondition(pvc('a', '2Gi', '1Gi')), undefined);
    assert.deepEqual(resizeCondition(pvc('a', '2Gi', '1Gi', { conditions: [{ type: 'Resizing', status: 'True' }] })), { phase: 'InProgress' });
    assert.deepEqual(resizeCondition(pvc('a', '2Gi', '1Gi', { allocatedResourceStatuses: { storage: 'NodeResizePending' } })), { phase: 'InProgress' });
    assert.deepEqual(resizeCondition(pvc('a', '2Gi', '1Gi', {
      allocatedResourceStatuses: { storage: 'ControllerResizeInfeasible' },
      conditions: [{ type: 'ControllerResizeError', status: 'True', message: 'disk cannot grow past 4TiB while attached' }],
    })), { phase: 'Infeasible', message: 'disk cannot grow past 4TiB while attached' });
    assert.deepEqual(resizeCondition(pvc('a', '2Gi', '1Gi', {
      allocatedResourceStatuses: { storage: 'ControllerResizeInProgress' },
      conditions: [{ type: 'ControllerResizeError', status: 'True', message: 'throttled' }],
    })), { phase: 'Failed', message: 'throttled' });
  });
});

describe('planVolume and volumeStatus', () => {
  it('grows every PVC of the volume to the same size and reports the action as Pending', () => {
    const plan = planVolume(snapshot(), now);
    assert.equal(plan.decision.action, 'EmergencyGrow');
    assert.deepEqual(plan.decision.patches.map((p) => p.pvcName), ['pg-1', 'pg-2']);
    const record = newAction(plan, now);
    assert.ok(record);
    assert.equal(record.result, 'Pending');
    assert.equal(record.from, 64 * MiB);
    const status = volumeStatus(plan, { record, error: undefined }, now);
    assert.equal(status.state, 'Emergency');
    assert.equal(status.effectiveSize, `${record.to / MiB}Mi`);
    assert.deepEqual(status.actualSizes, { 'pg-1': '64Mi', 'pg-2': '64Mi' });
    assert.deepEqual(status.instances, {
      'pg-1': { persistentVolumeClaim: 'pg-1', diskStatus: 'Reported', used: '62Mi', available: '2Mi', percentUsed: 97 },
      'pg-2': { persistentVolumeClaim: 'pg-2', diskStatus: 'Reported', used: '20Mi', available: '44Mi', percentUsed: 32 },
    });
    assert.deepEqual(status.budget, { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 3, budgetResetsAt: '2026-03-02T12:00:00Z' });
    assert.equal(status.lastAction?.result, 'Pending');
    assert.equal(status.recentActions?.length, 1);
  });

  it('reports percent used as df does (exact integer arithmetic), computed from the raw statfs numbers', () => {
    // 7 of 100 units: 7 / 100 x 100 is 7.000000000000001 in floating point, which a plain ceil would show as 8.
    const plan = planVolume(snapshot({ readings: new Map([['pg-1', { latest: reading(7, 100), recent: [] }]]) }), now);
    const status = volumeStatus(plan, undefined, now);
    assert.equal(status.instances?.['pg-1']?.percentUsed, 7);
  });

  it('keeps the effective size when the patch failed, and says why', () => {
    const plan = planVolume(snapshot(), now);
    const record = newAction(plan, now);
    assert.ok(record);
    record.result = 'Failed';
    const status = volumeStatus(plan, { record, error: 'pg-1: exceeded quota' }, now);
    assert.equal(status.effectiveSize, '64Mi');
    assert.equal(status.lastAction?.result, 'Failed');
    assert.equal(status.lastAction.message, 'pg-1: exceeded quota');
    assert.match(status.message ?? '', /; patching failed: pg-1: exceeded quota$/);
  });

  it('takes the new size as the volume size when some PVCs were patched and another was rejected', () => {
    const plan = planVolume(snapshot(), now);
    const record = newAction(plan, now);
    assert.ok(record);
    record.result = 'Failed';
    const status = volumeStatus(plan, { record, error: 'pg-2: exceeded quota', patched: 1 }, now);
    assert.equal(status.effectiveSize, `${record.to / MiB}Mi`);
    assert.equal(status.lastAction?.result, 'Failed');
  });

  it('settles a pending action as Success once every PVC reports the new capacity', () => {
    const earlier = new Date(now.getTime() - 60_000);
    const previous = { recentActions: [sizingAction({ kind: 'EmergencyGrow', from: 64 * MiB, to: 96 * MiB, timestamp: earlier, result: 'Pending' })] };
    const grown = snapshot({
      pvcs: [pvc('pg-1', '96Mi', '96Mi'), pvc('pg-2', '96Mi', '96Mi')],
      readings: new Map(['pg-1', 'pg-2'].map((name) => [name, { latest: reading(40, 96), recent: [] }])),
      previous,
    });
    const plan = planVolume(grown, now);
    assert.equal(plan.settled?.result, 'Success');
    assert.deepEqual(plan.settled.completedAt, now);
    assert.equal(plan.decision.action, 'NoOp');
    const status = volumeStatus(plan, undefined, now);
    assert.equal(status.lastAction?.result, 'Success');
    assert.equal(status.lastAction.completedAt, '2026-03-01T12:00:00Z');
    assert.equal(status.effectiveSize, '96Mi');
  });

  it('keeps a pending action pending while one PVC is still resizing', () => {
    const previous = { recentActions: [sizingAction({ kind: 'ScheduledGrow', from: 64 * MiB, to: 96 * MiB, timestamp: now, result: 'Pending' })] };
    const plan = planVolume(snapshot({ pvcs: [pvc('pg-1', '96Mi', '96Mi'), pvc('pg-2', '96Mi', '64Mi')], previous }), now);
    assert.equal(plan.settled, undefined);
    assert.equal(plan.decision.state, 'Resizing');
  });

  it('round-trips action records through status and trims history to the budget window', () => {
    const old = new Date(now.getTime() - 25 * 3600_000);
    const { records } = readStatusActions([
      sizingAction({ kind: 'ScheduledGrow', from: GiB, to: 2 * GiB, timestamp: old, result: 'Success' }),
      sizingAction({ kind: 'EmergencyGrow', from: 2 * GiB, to: 3 * GiB, timestamp: now, result: 'Pending', instance: 'pg-1' }),
    ], now);
    assert.deepEqual(records[1], { kind: 'EmergencyGrow', from: 2 * GiB, to: 3 * GiB, timestamp: now, result: 'Pending', completedAt: undefined, instance: 'pg-1' });
    assert.deepEqual(trimHistory(records, now).map((r) => r.kind), ['EmergencyGrow']);
    assert.deepEqual(trimHistory(records.slice(0, 1), now).map((r) => r.kind), ['ScheduledGrow'], 'the last action is always kept');
  });

  it('keeps every action of the budget window at the highest maxActionsPerDay the API allows', () => {
    const actions = Array.from({ length: 50 }, (_, i) => ({
      kind: 'ScheduledGrow' as const, from: GiB, to: 2 * GiB, timestamp: new Date(now.getTime() - (50 - i) * 60_000), result: 'Success' as const,
    }));
    const older = { kind: 'ScheduledGrow' as const, from: GiB, to: 2 * GiB, timestamp: new Date(now.getTime() - 30 * 3600_000), result: 'Success' as const };
    assert.equal(trimHistory([older, ...actions], now).length, 50);
  });
});

describe('planDynamicStorage', () => {
  const object: DynamicStorage = {
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg', namespace: 'db', generation: 2 },
    spec: { cluster: { name: 'pg' }, storage: { request: '64Mi', limit: '1Gi' }, walStorage: { request: '64Mi', limit: '1Gi' } },
  };
  const of = (volumes: readonly VolumeSnapshot[], overrides: Partial<DynamicStorageSnapshot> = {}): DynamicStorageSnapshot => ({
    object, cluster: { metadata: { uid: 'uid-1' } }, problems: [], protection: 'Full', lastValid: { policy: undefined }, volumes, ...overrides,
  });

  it('plans every volume from the snapshot alone, and leaves the snapshot as it was', () => {
    const gathered = of([snapshot()]);
    const before = structuredClone(gathered);
    const planned = planDynamicStorage(gathered, now);
    assert.equal(planned.sized, true);
    assert.equal(planned.plans.length, 1);
    assert.equal(planned.records[0]?.kind, 'EmergencyGrow');
    assert.deepEqual(planned.unplanned, []);
    assert.equal(planned.policyStatus.observedGeneration, 2);
    assert.equal(planned.policyStatus.protection, 'Full');
    assert.deepEqual(planned.policyStatus.conditions?.map((c) => [c.type, c.status, c.lastTransitionTime]), [['Valid', 'True', '2026-03-01T12:00:00Z']]);
    assert.equal(planned.policyStatus.lastValidPolicy?.generation, 2);
    assert.deepEqual(gathered, before);
  });

  it('reports a volume that cannot be planned and plans the others', () => {
    const broken = snapshot({ storageClass: { metadata: { name: 'odd', annotations: { 'dynamicstorage.cnpg.io/allocation-unit': 'lots' } }, provisioner: 'example.com/csi', allowVolumeExpansion: true } });
    const wal = snapshot({ role: 'wal', label: 'wal', field: 'spec.walStorage' });
    const planned = planDynamicStorage(of([broken, wal]), now);
    assert.deepEqual(planned.plans.map((p) => p.snapshot.label), ['wal']);
    assert.deepEqual(planned.unplanned.map((u) => u.volume.label), ['data']);
    assert.equal(planned.records.length, 1);
  });

  it('sizes nothing when the policy is not usable, and says why in the Valid condition', () => {
    const problems = [problem('spec.cluster.name', ValidationCodes.ClusterNotFound, 'Not found', 'pg')];
    const planned = planDynamicStorage(of([], { cluster: null, problems, protection: 'None' }), now);
    assert.equal(planned.sized, false);
    assert.deepEqual(planned.plans, []);
    assert.equal(planned.valid.status, 'False');
    assert.equal(planned.valid.reason, ValidationCodes.ClusterNotFound);
    assert.equal(planned.policyStatus.lastValidPolicy, undefined);
  });
});

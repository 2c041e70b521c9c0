import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { MiB } from '../../../shared/quantity.ts';
import { fallbackWindow, protectionOf, readLastValidPolicy, rememberValidPolicy } from '../../../controller/last-valid.ts';
import { planVolume, volumeStatus, type VolumeSnapshot } from '../../../controller/plan.ts';
import { createControllerMetrics } from '../../../controller/metrics.ts';
import type { DiskReading } from '../../../controller/policy/index.ts';

const now = new Date('2026-03-01T12:00:00Z');

function object(generation: number, schedule: string, status?: DynamicStorage['status']): DynamicStorage {
  return {
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg', namespace: 'db', generation },
    spec: {
      cluster: { name: 'pg' },
      storage: { request: '64Mi', limit: '1Gi', maintenanceWindow: { schedule, duration: '1h' } },
      tablespaces: [{ name: 'idx', storage: { request: '64Mi', limit: '1Gi', maintenanceWindow: { schedule: '0 4 * * *' } } }],
    },
    ...(status ? { status } : {}),
  };
}

describe('the last valid policy', () => {
  it('is recorded when the policy is valid, kept while the generation is the same, and kept through an invalid one', () => {
    const first = rememberValidPolicy(object(1, '0 12 * * *'), 0, now);
    assert.deepEqual(first, { generation: 1, observedAt: '2026-03-01T12:00:00Z', spec: object(1, '0 12 * * *').spec });
    const later = new Date('2026-03-01T13:00:00Z');
    assert.deepEqual(rememberValidPolicy(object(1, '0 12 * * *', { lastValidPolicy: first }), 0, later), first, 'not rewritten at every reconcile');
    assert.deepEqual(rememberValidPolicy(object(2, '0 25 * * *', { lastValidPolicy: first }), 1, later), first, 'an invalid generation keeps the last valid one');
    assert.equal(rememberValidPolicy(object(2, '0 25 * * *'), 1, later), undefined, 'none recorded, none invented');
    assert.equal(rememberValidPolicy(object(3, '0 2 * * *', { lastValidPolicy: first }), 0, later)?.generation, 3);
  });

  it('is checked when read: a hand-edited copy is reported and not used, never thrown', () => {
    const good = { generation: 1, observedAt: '2026-03-01T12:00:00Z', spec: { cluster: { name: 'pg' } } };
    assert.deepEqual(readLastValidPolicy(object(2, 'x', { lastValidPolicy: good })), { policy: good });
    const forged = (lastValidPolicy: unknown): string | undefined =>
      readLastValidPolicy(object(2, 'x', { lastValidPolicy } as DynamicStorage['status'])).problem;
    assert.match(forged({ ...good, generation: 9 }) ?? '', /ahead of the spec/);
    assert.match(forged({ ...good, generation: -1 }) ?? '', /not a generation/);
    assert.match(forged({ ...good, observedAt: 'yesterday' }) ?? '', /not a time/);
    assert.match(forged({ ...good, spec: { cluster: { name: 'other' } } }) ?? '', /another Cluster/);
    assert.match(forged('x') ?? '', /not an object/);
  });

  it('gives each volume its own last valid window, tablespaces by name, checked again', () => {
    const last = { generation: 1, observedAt: '2026-03-01T12:00:00Z', spec: object(1, '0 12 * * *').spec as unknown as Record<string, unknown> };
    assert.deepEqual(fallbackWindow(last, { role: 'data' }), { window: { schedule: '0 12 * * *', duration: '1h' }, generation: 1 });
    assert.deepEqual(fallbackWindow(last, { role: 'tablespace', tablespace: 'idx' }), { window: { schedule: '0 4 * * *' }, generation: 1 });
    assert.equal(fallbackWindow(last, { role: 'tablespace', tablespace: 'other' }), undefined);
    assert.equal(fallbackWindow(last, { role: 'wal' }), undefined);
    const forged = { ...last, spec: { ...last.spec, storage: { maintenanceWindow: { schedule: 'every day' } } } };
    assert.equal(fallbackWindow(forged, { role: 'data' }), undefined, 'an unreadable remembered window is not used');
  });

  it('says what the controller does with the policy: Full, Partial (usable problems), None', () => {
    assert.equal(protectionOf([], true), 'Full');
    assert.equal(protectionOf([{ code: 'InvalidSchedule' }, { code: 'ClusterSizeAboveLimit' }], true), 'Partial');
    assert.equal(protectionOf([{ code: 'InvalidSchedule' }], false), 'None');
    assert.equal(protectionOf([{ code: 'InvalidSchedule' }, { code: 'ClusterAlreadyManaged' }], true), 'None');
  });
});

describe('planning under an invalid window', () => {
  function pvc(name: string): k8s.V1PersistentVolumeClaim {
    return {
      metadata: { name, namespace: 'db', labels: { 'cnpg.io/instanceName': name, 'cnpg.io/cluster': 'pg' } },
      spec: { resources: { requests: { storage: '64Mi' } }, storageClassName: 'managed-csi' },
      status: { phase: 'Bound', capacity: { storage: '64Mi' } },
    };
  }
  // 58 of 64 MiB used: below the critical threshold, well past the target buffer: planned growth, in a window only.
  const reading: DiskReading = { sampledAt: now, totalBytes: 64 * MiB, freeBytes: 6 * MiB, availableBytes: 6 * MiB };
  const snapshot = (overrides: Partial<VolumeSnapshot>): VolumeSnapshot => ({
    role: 'data', label: 'data', field: 'spec.storage',
    policy: { request: '64Mi', limit: '1Gi', maintenanceWindow: { schedule: '0 25 * * *' }, emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } },
    pvcs: [pvc('pg-1')],
    storageClass: { metadata: { name: 'managed-csi', annotations: { 'dynamicstorage.cnpg.io/allocation-unit': '1Mi' } }, provisioner: 'disk.csi.azure.com', allowVolumeExpansion: true },
    readings: new Map([['pg-1', { latest: reading, recent: [] }]]),
    previous: undefined, windowInvalid: true,
    ...overrides,
  });

  it('grows in the last valid policy\'s window when the current one cannot be read, and says so', () => {
    const without = planVolume(snapshot({}), now);
    assert.equal(without.decision.action, 'NoOp', 'no remembered window: planned growth waits (emergencies only)');
    const plan = planVolume(snapshot({ fallbackWindow: { window: { schedule: '0 12 * * *', duration: '1h' }, generation: 3 } }), now);
    assert.equal(plan.decision.action, 'ScheduledGrow', `the remembered window is open at 12:00: ${plan.decision.reason}: ${plan.decision.message}`);
    assert.match(volumeStatus(plan, undefined, now).message ?? '', /the window of the last valid policy \(generation 3\) is used/);
  });
});

describe('policy metrics', () => {
  it('exposes cnpg_dynamic_storage_policy_valid and the protection, and forgets them with the DynamicStorage', async () => {
    const metrics = createControllerMetrics();
    metrics.observePolicy({ namespace: 'db', cluster: 'pg', dynamicStorage: 'pg' }, { valid: false, protection: 'Partial' });
    metrics.observePolicy({ namespace: 'db', cluster: 'ok', dynamicStorage: 'ok' }, { valid: true, protection: 'Full' });
    const text = await metrics.expose();
    assert.match(text, /^cnpg_dynamic_storage_policy_valid\{namespace="db",cluster="pg",dynamicstorage="pg"\} 0$/m);
    assert.match(text, /^cnpg_dynamic_storage_policy_valid\{namespace="db",cluster="ok",dynamicstorage="ok"\} 1$/m);
    assert.match(text, /^cnpg_dynamic_storage_policy_protection\{namespace="db",cluster="pg",dynamicstorage="pg",protection="Partial"\} 1$/m);
    assert.match(text, /^cnpg_dynamic_storage_policy_protection\{namespace="db",cluster="pg",dynamicstorage="pg",protection="None"\} 0$/m);
    metrics.forgetCluster('db', 'pg');
    assert.doesNotMatch(await metrics.expose(), /cluster="pg"/);
  });
});

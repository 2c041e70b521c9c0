import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { runCli, type CliIo } from '../../../plugin/cli.ts';
import {
  statusSourceOf,
  buildStatusModel,
  humanDuration,
  makeStatusSubcommand,
  parseStatusArgs,
  relativeTime,
  renderStatus,
  selectDynamicStorage,
  StatusReadError,
  type LoadedObjects,
  type StatusModel,
} from '../../../plugin/status.ts';
import type { DynamicStorage, InstanceVolumeStatus, VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';

const valid = { type: 'Valid', status: 'True' as const, reason: 'PolicyValid', message: 'the policy passed every check', lastTransitionTime: '2026-02-01T00:00:00Z' };

function reading(used: string, available: string, percentUsed: number, pvc: string): InstanceVolumeStatus {
  return { persistentVolumeClaim: pvc, used, available, percentUsed, diskStatus: 'Reported' };
}

function dynamicStorage(name: string, namespace: string, spec: Omit<DynamicStorage['spec'], 'cluster'>, status?: DynamicStorage['status']): DynamicStorage {
  return {
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage',
    metadata: { name, namespace, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { cluster: { name }, ...spec },
    ...(status ? { status } : {}),
  };
}

function cluster(name: string, namespace: string, size = '10Gi'): { metadata: { name: string; namespace: string }; spec: { instances: number; storage: { size: string } } } {
  return { metadata: { name, namespace }, spec: { instances: 3, storage: { size } } };
}

function pvc(name: string, instance: string, role: string, size: { capacity?: string; request: string; tablespace?: string }): k8s.V1PersistentVolumeClaim {
  return {
    metadata: {
      name,
      labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': instance, 'cnpg.io/pvcRole': role, ...(size.tablespace ? { 'cnpg.io/tablespaceName': size.tablespace } : {}) },
    },
    spec: { resources: { requests: { storage: size.request } } },
    ...(size.capacity ? { status: { capacity: { storage: size.capacity } } } : {}),
  };
}

function render(ds: DynamicStorage, now: Date, pvcs: k8s.V1PersistentVolumeClaim[] = []): string {
  return renderStatus(buildStatusModel(ds, cluster(ds.spec.cluster.name, ds.metadata?.namespace ?? 'db'), pvcs, now), now);
}

// The brief's own example (docs of `kubectl cnpg storage status`), with its data.
const briefNow = new Date('2026-02-08T13:00:00Z');
const briefStatus: VolumeSizingStatus = {
  effectiveSize: '25Gi', targetSize: '25Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'the fullest volume is 72% used, within the 20% buffer',
  actualSizes: { 'my-cluster-1': '25Gi', 'my-cluster-2': '25Gi', 'my-cluster-3': '25Gi' },
  instances: {
    'my-cluster-1': reading('18Gi', '7Gi', 72, 'my-cluster-1'),
    'my-cluster-2': reading('17Gi', '8Gi', 68, 'my-cluster-2'),
    'my-cluster-3': reading('18Gi', '7Gi', 72, 'my-cluster-3'),
  },
  budget: { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 1, budgetResetsAt: '2026-02-08T15:30:00Z' },
  nextMaintenanceWindow: '2026-02-09T03:00:00Z',
};
const briefPolicy = dynamicStorage('my-cluster', 'default',
  { storage: { request: '10Gi', limit: '100Gi', targetBuffer: 20, maintenanceWindow: { schedule: '0 3 * * *', duration: '2h', timezone: 'UTC' } } },
  { observedGeneration: 1, conditions: [valid], storageSizing: { data: briefStatus } });

const briefOutput = `Cluster: my-cluster
Dynamic Sizing: Enabled

Data Volume:
  Request:        10Gi
  Limit:          100Gi
  Target Buffer:  20%
  Effective Size: 25Gi
  State:          Balanced

  Instance        PVC Size    Used     Available   Usage%
  my-cluster-1    25Gi        18Gi     7Gi         72%
  my-cluster-2    25Gi        17Gi     8Gi         68%
  my-cluster-3    25Gi        18Gi     7Gi         72%

Budget:
  Max Actions/Day:      4
  Used (24h):           1
  Available (Planned):  2
  Available (Emergency): 1
  Resets At:            2026-02-08T15:30:00Z

Next Maintenance Window: 2026-02-09T03:00:00Z (in 14h)
`;

describe('kubectl cnpg storage status: render', () => {
  it('reproduces the brief example exactly, with extras after State and budget and window inside the volume block', () => {
    assert.equal(render(briefPolicy, briefNow), `Cluster: my-cluster
Dynamic Sizing: Enabled
DynamicStorage: default/my-cluster

Data Volume:
  Request:        10Gi
  Limit:          100Gi
  Target Buffer:  20%
  Effective Size: 25Gi
  State:          Balanced
  Reason:         WithinTargetBuffer: the fullest volume is 72% used, within the 20% buffer
  Window:         0 3 * * * UTC for 2h

  Instance        PVC Size    Used     Available   Usage%
  my-cluster-1    25Gi        18Gi     7Gi         72%
  my-cluster-2    25Gi        17Gi     8Gi         68%
  my-cluster-3    25Gi        18Gi     7Gi         72%

  Budget:
    Max Actions/Day:      4
    Used (24h):           1
    Available (Planned):  2
    Available (Emergency): 1
    Resets At:            2026-02-08T15:30:00Z

  Next Maintenance Window: 2026-02-09T03:00:00Z (in 14h)
`);
  });

  it('keeps every line of the brief, in its order (the per-volume budget and window indented one level)', () => {
    const output = render(briefPolicy, briefNow).split('\n');
    let budget = false;
    let from = 0;
    for (const line of briefOutput.split('\n').filter((l) => l !== '')) {
      if (line === 'Budget:') budget = true;
      const expected = budget || line.startsWith('Next Maintenance Window') ? `  ${line}` : line;
      const index = output.indexOf(expected, from);
      assert.ok(index >= from, `line ${JSON.stringify(expected)} in order`);
      from = index + 1;
    }
  });

  it('prints data, WAL and tablespace volumes of a multi-instance Cluster, widening columns for long names', () => {
    const now = new Date('2026-02-07T02:30:00Z'); // a Saturday, 03:30 in Paris: inside the data window (02:00-06:00)
    const name = 'warehouse-analytics';
    const ds = dynamicStorage(name, 'db', {
      storage: { request: '100Gi', limit: '2Ti', targetBuffer: 25, maintenanceWindow: { schedule: '0 2 * * 6', duration: '4h', timezone: 'Europe/Paris' } },
      walStorage: { request: '10Gi', limit: '50Gi', emergencyGrow: { maxActionsPerDay: 6, reservedActionsForEmergency: 2 } },
      tablespaces: [{ name: 'archive', storage: { request: '20Gi', limit: '200Gi', maintenanceWindow: {} } }],
    }, {
      observedGeneration: 1, conditions: [valid],
      storageSizing: {
        data: {
          effectiveSize: '512Gi', targetSize: '512Gi', state: 'NeedsGrow', reason: 'BelowTargetBuffer', message: 'growing to 512Gi in the maintenance window',
          actualSizes: { [`${name}-1`]: '400Gi', [`${name}-2`]: '400Gi', [`${name}-10`]: '400Gi' },
          instances: {
            [`${name}-1`]: reading('311.4Gi', '76.6Gi', 81, `${name}-1`),
            [`${name}-2`]: reading('309Gi', '79Gi', 80, `${name}-2`),
            [`${name}-10`]: reading('290.2Gi', '97.8Gi', 75, `${name}-10`),
          },
          lastAction: { kind: 'ScheduledGrow', from: '400Gi', to: '512Gi', timestamp: '2026-02-07T02:29:00Z', result: 'Pending' },
          budget: { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 3, budgetResetsAt: '2026-02-08T02:29:00Z' },
        },
        wal: {
          effectiveSize: '12Gi', targetSize: '12Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'within the buffer',
          actualSizes: { [`${name}-1`]: '12Gi', [`${name}-2`]: '12Gi', [`${name}-10`]: '12Gi' },
          instances: {
            [`${name}-1`]: reading('3.1Gi', '8.5Gi', 27, `${name}-1-wal`),
            [`${name}-2`]: reading('2.9Gi', '8.7Gi', 25, `${name}-2-wal`),
            [`${name}-10`]: reading('3Gi', '8.6Gi', 26, `${name}-10-wal`),
          },
          budget: { actionsLast24h: 0, availableForPlanned: 4, availableForEmergency: 6 },
        },
        tablespaces: {
          archive: {
            effectiveSize: '20Gi', targetSize: '24Gi', state: 'PendingGrowth', reason: 'OutsideMaintenanceWindow', message: 'growth to 24Gi waits for the window at 03:00 UTC',
            actualSizes: { [`${name}-1`]: '20Gi', [`${name}-2`]: '20Gi', [`${name}-10`]: '20Gi' },
            instances: {
              [`${name}-1`]: reading('16.8Gi', '2.6Gi', 87, `${name}-1-tbs-archive`),
              [`${name}-2`]: reading('16.8Gi', '2.6Gi', 87, `${name}-2-tbs-archive`),
              [`${name}-10`]: reading('16.7Gi', '2.7Gi', 86, `${name}-10-tbs-archive`),
            },
            budget: { actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4 },
          },
        },
      },
    });
    assert.equal(render(ds, now), `Cluster: warehouse-analytics
Dynamic Sizing: Enabled
DynamicStorage: db/warehouse-analytics

Data Volume:
  Request:        100Gi
  Limit:          2Ti
  Target Buffer:  25%
  Effective Size: 512Gi
  State:          NeedsGrow
  Reason:         BelowTargetBuffer: growing to 512Gi in the maintenance window
  Last Action:    ScheduledGrow 400Gi -> 512Gi, Pending, 2026-02-07T02:29:00Z (60s ago)
  Window:         0 2 * * 6 Europe/Paris for 4h

  Instance                PVC Size    Used     Available   Usage%
  warehouse-analytics-1   400Gi       311.4Gi  76.6Gi      81%
  warehouse-analytics-2   400Gi       309Gi    79Gi        80%
  warehouse-analytics-10  400Gi       290.2Gi  97.8Gi      75%

  Budget:
    Max Actions/Day:      4
    Used (24h):           1
    Available (Planned):  2
    Available (Emergency): 3
    Resets At:            2026-02-08T02:29:00Z

  Next Maintenance Window: 2026-02-14T01:00:00Z (in 6d22h); open now, closes 2026-02-07T05:00:00Z (in 150m)

WAL Volume:
  Request:        10Gi
  Limit:          50Gi
  Target Buffer:  20%
  Effective Size: 12Gi
  State:          Balanced
  Reason:         WithinTargetBuffer: within the buffer

  Instance                PVC Size    Used     Available   Usage%
  warehouse-analytics-1   12Gi        3.1Gi    8.5Gi       27%
  warehouse-analytics-2   12Gi        2.9Gi    8.7Gi       25%
  warehouse-analytics-10  12Gi        3Gi      8.6Gi       26%

  Budget:
    Max Actions/Day:      6
    Used (24h):           0
    Available (Planned):  4
    Available (Emergency): 6
    Resets At:            -

  Next Maintenance Window: always open

Tablespace archive:
  Request:        20Gi
  Limit:          200Gi
  Target Buffer:  20%
  Effective Size: 20Gi
  State:          PendingGrowth
  Reason:         OutsideMaintenanceWindow: growth to 24Gi waits for the window at 03:00 UTC
  Window:         0 3 * * * UTC for 2h

  Instance                PVC Size    Used     Available   Usage%
  warehouse-analytics-1   20Gi        16.8Gi   2.6Gi       87%
  warehouse-analytics-2   20Gi        16.8Gi   2.6Gi       87%
  warehouse-analytics-10  20Gi        16.7Gi   2.7Gi       86%

  Budget:
    Max Actions/Day:      4
    Used (24h):           0
    Available (Planned):  3
    Available (Emergency): 4
    Resets At:            -

  Next Maintenance Window: 2026-02-07T03:00:00Z (in 30m)
`);
  });

  it('says "always open" when a volume has no maintenance window', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const ds = dynamicStorage('pg', 'db', { storage: { request: '5Gi', limit: '20Gi' } }, {
      observedGeneration: 1, conditions: [valid],
      storageSizing: {
        data: {
          effectiveSize: '5Gi', targetSize: '5Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'within the buffer',
          actualSizes: { 'pg-1': '5Gi' }, instances: { 'pg-1': reading('1.2Gi', '3.7Gi', 25, 'pg-1') },
          budget: { actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4 },
        },
      },
    });
    assert.equal(render(ds, now), `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: db/pg

Data Volume:
  Request:        5Gi
  Limit:          20Gi
  Target Buffer:  20%
  Effective Size: 5Gi
  State:          Balanced
  Reason:         WithinTargetBuffer: within the buffer

  Instance        PVC Size    Used     Available   Usage%
  pg-1            5Gi         1.2Gi    3.7Gi       25%

  Budget:
    Max Actions/Day:      4
    Used (24h):           0
    Available (Planned):  3
    Available (Emergency): 4
    Resets At:            -

  Next Maintenance Window: always open
`);
  });

  it('says a partly invalid policy still protects the volumes, with the last valid generation', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const ds = dynamicStorage('pg', 'db', { storage: { request: '5Gi', limit: '20Gi', maintenanceWindow: { schedule: '0 3 * *' } } }, {
      observedGeneration: 2, protection: 'Partial',
      lastValidPolicy: { generation: 1, observedAt: '2026-02-01T00:00:00Z', spec: { cluster: { name: 'pg' } } },
      conditions: [{
        type: 'Valid', status: 'False', reason: 'InvalidSchedule', lastTransitionTime: '2026-02-08T12:00:00Z',
        message: 'spec.storage.maintenanceWindow.schedule: Invalid value: "0 3 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week',
      }],
    });
    const text = render(ds, now, [pvc('pg-1', 'pg-1', 'PG_DATA', { capacity: '5Gi', request: '5Gi' })]);
    assert.match(text, /\n!! Valid=False \(InvalidSchedule\): the policy is partly invalid; the volumes are still sized and emergencies still grow them \(a window that cannot be read is taken from the last valid policy \(generation 1\) when it had one\); fix it:\n/);
    assert.doesNotMatch(text, /nothing is resized/);
  });

  it('prints Valid=False prominently, with the condition message', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const ds = dynamicStorage('pg', 'db', { storage: { request: '5Gi', limit: '20Gi', maintenanceWindow: { schedule: '0 3 * *' } } }, {
      observedGeneration: 1,
      conditions: [{
        type: 'Valid', status: 'False', reason: 'InvalidSchedule', lastTransitionTime: '2026-02-08T12:00:00Z',
        message: 'spec.storage.maintenanceWindow.schedule: Invalid value: "0 3 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week',
      }],
    });
    assert.equal(render(ds, now, [pvc('pg-1', 'pg-1', 'PG_DATA', { capacity: '5Gi', request: '5Gi' })]), `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: db/pg

!! Valid=False (InvalidSchedule): the policy is not valid; nothing is resized until it is fixed:
!!   spec.storage.maintenanceWindow.schedule: Invalid value: "0 3 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week

Data Volume:
  Request:        5Gi
  Limit:          20Gi
  Target Buffer:  20%
  Effective Size: -
  State:          not reported yet
  Window:         0 3 * * UTC for 2h

  Instance        PVC Size    Used     Available   Usage%
  pg-1            5Gi         -        -           -

  Budget:
    Max Actions/Day:      4
    Used (24h):           -
    Available (Planned):  -
    Available (Emergency): -
    Resets At:            -

  Next Maintenance Window: unknown
`);
  });

  it('prints Dynamic Sizing: Disabled and how to enable it for a Cluster without a DynamicStorage', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const model = buildStatusModel(undefined, cluster('pg', 'db', '10Gi'), [], now);
    assert.equal(renderStatus(model, now), `Cluster: pg
Dynamic Sizing: Disabled

CloudNativePG keeps the sizes set in the Cluster (spec.storage.size: 10Gi).
To enable dynamic sizing, create a DynamicStorage in namespace "db" with spec.cluster.name: pg
and a request and limit per volume (kubectl explain dynamicstorage.spec).
`);
  });

  it('prints an emergency with its last action, the instance it covered and why it failed', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const ds = dynamicStorage('pg', 'db', {
      storage: { request: '10Gi', limit: '40Gi', maintenanceWindow: { schedule: '0 3 * * 0', duration: '2h', timezone: 'UTC' }, emergencyGrow: { maxActionsPerDay: 3 } },
    }, {
      observedGeneration: 1, conditions: [valid],
      storageSizing: {
        data: {
          effectiveSize: '20Gi', targetSize: '25Gi', state: 'Emergency', reason: 'CriticalUsage', message: 'pg-2 is 97% used (critical at 95%)',
          actualSizes: { 'pg-1': '20Gi', 'pg-2': '20Gi' },
          instances: { 'pg-1': reading('14.1Gi', '5.3Gi', 73, 'pg-1'), 'pg-2': reading('18.9Gi', '0.5Gi', 97, 'pg-2') },
          lastAction: {
            kind: 'EmergencyGrow', instance: 'pg-2', from: '20Gi', to: '25Gi', timestamp: '2026-02-08T12:55:00Z', completedAt: '2026-02-08T12:56:30Z',
            result: 'Failed', message: 'persistentvolumeclaims "pg-2" is forbidden: only dynamically provisioned pvc can be resized',
          },
          recentActions: [],
          budget: { actionsLast24h: 2, availableForPlanned: 0, availableForEmergency: 1, budgetResetsAt: '2026-02-09T01:10:00Z' },
        },
      },
    });
    assert.equal(render(ds, now), `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: db/pg

Data Volume:
  Request:        10Gi
  Limit:          40Gi
  Target Buffer:  20%
  Effective Size: 20Gi
  State:          Emergency
  Reason:         CriticalUsage: pg-2 is 97% used (critical at 95%)
  Last Action:    EmergencyGrow of pg-2 20Gi -> 25Gi, Failed, 2026-02-08T12:55:00Z (5m ago)
                  completed 2026-02-08T12:56:30Z (after 90s)
                  persistentvolumeclaims "pg-2" is forbidden: only dynamically provisioned pvc can be resized
  Window:         0 3 * * 0 UTC for 2h

  Instance        PVC Size    Used     Available   Usage%
  pg-1            20Gi        14.1Gi   5.3Gi       73%
  pg-2            20Gi        18.9Gi   0.5Gi       97%

  Budget:
    Max Actions/Day:      3
    Used (24h):           2
    Available (Planned):  0
    Available (Emergency): 1
    Resets At:            2026-02-09T01:10:00Z

  Next Maintenance Window: 2026-02-15T03:00:00Z (in 6d14h)
`);
  });

  it('shows missing readings as "-" with their disk status, and PVC sizes from the PVCs when the status lacks them', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const ds = dynamicStorage('pg', 'db', { storage: { request: '10Gi', limit: '40Gi' }, walStorage: { request: '2Gi', limit: '8Gi' } }, {
      observedGeneration: 1, conditions: [valid],
      storageSizing: {
        data: {
          effectiveSize: '10Gi', targetSize: '10Gi', state: 'WaitingForDiskStatus', reason: 'DiskStatusMissing', message: 'no usable reading for pg-2, pg-3',
          actualSizes: { 'pg-1': '10Gi' },
          instances: { 'pg-1': reading('4Gi', '5.7Gi', 42, 'pg-1'), 'pg-2': { persistentVolumeClaim: 'pg-2', diskStatus: 'DiskStatusStale' } },
          budget: { actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4 },
        },
      },
    });
    ds.metadata = { ...ds.metadata, generation: 2 };
    const pvcs = [
      pvc('pg-1', 'pg-1', 'PG_DATA', { capacity: '10Gi', request: '10Gi' }),
      pvc('pg-2', 'pg-2', 'PG_DATA', { capacity: '10Gi', request: '10Gi' }),
      pvc('pg-3', 'pg-3', 'PG_DATA', { request: '12Gi' }),
      pvc('pg-1-wal', 'pg-1', 'PG_WAL', { capacity: '2Gi', request: '2Gi' }),
      pvc('pg-1-tbs-other', 'pg-1', 'PG_TABLESPACE', { capacity: '1Gi', request: '1Gi', tablespace: 'other' }),
    ];
    assert.equal(render(ds, now, pvcs), `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: db/pg

Warning: The status is for generation 1 of the policy; generation 2 is not processed yet.

Data Volume:
  Request:        10Gi
  Limit:          40Gi
  Target Buffer:  20%
  Effective Size: 10Gi
  State:          WaitingForDiskStatus
  Reason:         DiskStatusMissing: no usable reading for pg-2, pg-3

  Instance        PVC Size    Used     Available   Usage%  Disk Status
  pg-1            10Gi        4Gi      5.7Gi       42%     Reported
  pg-2            10Gi        -        -           -       DiskStatusStale
  pg-3            12Gi        -        -           -       -

  Budget:
    Max Actions/Day:      4
    Used (24h):           0
    Available (Planned):  3
    Available (Emergency): 4
    Resets At:            -

  Next Maintenance Window: always open

WAL Volume:
  Request:        2Gi
  Limit:          8Gi
  Target Buffer:  20%
  Effective Size: -
  State:          not reported yet

  Instance        PVC Size    Used     Available   Usage%
  pg-1            2Gi         -        -           -

  Budget:
    Max Actions/Day:      4
    Used (24h):           -
    Available (Planned):  -
    Available (Emergency): -
    Resets At:            -

  Next Maintenance Window: always open
`);
  });

  it('warns when the controller has not written a status and when the Cluster is missing', () => {
    const now = new Date('2026-02-08T13:00:00Z');
    const ds = dynamicStorage('pg', 'db', { storage: { request: '10Gi', limit: '40Gi' } });
    const output = renderStatus(buildStatusModel(ds, undefined, [], now), now);
    assert.equal(output.split('\n').slice(0, 7).join('\n'), `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: db/pg

Warning: Cluster "pg" not found in namespace "db".
Warning: The controller has not written a status yet: is it running?
`);
    assert.match(output, /\n {2}No volumes found for this role yet\.\n/);
  });
});

describe('kubectl cnpg storage status: helpers', () => {
  it('prints durations as kubectl does', () => {
    const cases: [number, string][] = [
      [0, '0s'], [59_000, '59s'], [119_000, '119s'], [150_000, '2m30s'], [600_000, '10m'], [179 * 60_000, '179m'],
      [(5 * 60 + 30) * 60_000, '5h30m'], [14 * 3_600_000 + 59 * 60_000, '14h'], [47 * 3_600_000, '47h'], [(6 * 24 + 22) * 3_600_000, '6d22h'],
      [30 * 86_400_000, '30d'], [800 * 86_400_000, '2y70d'], [3000 * 86_400_000, '8y'],
    ];
    for (const [ms, text] of cases) assert.equal(humanDuration(ms), text, String(ms));
    const now = new Date('2026-02-08T13:00:00Z');
    assert.equal(relativeTime('2026-02-09T03:00:00Z', now), 'in 14h');
    assert.equal(relativeTime('2026-02-08T12:57:00Z', now), '3m ago');
    assert.equal(relativeTime('2026-02-08T13:00:00Z', now), 'now');
    assert.equal(relativeTime('soon', now), 'soon');
  });

  it('selects the DynamicStorage the controller honours when several name the Cluster', () => {
    const a = dynamicStorage('pg', 'db', { storage: { request: '1Gi', limit: '2Gi' } });
    const b = { ...dynamicStorage('pg', 'db', { storage: { request: '1Gi', limit: '2Gi' } }), metadata: { name: 'pg-older', creationTimestamp: '2025-12-01T00:00:00Z' } };
    const other = { ...dynamicStorage('other', 'db', { storage: { request: '1Gi', limit: '2Gi' } }) };
    const { selected, others } = selectDynamicStorage([a, other, b], 'pg');
    assert.equal(selected?.metadata?.name, 'pg-older');
    assert.deepEqual(others.map((o) => o.metadata?.name), ['pg']);
    assert.equal(selectDynamicStorage([other], 'pg').selected, undefined);
  });

  it('parses its arguments', () => {
    assert.deepEqual(parseStatusArgs(['pg', '-n', 'db', '-o', 'yaml', '--kubeconfig=/k', '--context', 'c']),
      { cluster: 'pg', namespace: 'db', output: 'yaml', kubeconfig: '/k', context: 'c' });
    assert.deepEqual(parseStatusArgs(['--namespace=db', 'pg']), { cluster: 'pg', namespace: 'db', output: 'text', kubeconfig: undefined, context: undefined });
    assert.throws(() => parseStatusArgs([]), /missing the Cluster name/);
    assert.throws(() => parseStatusArgs(['pg', 'other']), /one Cluster at a time/);
    assert.throws(() => parseStatusArgs(['pg', '-o', 'wide']), /--output must be json or yaml/);
    assert.throws(() => parseStatusArgs(['pg', '-n']), /-n needs a value/);
    assert.throws(() => parseStatusArgs(['pg', '--watch']), /unknown argument "--watch"/);
  });
});

function memoryIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out, err,
    stdout: (text) => { out.push(text); },
    stderr: (text) => { err.push(text); },
    readFile: () => Promise.reject(new Error('unused')),
    readStdin: () => Promise.resolve(''),
    listDirectory: () => Promise.resolve(undefined),
  };
}

describe('kubectl cnpg storage status: command', () => {
  const now = new Date('2026-02-08T13:00:00Z');
  const loaded = (objects: Partial<LoadedObjects>): LoadedObjects => ({
    namespace: 'db', dynamicStorages: [], cluster: undefined, clusterUnreadable: undefined, pvcs: [], ...objects,
  });
  const run = async (args: string[], load: () => Promise<LoadedObjects>): Promise<{ code: number; out: string; err: string }> => {
    const io = memoryIo();
    const code = await runCli(args, io, [makeStatusSubcommand({ load, now: () => now })]);
    return { code, out: io.out.join(''), err: io.err.join('') };
  };

  it('is listed in the command table', async () => {
    const io = memoryIo();
    assert.equal(await runCli(['--help'], io), 0);
    assert.match(io.out.join(''), /\n {2}status {4}show the dynamic sizing of a Cluster's volumes/);
  });

  it('exits 1 with a clear message when neither the Cluster nor a DynamicStorage exists', async () => {
    const result = await run(['status', 'pg', '-n', 'db'], () => Promise.resolve(loaded({})));
    assert.deepEqual(result, { code: 1, out: '', err: 'kubectl cnpg storage status: Cluster "pg" not found in namespace "db", and no DynamicStorage names it\n' });
  });

  it('exits 1 with the API server\'s message when reading fails', async () => {
    const result = await run(['status', 'pg'], () => Promise.reject(new StatusReadError('cannot list DynamicStorage objects in namespace "db": HTTP 403 Forbidden: no')));
    assert.deepEqual(result, { code: 1, out: '', err: 'kubectl cnpg storage status: cannot list DynamicStorage objects in namespace "db": HTTP 403 Forbidden: no\n' });
    const refused = await run(['status', 'pg'], () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6443')));
    assert.equal(refused.err, 'kubectl cnpg storage status: cannot read from the API server: connect ECONNREFUSED 127.0.0.1:6443\n');
  });

  it('exits 2 on wrong usage', async () => {
    const result = await run(['status'], () => Promise.resolve(loaded({})));
    assert.equal(result.code, 2);
    assert.match(result.err, /^kubectl cnpg storage status: missing the Cluster name\n\nUsage: kubectl cnpg storage status <cluster>/);
  });

  it('exits 0 for a Cluster without a DynamicStorage and for an invalid policy', async () => {
    const disabled = await run(['status', 'pg'], () => Promise.resolve(loaded({ cluster: cluster('pg', 'db') })));
    assert.equal(disabled.code, 0);
    assert.match(disabled.out, /^Cluster: pg\nDynamic Sizing: Disabled\n/);
    const invalid = dynamicStorage('pg', 'db', { storage: { request: '5Gi', limit: '20Gi' } }, {
      observedGeneration: 1, conditions: [{ ...valid, status: 'False', reason: 'ClusterNotFound', message: 'the Cluster does not exist' }],
    });
    const result = await run(['status', 'pg'], () => Promise.resolve(loaded({ dynamicStorages: [invalid] })));
    assert.equal(result.code, 0);
    assert.match(result.out, /\n!! Valid=False \(ClusterNotFound\): the policy is not valid; nothing is resized until it is fixed:\n!! {3}the Cluster does not exist\n/);
  });

  it('prints the model as JSON and YAML, with stable field names', async () => {
    const ds = dynamicStorage('pg', 'db', { storage: { request: '5Gi', limit: '20Gi', maintenanceWindow: { schedule: '0 3 * * *' } } }, {
      observedGeneration: 1, conditions: [valid],
      storageSizing: {
        data: {
          effectiveSize: '5Gi', targetSize: '5Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'within the buffer',
          actualSizes: { 'pg-1': '5Gi' }, instances: { 'pg-1': reading('1.2Gi', '3.7Gi', 25, 'pg-1') },
          budget: { actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4 },
        },
      },
    });
    const other = { ...ds, metadata: { ...ds.metadata, name: 'pg-copy', creationTimestamp: '2026-01-02T00:00:00Z' } };
    const load = (): Promise<LoadedObjects> => Promise.resolve(loaded({ dynamicStorages: [other, ds], clusterUnreadable: 'HTTP 403 Forbidden', pvcsUnreadable: 'HTTP 403 Forbidden' }));
    const expected: StatusModel = {
      generatedAt: '2026-02-08T13:00:00Z',
      cluster: { name: 'pg', namespace: 'db', found: null },
      dynamicSizing: 'Enabled',
      dynamicStorage: { name: 'pg', generation: 1, observedGeneration: 1 },
      valid: { status: 'True', reason: 'PolicyValid', message: 'the policy passed every check', lastTransitionTime: '2026-02-01T00:00:00Z' },
      protection: null,
      lastValidPolicy: null,
      warnings: [
        'Cluster "pg" could not be read: HTTP 403 Forbidden',
        'DynamicStorage "pg-copy" also names this Cluster and is ignored (only one may manage a Cluster).',
        'The PVCs could not be listed (sizes come from the status alone): HTTP 403 Forbidden',
      ],
      hint: null,
      volumes: [{
        volume: 'data', tablespace: null, title: 'Data Volume', request: '5Gi', limit: '20Gi', targetBuffer: 20,
        effectiveSize: '5Gi', targetSize: '5Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'within the buffer',
        instances: [{ instance: 'pg-1', persistentVolumeClaim: 'pg-1', pvcSize: '5Gi', used: '1.2Gi', available: '3.7Gi', percentUsed: 25, diskStatus: 'Reported' }],
        lastAction: null,
        budget: { maxActionsPerDay: 4, reservedActionsForEmergency: 1, actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4, resetsAt: null },
        maintenanceWindow: { schedule: '0 3 * * *', duration: '2h', timezone: 'UTC', openNow: false, closesAt: null },
        nextMaintenanceWindow: '2026-02-09T03:00:00Z',
      }],
    };
    const json = await run(['status', 'pg', '-o', 'json'], load);
    assert.equal(json.code, 0);
    assert.equal(json.out, `${JSON.stringify(expected, null, 2)}\n`);
    const yaml = await run(['status', 'pg', '--output=yaml'], load);
    assert.deepEqual(parse(yaml.out), expected);
    assert.match(yaml.out, /^generatedAt: 2026-02-08T13:00:00Z\ncluster:\n {2}name: pg\n/);
  });
});

describe('kubectl cnpg storage status: where the status comes from', () => {
  it('names the DynamicStorage as the source and what the Cluster shows of it', () => {
    assert.deepEqual(statusSourceOf({ metadata: { name: 'pg' } }), { source: 'DynamicStorage', pluginStatus: 'NotEnabled', condition: null, annotation: null });
    const annotation = JSON.stringify({ status: 'True', reason: 'Balanced', message: 'data: Balanced', revision: 'abc' });
    assert.deepEqual(statusSourceOf({
      metadata: { name: 'pg', annotations: { 'dynamicstorage.cnpg.io/status': annotation } },
      spec: { plugins: [{ name: 'dynamicstorage.cnpg.io' }] },
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'ClusterIsReady' }, { type: 'DynamicStorageReady', status: 'False', reason: 'Emergency' }], pluginStatus: [{ name: 'dynamicstorage.cnpg.io', status: '{"storageSizing":{}}' }] },
    }), { source: 'DynamicStorage', pluginStatus: 'Present', condition: 'False (Emergency)', annotation: 'True (Balanced)' });
    assert.equal(statusSourceOf({ spec: { plugins: [{ name: 'dynamicstorage.cnpg.io' }] } }).pluginStatus, 'Empty');
    assert.equal(statusSourceOf({ spec: { plugins: [{ name: 'dynamicstorage.cnpg.io', enabled: false }] } }).pluginStatus, 'NotEnabled');
  });
});

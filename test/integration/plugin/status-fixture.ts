/**
 * The Cluster, PVCs and DynamicStorages that the `kubectl cnpg storage status` tests read from a real API server, and
 * the text the command must print for them: shared by the test of the plugin run from a checkout and the test of the
 * self-contained executable. Relative times are kept hours away from any unit boundary so the expected text does not
 * depend on how long the run takes.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { applyCrds } from '../../harness/crds.ts';
import type { ControlPlane } from '../../harness/controlplane.ts';
import type { DynamicStorage, DynamicStorageStatus } from '../../../shared/api/dynamicstorage.generated.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const namespace = 'ns';
const ds = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace };
const clusters = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace };

export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface StatusScenario {
  /** What `status pg -n ns` prints. */
  readonly expected: string;
  /** The data volume's next maintenance window (RFC 3339). */
  readonly nextWindow: string;
  /** Creates the namespace, the CRDs and every object the expected text is made of. */
  readonly seed: (plane: ControlPlane) => Promise<void>;
}

/** The scenario as seen at `start` (the expected text holds for the next 30 minutes). */
export function statusScenario(start: number = Date.now()): StatusScenario {
  // Ten and a half hours either side of now: "10h ago" and "in 10h" for the next 30 minutes.
  const actionAt = start - 10.5 * 3_600_000;
  const windowStart = new Date(start + 10.5 * 3_600_000);
  const schedule = `${windowStart.getUTCMinutes()} ${windowStart.getUTCHours()} * * *`;
  const nextWindow = rfc3339(Date.UTC(windowStart.getUTCFullYear(), windowStart.getUTCMonth(), windowStart.getUTCDate(), windowStart.getUTCHours(), windowStart.getUTCMinutes()));

  const pgStatus: DynamicStorageStatus = {
    observedGeneration: 1,
    conditions: [{ type: 'Valid', status: 'True', reason: 'Valid', message: 'the policy passed every check', lastTransitionTime: rfc3339(actionAt) }],
    storageSizing: {
      data: {
        effectiveSize: '10Gi', targetSize: '10Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'the fullest volume is 61% used, within the 20% buffer',
        actualSizes: { 'pg-1': '10Gi', 'pg-2': '10Gi' },
        instances: {
          'pg-1': { persistentVolumeClaim: 'pg-1', used: '5.9Gi', available: '3.8Gi', percentUsed: 61, diskStatus: 'Reported' },
          'pg-2': { persistentVolumeClaim: 'pg-2', used: '5.8Gi', available: '3.9Gi', percentUsed: 60, diskStatus: 'Reported' },
        },
        lastAction: { kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: rfc3339(actionAt), completedAt: rfc3339(actionAt + 45_000), result: 'Success' },
        recentActions: [{ kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: rfc3339(actionAt), completedAt: rfc3339(actionAt + 45_000), result: 'Success' }],
        budget: { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 3, budgetResetsAt: rfc3339(actionAt + 86_400_000) },
        nextMaintenanceWindow: nextWindow,
      },
      wal: {
        effectiveSize: '2Gi', targetSize: '2Gi', state: 'WaitingForDiskStatus', reason: 'DiskStatusMissing', message: 'no usable reading for pg-2',
        instances: {
          'pg-1': { persistentVolumeClaim: 'pg-1-wal', used: '0.4Gi', available: '1.5Gi', percentUsed: 21, diskStatus: 'Reported' },
          'pg-2': { persistentVolumeClaim: 'pg-2-wal', diskStatus: 'DiskStatusMissing' },
        },
        budget: { actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4 },
      },
    },
  };

  const expected = `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: ns/pg

Data Volume:
  Request:        5Gi
  Limit:          50Gi
  Target Buffer:  20%
  Effective Size: 10Gi
  State:          Balanced
  Reason:         WithinTargetBuffer: the fullest volume is 61% used, within the 20% buffer
  Last Action:    ScheduledGrow 8Gi -> 10Gi, Success, ${rfc3339(actionAt)} (10h ago)
                  completed ${rfc3339(actionAt + 45_000)} (after 45s)
  Window:         ${schedule} UTC for 1h

  Instance        PVC Size    Used     Available   Usage%
  pg-1            10Gi        5.9Gi    3.8Gi       61%
  pg-2            10Gi        5.8Gi    3.9Gi       60%

  Budget:
    Max Actions/Day:      4
    Used (24h):           1
    Available (Planned):  2
    Available (Emergency): 3
    Resets At:            ${rfc3339(actionAt + 86_400_000)}

  Next Maintenance Window: ${nextWindow} (in 10h)

WAL Volume:
  Request:        1Gi
  Limit:          8Gi
  Target Buffer:  30%
  Effective Size: 2Gi
  State:          WaitingForDiskStatus
  Reason:         DiskStatusMissing: no usable reading for pg-2

  Instance        PVC Size    Used     Available   Usage%  Disk Status
  pg-1            2Gi         0.4Gi    1.5Gi       21%     Reported
  pg-2            3Gi         -        -           -       DiskStatusMissing

  Budget:
    Max Actions/Day:      5
    Used (24h):           0
    Available (Planned):  3
    Available (Emergency): 4
    Resets At:            -

  Next Maintenance Window: always open

Tablespace archive:
  Request:        1Gi
  Limit:          20Gi
  Target Buffer:  20%
  Effective Size: -
  State:          not reported yet

  Instance        PVC Size    Used     Available   Usage%
  pg-1            1Gi         -        -           -
  pg-2            1Gi         -        -           -

  Budget:
    Max Actions/Day:      4
    Used (24h):           -
    Available (Planned):  -
    Available (Emergency): -
    Resets At:            -

  Next Maintenance Window: always open
`;

  async function writeStatus(plane: ControlPlane, name: string, body: DynamicStorageStatus): Promise<void> {
    const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const object = await custom.getNamespacedCustomObject({ ...ds, name }) as DynamicStorage;
    await custom.replaceNamespacedCustomObjectStatus({ ...ds, name, body: { ...object, status: body } });
  }

  async function seed(plane: ControlPlane): Promise<void> {
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    for (const [name, size] of [['pg', '8Gi'], ['plain', '10Gi']] as const) {
      await custom.createNamespacedCustomObject({
        ...clusters,
        body: {
          apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name },
          spec: { instances: 2, storage: { size }, walStorage: { size: '1Gi' }, tablespaces: [{ name: 'archive', storage: { size: '1Gi' } }] },
        },
      });
    }
    const claims: [string, string, string, string | undefined, string][] = [
      ['pg-1', 'pg-1', 'PG_DATA', undefined, '8Gi'], ['pg-2', 'pg-2', 'PG_DATA', undefined, '8Gi'],
      ['pg-1-wal', 'pg-1', 'PG_WAL', undefined, '2Gi'], ['pg-2-wal', 'pg-2', 'PG_WAL', undefined, '3Gi'],
      ['pg-1-tbs-archive', 'pg-1', 'PG_TABLESPACE', 'archive', '1Gi'], ['pg-2-tbs-archive', 'pg-2', 'PG_TABLESPACE', 'archive', '1Gi'],
      ['plain-1', 'plain-1', 'PG_DATA', undefined, '10Gi'],
    ];
    for (const [name, instance, role, tablespace, size] of claims) {
      await core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          metadata: {
            name,
            labels: {
              'cnpg.io/cluster': name.startsWith('plain') ? 'plain' : 'pg', 'cnpg.io/instanceName': instance, 'cnpg.io/pvcRole': role,
              ...(tablespace ? { 'cnpg.io/tablespaceName': tablespace } : {}),
            },
          },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      });
      // Play the volume binder: the claim is bound at its size.
      const claim = await core.readNamespacedPersistentVolumeClaim({ name, namespace });
      claim.status = { phase: 'Bound', capacity: { storage: size } };
      await core.replaceNamespacedPersistentVolumeClaimStatus({ name, namespace, body: claim });
    }
    await custom.createNamespacedCustomObject({
      ...ds,
      body: {
        apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' },
        spec: {
          cluster: { name: 'pg' },
          storage: { request: '5Gi', limit: '50Gi', maintenanceWindow: { schedule, duration: '1h', timezone: 'UTC' } },
          walStorage: { request: '1Gi', limit: '8Gi', targetBuffer: 30, emergencyGrow: { maxActionsPerDay: 5 } },
          tablespaces: [{ name: 'archive', storage: { request: '1Gi', limit: '20Gi' } }],
        },
      },
    });
    await custom.createNamespacedCustomObject({
      ...ds,
      body: {
        apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'gone' },
        spec: { cluster: { name: 'gone' }, storage: { request: '5Gi', limit: '50Gi' } },
      },
    });
    await writeStatus(plane, 'pg', pgStatus);
    await writeStatus(plane, 'gone', {
      observedGeneration: 1,
      conditions: [{ type: 'Valid', status: 'False', reason: 'ClusterNotFound', message: 'spec.cluster.name: Not found: "gone": no CNPG Cluster of that name in namespace ns', lastTransitionTime: rfc3339(start) }],
    });
  }

  return { expected, nextWindow, seed };
}

import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { classifyMembers, isOwnedByCluster } from '../../../controller/membership.ts';
import { planVolume, type PvcReadings, type VolumeSnapshot } from '../../../controller/plan.ts';
import { GiB, MiB } from '../../../shared/quantity.ts';

const uid = 'cluster-uid-1';

/** The same readings for each of `names`. */
function readingsOf(names: readonly string[], readings: PvcReadings): ReadonlyMap<string, PvcReadings> {
  return new Map(names.map((name) => [name, readings]));
}
const owner = { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'pg', uid, controller: true };

function pvc(name: string, requested: string, capacity: string | undefined, ownerReferences: k8s.V1OwnerReference[] = [owner]): k8s.V1PersistentVolumeClaim {
  return {
    metadata: { name, labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': name }, ownerReferences },
    spec: { resources: { requests: { storage: requested } } },
    status: capacity === undefined ? { phase: 'Pending' } : { phase: 'Bound', capacity: { storage: capacity } },
  };
}

describe('PVC membership', () => {
  it('needs a controller ownerReference to the Cluster, by UID', () => {
    assert.equal(isOwnedByCluster(pvc('a', '1Gi', '1Gi'), uid), true);
    assert.equal(isOwnedByCluster(pvc('a', '1Gi', '1Gi', []), uid), false, 'labels alone');
    assert.equal(isOwnedByCluster(pvc('a', '1Gi', '1Gi', [{ ...owner, uid: 'other' }]), uid), false, 'another Cluster of the same name');
    assert.equal(isOwnedByCluster(pvc('a', '1Gi', '1Gi', [{ ...owner, controller: false }]), uid), false, 'not the controller');
    assert.equal(isOwnedByCluster(pvc('a', '1Gi', '1Gi', [{ ...owner, apiVersion: 'evil.example.com/v1' }]), uid), false, 'another group');
    assert.equal(isOwnedByCluster(pvc('a', '1Gi', '1Gi'), undefined), false);
  });

  it('reports members that are unparsable, absurd, above the ceiling, or unbound above every bound one', () => {
    const result = classifyMembers([
      pvc('pg-1', '10Gi', '10Gi'),
      pvc('pg-2', 'lots', '10Gi'),
      pvc('pg-3', '9Pi', undefined),
      pvc('pg-4', '64Ti', '64Ti'),
      pvc('pg-5', '20Gi', undefined),
      pvc('pg-6', '10Gi', undefined),
    ], 100 * GiB, GiB);
    assert.deepEqual(result.members.map((p) => p.metadata?.name), ['pg-1', 'pg-6']);
    assert.deepEqual(result.excluded.map((e) => [e.pvcName, e.reason]), [
      ['pg-2', 'InvalidSize'], ['pg-3', 'InvalidSize'], ['pg-4', 'AboveLimit'], ['pg-5', 'UnboundAboveVolumeSize'],
    ]);
    assert.equal(result.excluded[2]?.message, 'PVC pg-4 is left alone: its size 64Ti is above the largest size the policy allows (100Gi)');
  });

  it('takes unbound members as they are when nothing is bound yet (a new Cluster)', () => {
    const result = classifyMembers([pvc('pg-1', '10Gi', undefined), pvc('pg-2', '10Gi', undefined)], 100 * GiB);
    assert.equal(result.members.length, 2);
  });

  it('allows a capacity rounded up to the allocation unit above the ceiling', () => {
    const result = classifyMembers([pvc('pg-1', '1500Mi', '2Gi')], 1500 * MiB, GiB);
    assert.equal(result.members.length, 1);
  });

  it('sizes the volume from its members only: a forged PVC neither sets the size nor gets patched', () => {
    const snapshot: VolumeSnapshot = {
      role: 'data', label: 'data', field: 'spec.storage', clusterUid: uid,
      policy: { request: '64Mi', limit: '1Gi', emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } },
      pvcs: [pvc('pg-1', '64Mi', '64Mi'), pvc('pg-9', '64Ti', undefined, []), pvc('pg-8', '512Gi', '512Gi')],
      storageClass: { metadata: { name: 'c', annotations: { 'dynamicstorage.cnpg.io/allocation-unit': '1Mi' } }, allowVolumeExpansion: true, provisioner: 'disk.csi.azure.com' },
      readings: readingsOf(['pg-1', 'pg-8', 'pg-9'], { latest: { sampledAt: new Date('2026-03-01T12:00:00Z'), totalBytes: 64 * MiB, freeBytes: MiB, availableBytes: MiB }, recent: [] }),
      previous: undefined,
    };
    const plan = planVolume(snapshot, new Date('2026-03-01T12:00:00Z'));
    assert.equal(plan.decision.currentSize, 64 * MiB);
    assert.equal(plan.decision.action, 'EmergencyGrow');
    assert.deepEqual(plan.decision.patches.map((p) => p.pvcName), ['pg-1']);
    assert.deepEqual(plan.excluded.map((e) => e.pvcName), ['pg-8']);
  });

  it('does not attempt a grow the StorageClass cannot do', () => {
    const snapshot: VolumeSnapshot = {
      role: 'data', label: 'data', field: 'spec.storage',
      policy: { request: '64Mi', limit: '1Gi', emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } },
      pvcs: [pvc('pg-1', '64Mi', '64Mi')],
      storageClass: { metadata: { name: 'fixed', annotations: { 'dynamicstorage.cnpg.io/allocation-unit': '1Mi' } }, allowVolumeExpansion: false, provisioner: 'disk.csi.azure.com' },
      readings: readingsOf(['pg-1', 'pg-8', 'pg-9'], { latest: { sampledAt: new Date('2026-03-01T12:00:00Z'), totalBytes: 64 * MiB, freeBytes: MiB, availableBytes: MiB }, recent: [] }),
      previous: undefined,
    };
    const plan = planVolume(snapshot, new Date('2026-03-01T12:00:00Z'));
    assert.equal(plan.decision.action, 'NoOp');
    assert.equal(plan.decision.reason, 'ExpansionNotAllowed');
    assert.equal(plan.decision.state, 'Emergency');
    assert.match(plan.decision.message, /StorageClass fixed does not set allowVolumeExpansion: true/);
  });
});

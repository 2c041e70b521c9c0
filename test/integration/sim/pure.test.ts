/** The simulation's pure parts (no control plane needed). */
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { instanceSerial, pvcLabels, pvcName, tablespaceK8sName, volumeOfPvc } from '../../sim/cnpg-names.ts';
import { roundUp } from '../../sim/csi.ts';
import { tmpfsSize } from '../../sim/mounts.ts';
import {
  controllerResizeFailed, controllerResizeInfeasible, controllerResizeInProgress, mergeResizeConditions, nodeResizeInfeasible, nodeResizePending,
  resizeFinished, type PvcCondition,
} from '../../sim/resize-status.ts';

const now = new Date('2026-01-02T03:04:05.678Z');
const pvcWith = (conditions: PvcCondition[]): k8s.V1PersistentVolumeClaim =>
  ({ status: { conditions: conditions as unknown as k8s.V1PersistentVolumeClaimCondition[] } });

describe('simulation: pure helpers', () => {
  it('converts tablespace names like CNPG (lossy) and names PVCs', () => {
    assert.equal(tablespaceK8sName('analytics'), 'analytics');
    assert.equal(tablespaceK8sName('Big_Data'), 'big-data');
    assert.equal(tablespaceK8sName('_scratch'), '1scratch');
    assert.equal(tablespaceK8sName('a$b_c'), 'a-b-c');
    assert.equal(pvcName('pg-1', 'data'), 'pg-1');
    assert.equal(pvcName('pg-1', 'wal'), 'pg-1-wal');
    assert.equal(pvcName('pg-12', { tablespace: 'Big_Data' }), 'pg-12-tbs-big-data');
    assert.equal(instanceSerial('pg', 'pg-12'), 12);
    assert.equal(instanceSerial('pg', 'pg-x'), undefined);
    assert.equal(instanceSerial('pg', 'pg-1-wal'), undefined);
  });

  it('reads the volume of a PVC from its labels, the tablespace from its label', () => {
    assert.deepEqual(volumeOfPvc(pvcLabels('pg', 'pg-1', { tablespace: 'Big_Data' })), { tablespace: 'Big_Data' });
    assert.equal(volumeOfPvc(pvcLabels('pg', 'pg-1', 'wal')), 'wal');
    assert.equal(volumeOfPvc({ 'cnpg.io/pvcRole': 'PG_TABLESPACE' }), undefined);
    assert.equal(volumeOfPvc(undefined), undefined);
  });

  it('rounds sizes up to the class granularity and tmpfs sizes up to pages', () => {
    assert.equal(roundUp(1500 * 1024 ** 2, 1024 ** 3), 2 * 1024 ** 3);
    assert.equal(roundUp(1024 ** 3, 1024 ** 3), 1024 ** 3);
    assert.equal(tmpfsSize(1), 4096);
    assert.equal(tmpfsSize(8192), 8192);
    assert.throws(() => tmpfsSize(0), RangeError);
  });

  it('merges resize conditions like Kubernetes: other conditions kept, same status keeps its timestamp', () => {
    const old: PvcCondition[] = [
      { type: 'Resizing', status: 'True', lastTransitionTime: 'T0' },
      { type: 'ModifyingVolume', status: 'True', lastTransitionTime: 'T0' },
    ];
    assert.deepEqual(mergeResizeConditions(old, [{ type: 'Resizing', status: 'True', lastTransitionTime: 'T1' }], false), old);
    assert.deepEqual(mergeResizeConditions(old, [], false), [old[1]]);
    assert.deepEqual(mergeResizeConditions(old, [{ type: 'NodeResizeError', status: 'True' }], true), [...old, { type: 'NodeResizeError', status: 'True' }]);
  });

  it('writes the status patches of each resize step', () => {
    const start = controllerResizeInProgress(pvcWith([]), '96Mi', now);
    assert.deepEqual(start, {
      conditions: [{ type: 'Resizing', status: 'True', lastTransitionTime: '2026-01-02T03:04:05Z' }],
      allocatedResources: { storage: '96Mi' }, allocatedResourceStatuses: { storage: 'ControllerResizeInProgress' },
    });
    const resizing = pvcWith(start.conditions);
    assert.deepEqual(controllerResizeFailed(resizing, 'boom', now).conditions?.map((c) => c.type), ['Resizing', 'ControllerResizeError']);
    const infeasible = controllerResizeInfeasible(resizing, 'no', now);
    assert.deepEqual(infeasible.conditions?.map((c) => c.type), ['ControllerResizeError']);
    assert.deepEqual(infeasible.allocatedResourceStatuses, { storage: 'ControllerResizeInfeasible' });
    const pending = nodeResizePending(resizing, now);
    assert.deepEqual(pending.conditions?.map((c) => [c.type, c.message]), [['FileSystemResizePending', 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.']]);
    const nodeFailed = nodeResizeInfeasible(pvcWith(pending.conditions ?? []), 'rpc error', now);
    assert.deepEqual(nodeFailed.conditions?.map((c) => [c.type, c.message]), [
      ['FileSystemResizePending', 'Waiting for user to (re-)start a pod to finish file system resize of volume on node.'],
      ['NodeResizeError', 'failed to expand pvc with rpc error'],
    ]);
    assert.deepEqual(resizeFinished(pvcWith(pending.conditions ?? []), '96Mi'), {
      conditions: [], allocatedResourceStatuses: { storage: null }, capacity: { storage: '96Mi' },
    });
  });
});

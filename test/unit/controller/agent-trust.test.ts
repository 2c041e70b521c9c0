import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { isAgentPod } from '../../../controller/agents.ts';
import { ReadingsStore } from '../../../controller/readings.ts';
import { FailureLimiter } from '../../../agent/server.ts';
import type { VolumeReading } from '../../../shared/readings.ts';

const daemonSet = { name: 'cnpg-dynamic-storage-agent', uid: 'ds-uid', serviceAccount: 'cnpg-dynamic-storage-agent' };

function pod(ownerReferences: k8s.V1OwnerReference[], serviceAccountName = 'cnpg-dynamic-storage-agent'): k8s.V1Pod {
  return { metadata: { name: 'agent-x', ownerReferences }, spec: { serviceAccountName, containers: [] } };
}

function reading(node: string, sampledAt: string): VolumeReading {
  return {
    key: 'db/pg-1', namespace: 'db', cluster: 'pg', instance: 'pg-1', role: 'data', pvc: 'pg-1', pv: 'pv', podName: 'pg-1', podUid: 'u',
    node, path: '/x', status: 'ok', sampledAt, changedAt: sampledAt,
    usage: { totalBytes: 100, usedBytes: 10, availableBytes: 90, freeBytes: 90, percentUsed: 10, inodesTotal: 1, inodesUsed: 0, inodesFree: 1, inodesPercentUsed: 0 },
  };
}

describe('which agents and readings the controller trusts', () => {
  it('an agent is a pod controlled by the DaemonSet (by UID) running as the agent ServiceAccount', () => {
    const owner = { apiVersion: 'apps/v1', kind: 'DaemonSet', name: daemonSet.name, uid: 'ds-uid', controller: true };
    assert.equal(isAgentPod(pod([owner]), daemonSet), true);
    assert.equal(isAgentPod(pod([]), daemonSet), false, 'labels alone');
    assert.equal(isAgentPod(pod([{ ...owner, uid: 'other' }]), daemonSet), false, 'another DaemonSet of the same name');
    assert.equal(isAgentPod(pod([{ ...owner, controller: false }]), daemonSet), false);
    assert.equal(isAgentPod(pod([owner], 'default'), daemonSet), false, 'another ServiceAccount');
    assert.equal(isAgentPod(pod([owner]), { ...daemonSet, uid: undefined }), false, 'no DaemonSet found: no agent');
  });

  it('keeps readings per reporting node, and reads only those of the nodes asked for', () => {
    const store = new ReadingsStore();
    store.update(reading('node-a', '2026-03-01T12:00:00.000Z'));
    store.update(reading('node-evil', '2026-03-01T12:00:05.000Z'));
    assert.equal(store.forPvc('db', 'pg-1', new Set(['node-a'])).raw?.node, 'node-a', 'the liar did not overwrite it');
    assert.equal(store.forPvc('db', 'pg-1', new Set()).raw, undefined);
    assert.equal(store.forPvc('db', 'pg-1').raw?.node, 'node-evil', 'without a filter, the most recent');
    store.remove('db', 'pg-1', 'node-evil');
    assert.equal(store.forPvc('db', 'pg-1').raw?.node, 'node-a', 'a node removes only its own reading');
  });

  it('answers an address 429 after too many failed authentications, until its window ends', () => {
    let now = 0;
    const limiter = new FailureLimiter(3, 10_000, () => now);
    for (let i = 0; i < 3; i += 1) {
      assert.equal(limiter.blockedFor('10.0.0.9'), 0);
      limiter.fail('10.0.0.9');
    }
    assert.equal(limiter.blockedFor('10.0.0.9'), 10_000);
    assert.equal(limiter.blockedFor('10.0.0.1'), 0, 'other addresses are not affected');
    now = 10_000;
    assert.equal(limiter.blockedFor('10.0.0.9'), 0);
  });
});

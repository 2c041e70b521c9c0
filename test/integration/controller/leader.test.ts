import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { LeaderElector } from '../../../controller/kube/leader.ts';
import { EventRecorder } from '../../../controller/kube/events.ts';
import { silentLogger } from '../../harness/log.ts';

const fast = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 250 };

describe('leader election on a real API server', function () {
  let plane: ControlPlane;
  const electors: LeaderElector[] = [];

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
  });

  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop()));
  });

  after(async function () {
    this.timeout(60_000);
    await plane.stop();
  });

  function elector(identity: string, name = 'election'): LeaderElector {
    const e = new LeaderElector(plane.kubeConfig, { namespace: 'default', name, identity, ...fast }, silentLogger);
    electors.push(e);
    return e;
  }

  it('elects exactly one leader, and hands over when the leader releases the lease', async () => {
    const started: string[] = [];
    const a = elector('a');
    const b = elector('b');
    a.start({ onStartedLeading: () => started.push('a'), onStoppedLeading: () => undefined });
    await eventually(() => { assert.deepEqual(started, ['a']); });
    b.start({ onStartedLeading: () => started.push('b'), onStoppedLeading: () => undefined });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(started, ['a'], 'b must not lead while a renews');

    const lease = await plane.kubeConfig.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'election', namespace: 'default' });
    assert.equal(lease.spec?.holderIdentity, 'a');

    const releasedAt = Date.now();
    await a.stop();
    await eventually(() => { assert.deepEqual(started, ['a', 'b']); }, { timeoutMs: 5_000 });
    assert.ok(Date.now() - releasedAt < fast.leaseDurationMs + 1000, 'b took over without waiting for a full expiry');
  });

  it('stops leading when the lease cannot be renewed', async function () {
    this.timeout(60_000);
    let stopped = false;
    const a = elector('solo', 'election-lost');
    a.start({ onStartedLeading: () => undefined, onStoppedLeading: () => { stopped = true; } });
    await eventually(() => { assert.equal(a.isLeader, true); });
    // Another party takes the lease by force: the renew fails with a conflict until the deadline passes.
    const api = plane.kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    const usurp = setInterval(() => {
      void api.readNamespacedLease({ name: 'election-lost', namespace: 'default' }).then((lease) => {
        lease.spec = { holderIdentity: 'usurper', renewTime: new k8s.V1MicroTime(), leaseDurationSeconds: 60 };
        return api.replaceNamespacedLease({ name: 'election-lost', namespace: 'default', body: lease });
      }).catch(() => undefined);
    }, 100);
    try {
      await eventually(() => { assert.equal(stopped, true); }, { timeoutMs: 10_000 });
      assert.equal(a.isLeader, false);
    } finally {
      clearInterval(usurp);
    }
  });

  it('stops at once when it sees another holder, not at the renew deadline', async function () {
    this.timeout(30_000);
    let stoppedAt: number | undefined;
    const patient = new LeaderElector(plane.kubeConfig, { namespace: 'default', name: 'election-seen', identity: 'patient', leaseDurationMs: 30_000, renewDeadlineMs: 20_000, retryPeriodMs: 250 }, silentLogger);
    electors.push(patient);
    patient.start({ onStartedLeading: () => undefined, onStoppedLeading: () => { stoppedAt = Date.now(); } });
    await eventually(() => { assert.equal(patient.isLeader, true); });
    const api = plane.kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    const lease = await api.readNamespacedLease({ name: 'election-seen', namespace: 'default' });
    lease.spec = { holderIdentity: 'usurper', renewTime: new k8s.V1MicroTime(), acquireTime: new k8s.V1MicroTime(), leaseDurationSeconds: 60 };
    await api.replaceNamespacedLease({ name: 'election-seen', namespace: 'default', body: lease });
    const takenAt = Date.now();
    await eventually(() => { assert.ok(stoppedAt !== undefined, 'stopped leading'); }, { timeoutMs: 5_000 });
    assert.ok((stoppedAt ?? 0) - takenAt < 3_000, `stopped ${(stoppedAt ?? 0) - takenAt} ms after the Lease changed hands`);
    assert.equal(patient.isLeader, false);
  });

  it('judges expiry from when it saw the Lease change, not from the holder\'s clock', async function () {
    this.timeout(30_000);
    const api = plane.kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    // A holder whose clock runs an hour behind: by its renewTime the Lease expired long ago, yet it may be renewing.
    const anHourAgo = new k8s.V1MicroTime(Date.now() - 3_600_000);
    await api.createNamespacedLease({ namespace: 'default', body: {
      metadata: { name: 'election-skew' }, spec: { holderIdentity: 'behind', renewTime: anHourAgo, acquireTime: anHourAgo, leaseDurationSeconds: 3 },
    } });
    const started: number[] = [];
    const candidate = new LeaderElector(plane.kubeConfig, { namespace: 'default', name: 'election-skew', identity: 'candidate', leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 }, silentLogger);
    electors.push(candidate);
    const since = Date.now();
    candidate.start({ onStartedLeading: () => started.push(Date.now()), onStoppedLeading: () => undefined });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.deepEqual(started, [], 'the Lease is not taken on the strength of the holder\'s clock');
    await eventually(() => { assert.equal(started.length, 1); }, { timeoutMs: 5_000 });
    assert.ok(Math.min(...started) - since >= 3_000, 'taken once it went unchanged for the lease duration');
  });

  it('records events on an object and aggregates repeats into a count', async () => {
    const recorder = new EventRecorder(plane.kubeConfig, { component: 'test', instance: 'test-1', log: silentLogger });
    const target = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'target' };
    await recorder.record(target, 'Warning', 'InvalidPolicy', 'something is wrong');
    await recorder.record(target, 'Warning', 'InvalidPolicy', 'something is wrong');
    await recorder.record(target, 'Normal', 'Grown', 'grew');
    const events = await plane.kubeConfig.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=target' });
    const byReason = new Map(events.items.map((e) => [e.reason, e]));
    assert.equal(events.items.length, 2);
    assert.equal(byReason.get('InvalidPolicy')?.count, 2);
    assert.equal(byReason.get('InvalidPolicy')?.type, 'Warning');
    assert.equal(byReason.get('Grown')?.count, 1);
    assert.equal(byReason.get('Grown')?.reportingComponent, 'test');
  });
});

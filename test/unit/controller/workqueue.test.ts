import assert from 'node:assert/strict';
import { exponentialDelay } from '../../../shared/backoff.ts';
import { WorkQueue } from '../../../controller/kube/workqueue.ts';
import { canAcquire } from '../../../controller/kube/leader.ts';
import { setCondition } from '../../../controller/kube/conditions.ts';

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('a');
    queue.add('b');
    assert.equal(queue.length, 2);
    assert.equal(await queue.get(), 'a');
    assert.equal(await queue.get(), 'b');
  });

  it('does not hand out a key being processed, and requeues it when re-added meanwhile', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const key = await queue.get();
    queue.add('a');
    assert.equal(queue.length, 0, 'not queued while processing');
    queue.done(key ?? '');
    assert.equal(queue.length, 1, 'queued again after done');
  });

  it('puts an urgent key at the head, moving it there when already queued, never twice', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('c');
    queue.addFirst('c');
    queue.addFirst('d');
    assert.equal(queue.length, 4);
    assert.deepEqual([await queue.get(), await queue.get(), await queue.get(), await queue.get()], ['d', 'c', 'a', 'b']);
    queue.addFirst('a');
    assert.equal(queue.length, 0, 'not queued while processing');
    queue.done('a');
    assert.equal(queue.length, 1, 'queued again after done');
  });

  it('wakes a waiting worker on add and returns undefined after shutdown', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.add('x');
    assert.equal(await waiting, 'x');
    const waitingAgain = queue.get();
    queue.shutdown();
    assert.equal(await waitingAgain, undefined);
  });

  it('adds after a delay, keeping the earliest pending time', async () => {
    const queue = new WorkQueue();
    queue.addAfter('k', 40);
    queue.addAfter('k', 5000);
    assert.equal(queue.length, 0);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(queue.length, 1);
    queue.shutdown();
  });

  it('backs off exponentially per key and forgets on success', () => {
    const config = { initialMs: 100, maxMs: 1000 };
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => exponentialDelay(config, n)), [100, 200, 400, 800, 1000, 1000]);
    const queue = new WorkQueue(config);
    assert.equal(queue.addRateLimited('k'), 100);
    assert.equal(queue.addRateLimited('k'), 200);
    queue.forget('k');
    assert.equal(queue.failureCount('k'), 0);
    queue.shutdown();
  });
});

describe('canAcquire', () => {
  const now = new Date('2026-01-01T00:00:30Z');
  it('takes a free, own or expired lease and refuses a live one held by another', () => {
    assert.equal(canAcquire({ holder: undefined, renewTime: undefined, leaseDurationMs: 15_000 }, 'me', now), true);
    assert.equal(canAcquire({ holder: 'me', renewTime: new Date('2026-01-01T00:00:29Z'), leaseDurationMs: 15_000 }, 'me', now), true);
    assert.equal(canAcquire({ holder: 'other', renewTime: new Date('2026-01-01T00:00:20Z'), leaseDurationMs: 15_000 }, 'me', now), false);
    assert.equal(canAcquire({ holder: 'other', renewTime: new Date('2026-01-01T00:00:15Z'), leaseDurationMs: 15_000 }, 'me', now), true);
  });
});

describe('setCondition', () => {
  const t1 = new Date('2026-01-01T00:00:00.123Z');
  const t2 = new Date('2026-01-01T01:00:00Z');
  it('keeps the transition time while the status stays and moves it when the status changes', () => {
    const first = setCondition([], { type: 'Valid', status: 'True', reason: 'Valid', message: 'ok' }, t1);
    assert.deepEqual(first, [{ type: 'Valid', status: 'True', reason: 'Valid', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00Z' }]);
    const same = setCondition(first, { type: 'Valid', status: 'True', reason: 'Valid', message: 'still ok' }, t2);
    assert.equal(same[0]?.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.equal(same[0].message, 'still ok');
    const flipped = setCondition(same, { type: 'Valid', status: 'False', reason: 'InvalidSchedule', message: 'bad' }, t2);
    assert.equal(flipped[0]?.lastTransitionTime, '2026-01-01T01:00:00Z');
  });

  it('keeps other conditions, sorted by type', () => {
    const both = setCondition(setCondition([], { type: 'Valid', status: 'True', reason: 'r', message: '' }, t1),
      { type: 'Progressing', status: 'False', reason: 'r', message: '' }, t1);
    assert.deepEqual(both.map((c) => c.type), ['Progressing', 'Valid']);
  });
});

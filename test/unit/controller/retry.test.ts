import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { retriesAtOnce } from '../../../controller/controller.ts';
import { WorkQueue, type QueueTimers } from '../../../controller/kube/workqueue.ts';
import { StatusWriter } from '../../../controller/status.ts';
import { ClusterStatusConflict } from '../../../controller/cluster-status-writer.ts';
import { apiErrorDetail, apiErrorMessage, apiWriteError, ConflictError, errorCode, TransientApiError } from '../../../shared/errors.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';

/** Timers that fire only when the test moves the clock. */
class FakeTimers implements QueueTimers {
  private nowMs = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { at: this.nowMs + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  advance(ms: number): void {
    this.nowMs += ms;
    for (const [id, timer] of [...this.pending].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at > this.nowMs) continue;
      this.pending.delete(id);
      timer.fn();
    }
  }
}

const status = (code: number, message: string): k8s.ApiException<string> =>
  new k8s.ApiException(code, `HTTP-Code: ${code}`, JSON.stringify({ kind: 'Status', code, reason: code === 409 ? 'Conflict' : 'InternalError', message }), {});

describe('status write errors: a conflict is retried at once, a failing API server backs off', () => {
  it('classifies a 409 as ConflictError, 429 and 5xx as TransientApiError, and leaves the rest alone', () => {
    const conflict = apiWriteError(status(409, 'the object has been modified'), 'status of DynamicStorage ns/ds');
    assert.ok(conflict instanceof ConflictError);
    assert.equal(errorCode(conflict), 'Conflict');
    assert.equal((conflict as Error).message, 'status of DynamicStorage ns/ds: the object has been modified');
    for (const code of [429, 500, 503]) {
      const failed = apiWriteError(status(code, 'etcd timed out'), 'status');
      assert.ok(failed instanceof TransientApiError, String(code));
      assert.equal(failed.status, code);
      assert.equal(errorCode(failed), 'TransientApiError');
    }
    const invalid = status(422, 'invalid');
    assert.equal(apiWriteError(invalid, 'status'), invalid);
    const other = new Error('socket hang up');
    assert.equal(apiWriteError(other, 'status'), other);
  });

  it('the worker retries conflicts at once (the Cluster summary\'s too), and anything else with backoff', () => {
    assert.equal(retriesAtOnce(apiWriteError(status(409, 'modified'), 'status')), true);
    assert.equal(retriesAtOnce(new ClusterStatusConflict('changed')), true);
    assert.equal(retriesAtOnce(apiWriteError(status(500, 'boom'), 'status')), false);
    assert.equal(retriesAtOnce(status(409, 'a raw conflict from a write that does not classify')), false);
    assert.equal(retriesAtOnce(new Error('x')), false);
  });

  it('StatusWriter throws the typed errors', async () => {
    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromClusterAndUser({ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: false }, { name: 'none' });
    const writer = new StatusWriter(kubeConfig);
    let answer = new Error('unset');
    (writer as unknown as { api: unknown }).api = { replaceNamespacedCustomObjectStatus: () => Promise.reject(answer) };
    const object = { metadata: { name: 'ds', namespace: 'ns', resourceVersion: '1' }, spec: { cluster: { name: 'pg' } } } as unknown as DynamicStorage;
    answer = status(409, 'the object has been modified');
    await assert.rejects(writer.write(object, { observedGeneration: 1 }), ConflictError);
    answer = status(500, 'etcd timed out');
    await assert.rejects(writer.write(object, { observedGeneration: 1 }), (err) => err instanceof TransientApiError && err.message === 'status of DynamicStorage ns/ds: etcd timed out');
  });

  it('queues a first conflict again at once, a repeated one and a 500 after the backoff', async () => {
    const timers = new FakeTimers();
    const queue = new WorkQueue({ initialMs: 500, maxMs: 60_000 }, timers);
    assert.equal(queue.addRateLimited('ns/a', { atOnce: true }), 0);
    assert.equal(queue.length, 1, 'queued without moving the clock');
    assert.equal(await queue.get(), 'ns/a');
    queue.done('ns/a');
    assert.equal(queue.addRateLimited('ns/a', { atOnce: true }), 1000, 'a conflict again: backs off as the second failure');
    assert.equal(queue.length, 0);
    timers.advance(999);
    assert.equal(queue.length, 0);
    timers.advance(1);
    assert.equal(queue.length, 1);
    assert.equal(await queue.get(), 'ns/a');
    queue.done('ns/a');
    queue.forget('ns/a');

    assert.equal(queue.addRateLimited('ns/b'), 500, 'a 500 backs off from the first failure');
    assert.equal(queue.length, 0);
    timers.advance(499);
    assert.equal(queue.length, 0);
    timers.advance(1);
    assert.equal(queue.length, 1);
    queue.shutdown();
  });

  it('a key being processed that conflicts is handed out again as soon as the worker is done', async () => {
    const queue = new WorkQueue({ initialMs: 500, maxMs: 60_000 }, new FakeTimers());
    queue.add('ns/a');
    const key = await queue.get() ?? '';
    assert.equal(queue.addRateLimited(key, { atOnce: true }), 0);
    assert.equal(queue.length, 0, 'not handed out twice while processing');
    queue.done(key);
    assert.equal(await queue.get(), 'ns/a');
    queue.shutdown();
  });
});

describe('API error messages', () => {
  it('says what the API server said, briefly for events and in full for the command line', () => {
    const forbidden = new k8s.ApiException(403, 'HTTP-Code: 403', { kind: 'Status', reason: 'Forbidden', message: 'clusters "pg" is forbidden' }, {});
    assert.equal(apiErrorMessage(forbidden), 'clusters "pg" is forbidden');
    assert.equal(apiErrorDetail(forbidden), 'HTTP 403 Forbidden: clusters "pg" is forbidden');
    const text = new k8s.ApiException(502, 'HTTP-Code: 502', 'bad gateway', {});
    assert.equal(apiErrorMessage(text), 'HTTP 502');
    assert.equal(apiErrorDetail(text), 'HTTP 502: bad gateway');
    assert.equal(apiErrorMessage(new Error('refused')), 'refused');
    assert.equal(apiErrorDetail(new Error('refused')), undefined);
  });
});

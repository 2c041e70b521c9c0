/**
 * A keyed work queue in the manner of client-go's: a key is queued at most once, a key being processed is not handed
 * out twice, a key re-added while processing is queued again when done, and failures back off exponentially per key.
 * Handlers only enqueue `namespace/name`; the worker reads current state at sync time.
 */
import { exponentialDelay, type Backoff } from '../../shared/backoff.ts';

/** Per-key retries: from 0.5 s, doubling, at most 5 minutes (client-go's default rate limiter is 5 ms to 1000 s). */
export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 5 * 60_000 };

/** The clock and timers of delayed adds; tests pass fake ones. */
export interface QueueTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: QueueTimers = {
  now: () => Date.now(),
  // Unref'd: a pending retry does not keep the process alive.
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => { clearTimeout(handle as NodeJS.Timeout); },
};

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: unknown }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly backoff: Backoff;
  private readonly timers: QueueTimers;
  private shuttingDown = false;

  constructor(backoff: Backoff = DEFAULT_BACKOFF, timers: QueueTimers = realTimers) {
    this.backoff = backoff;
    this.timers = timers;
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    this.enqueue(key, false);
  }

  /**
   * Adds the key at the head of the queue (moved there when already queued): a volume getting full is looked at before
   * the routine work queued ahead of it.
   */
  addFirst(key: string): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key) && !this.processing.has(key)) {
      const at = this.queue.indexOf(key);
      if (at > 0) {
        this.queue.splice(at, 1);
        this.queue.unshift(key);
      }
      return;
    }
    this.enqueue(key, true);
  }

  /** Marks the key dirty; hands it to a waiting worker, or queues it (unless a worker has it: it is queued when done). */
  private enqueue(key: string, first: boolean): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else if (first) {
      this.queue.unshift(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds the key after `delayMs`; an earlier pending delayed add wins over a later one. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.timers.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.timers.clearTimeout(pending.timer);
    const timer = this.timers.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /**
   * Re-adds after a failure with per-key exponential backoff; returns the delay used. `atOnce` (a write that lost to a
   * newer one: the next attempt reads the newer object) skips the delay for the first failure in a row only, so that a
   * conflict that repeats (a cache behind the API server) backs off like any failure instead of spinning.
   */
  addRateLimited(key: string, options: { atOnce?: boolean } = {}): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const delay = options.atOnce === true && failures === 1 ? 0 : exponentialDelay(this.backoff, failures);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of a key that synced successfully. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  async get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return key;
    }
    if (this.shuttingDown) return undefined;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) this.timers.clearTimeout(timer);
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}

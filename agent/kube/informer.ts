/**
 * A list-then-watch cache of one kind of object, supervised: it lists, then watches from the list's resourceVersion
 * (with bookmarks, so an idle watch still moves its version forward), and watches again from the last version seen
 * whenever the API server ends a watch. A 410 Gone (the version is too old) lists again at once; any other failure lists
 * again after a jittered exponential backoff. The cache is kept meanwhile, so the agent carries on probing through API
 * server outages.
 */
import type { Logger } from '../../shared/log.ts';
import { backoffDelay, type Backoff } from '../../shared/backoff.ts';
import { sleep } from '../../shared/sleep.ts';
import { isGone, watchError, type KubeClient, type Selectors } from './client.ts';
import type { KubeObject, WatchEvent } from './types.ts';

export interface InformerOptions<T extends KubeObject> extends Selectors {
  /** For logs: `pods`, `persistentvolumeclaims`. */
  name: string;
  client: KubeClient;
  /** The collection: `/api/v1/pods`. */
  path: string;
  /** Keeps the fields the agent reads (types.ts). */
  trim: (object: T) => T;
  /** Called after the cache changed. */
  onChange: () => void;
  backoff: Backoff;
  logger: Logger;
  /** Server-side watch timeout, picked at random in this range for each watch (default 300-600 s, as client-go). */
  watchTimeoutSeconds?: { min: number; max: number };
  random?: () => number;
}

function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

/** What the agent reads of an object: a change of its resourceVersion alone (a pod's conditions changed) is not a change. */
function fingerprint(object: KubeObject): string {
  const { resourceVersion: _, ...metadata } = object.metadata ?? {};
  return JSON.stringify({ ...object, metadata });
}

interface Entry<T> { object: T; fingerprint: string }

/** A watch that ends by itself this soon without delivering anything counts as a failure (no tight re-watch loop). */
const minimumQuietWatchMs = 1000;

class WatchEndedEarly extends Error {
  readonly code = 'WatchEndedEarly';
}

export class Informer<T extends KubeObject> {
  /** The first list succeeded. */
  synced = false;
  /** A watch is open now. */
  connected = false;
  private cache = new Map<string, Entry<T>>();
  private readonly options: InformerOptions<T>;
  private readonly random: () => number;
  private resourceVersion = '';
  private failures = 0;
  private abort = new AbortController();
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.random = options.random ?? Math.random;
  }

  /** Starts listing and watching; resolves after the first list attempt (a failed one is retried in the background). */
  start(): Promise<void> {
    this.stopped = false;
    this.abort = new AbortController();
    return new Promise<void>((firstAttempt) => {
      this.loop = this.run(firstAttempt);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
    this.loop = undefined;
  }

  list(): T[] {
    return [...this.cache.values()].map((e) => e.object);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(keyOf(namespace, name))?.object;
  }

  private async run(firstAttempt: () => void): Promise<void> {
    let mustList = true;
    let lastGone = false;
    while (!this.stopped) {
      try {
        if (mustList) {
          await this.relist();
          mustList = false;
          this.failures = 0;
          if (!this.synced) this.options.logger.info('informer synced', { informer: this.options.name });
          this.synced = true;
          firstAttempt();
        }
        await this.watchOnce();
        lastGone = false;
      } catch (err) {
        this.connected = false;
        firstAttempt();
        if (this.abort.signal.aborted) break;
        mustList = true;
        if (isGone(err) && !lastGone) {
          lastGone = true;
          this.options.logger.info('resource version expired; listing again', { informer: this.options.name });
          continue;
        }
        lastGone = false;
        this.failures++;
        const delay = backoffDelay(this.options.backoff, this.failures, this.random);
        this.options.logger.warn('watch failed; restarting', { informer: this.options.name, err, failures: this.failures, retryInMs: delay });
        await sleep(delay, this.abort.signal);
      }
    }
    this.connected = false;
    firstAttempt();
  }

  private async relist(): Promise<void> {
    const { client, path, labelSelector, fieldSelector, trim } = this.options;
    const list = await client.list<T>(path, { labelSelector, fieldSelector }, this.abort.signal);
    const fresh = new Map<string, Entry<T>>();
    for (const item of list.items) {
      const object = trim(item);
      fresh.set(keyOf(object.metadata?.namespace, object.metadata?.name), { object, fingerprint: fingerprint(object) });
    }
    this.cache = fresh;
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.options.onChange();
  }

  private async watchOnce(): Promise<void> {
    const { client, path, labelSelector, fieldSelector } = this.options;
    const range = this.options.watchTimeoutSeconds ?? { min: 300, max: 600 };
    const timeoutSeconds = Math.floor(range.min + this.random() * (range.max - range.min));
    const started = performance.now();
    let delivered = 0;
    const events = client.watch<T>(path, {
      labelSelector, fieldSelector, resourceVersion: this.resourceVersion, timeoutSeconds, signal: this.abort.signal,
      onConnect: () => { this.connected = true; },
    });
    for await (const event of events) {
      delivered++;
      this.apply(event);
    }
    this.connected = false;
    if (delivered === 0 && performance.now() - started < minimumQuietWatchMs && !this.stopped) {
      throw new WatchEndedEarly('the API server ended the watch at once');
    }
  }

  private apply(event: WatchEvent<T>): void {
    if (event.type === 'ERROR') throw watchError(event.object);
    const version = event.object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (event.type === 'BOOKMARK') return;
    const object = this.options.trim(event.object);
    const key = keyOf(object.metadata?.namespace, object.metadata?.name);
    if (event.type === 'DELETED') {
      if (this.cache.delete(key)) this.options.onChange();
      return;
    }
    const entry = { object, fingerprint: fingerprint(object) };
    const previous = this.cache.get(key);
    this.cache.set(key, entry);
    if (previous?.fingerprint !== entry.fingerprint) this.options.onChange();
  }
}

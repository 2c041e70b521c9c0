/**
 * Kubernetes plumbing shared by the simulation's controllers: API clients, merge patches, shared informers that restart
 * themselves, and a keyed work queue with retries (the shape of client-go's informer + workqueue, as external-resizer
 * and kubelet use it).
 */
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';

export const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export interface Clients {
  readonly kubeConfig: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly storage: k8s.StorageV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly extensions: k8s.ApiextensionsV1Api;
  readonly admission: k8s.AdmissionregistrationV1Api;
  readonly coordination: k8s.CoordinationV1Api;
}

export function makeClients(kubeConfig: k8s.KubeConfig): Clients {
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(k8s.CoreV1Api),
    storage: kubeConfig.makeApiClient(k8s.StorageV1Api),
    custom: kubeConfig.makeApiClient(k8s.CustomObjectsApi),
    extensions: kubeConfig.makeApiClient(k8s.ApiextensionsV1Api),
    admission: kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api),
    coordination: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
  };
}

/** HTTP status of an API error (ApiException.code), or undefined for anything else. */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof k8s.ApiException) return err.code;
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

/** The Status message the API server sent with an error, else the error's own message. */
export function apiMessage(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        return body;
      }
    }
    if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') return body.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A JSON request that bypasses the generated clients' typed serialization (which drops fields whose JSON name differs
 * from the TypeScript one, e.g. `default` and `x-kubernetes-*` in a CRD schema). Throws an ApiException on >= 400.
 */
export async function rawRequest(kubeConfig: k8s.KubeConfig, method: string, path: string, body?: unknown): Promise<unknown> {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(path, server);
  const options: https.RequestOptions = { method, headers: { 'Content-Type': 'application/json', Accept: 'application/json' } };
  await kubeConfig.applyToHTTPSOptions(options);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const code = res.statusCode ?? 0;
        if (code >= 400) {
          reject(new k8s.ApiException(code, `${method} ${path} failed with HTTP ${code}`, text, res.headers as Record<string, string>));
          return;
        }
        resolve(text ? JSON.parse(text) as unknown : undefined);
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export const isNotFound = (err: unknown): boolean => apiStatus(err) === 404;
export const isConflict = (err: unknown): boolean => apiStatus(err) === 409;
export const isAlreadyExists = (err: unknown): boolean => apiStatus(err) === 409;

export async function ignoreNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export function keyOf(obj: k8s.KubernetesObject): string {
  const name = obj.metadata?.name ?? '';
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitUntil<T>(
  description: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError === undefined ? '' : `: ${apiMessage(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${cause}`);
    }
    await sleep(intervalMs);
  }
}

export type Handler<T> = (obj: T, old?: T) => void;

interface Shared<T extends k8s.KubernetesObject> {
  informer: k8s.Informer<T> & k8s.ObjectCache<T>;
  started: Promise<void> | undefined;
  last: Map<string, T>;
}

/**
 * One informer per resource path, shared by every controller of the simulation. The client's informer stops on any
 * error other than 410; this restarts it with exponential backoff (a fresh list, like a reflector's relist).
 */
export class InformerHub {
  private readonly shared = new Map<string, Shared<k8s.KubernetesObject>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  readonly clients: Clients;
  private readonly onError: (path: string, err: unknown) => void;

  constructor(clients: Clients, onError: (path: string, err: unknown) => void = () => undefined) {
    this.clients = clients;
    this.onError = onError;
  }

  /** Registers handlers for a resource; the informer starts on first use. Returns the informer's cache. */
  watch<T extends k8s.KubernetesObject>(
    path: string, list: () => Promise<k8s.KubernetesListObject<T>>,
    handlers: { add?: Handler<T>; update?: Handler<T>; delete?: Handler<T> },
  ): k8s.ObjectCache<T> {
    let entry = this.shared.get(path) as unknown as Shared<T> | undefined;
    if (!entry) {
      entry = this.create(path, list);
      this.shared.set(path, entry);
    }
    const last = entry.last;
    const informer = entry.informer;
    if (handlers.add) {
      const add = handlers.add;
      informer.on('add', (obj) => { add(obj); });
    }
    if (handlers.update) {
      const update = handlers.update;
      informer.on('update', (obj) => { update(obj, last.get(keyOf(obj))); });
    }
    if (handlers.delete) {
      const del = handlers.delete;
      informer.on('delete', (obj) => { del(obj); });
    }
    return informer;
  }

  private create<T extends k8s.KubernetesObject>(path: string, list: () => Promise<k8s.KubernetesListObject<T>>): Shared<T> {
    const informer = k8s.makeInformer<T>(this.clients.kubeConfig, path, list);
    const last = new Map<string, T>();
    const entry: Shared<T> = { informer, started: undefined, last };
    // Registered first, so it runs after every other handler of the same event (handlers run in registration order on a
    // snapshot, and this one is re-registered last on each start()).
    let backoffMs = 250;
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.onError(path, err);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (this.stopped) return;
        informer.start().then(() => { backoffMs = 250; }, (startErr: unknown) => { this.onError(path, startErr); });
      }, backoffMs);
      backoffMs = Math.min(backoffMs * 2, 10_000);
      this.timers.add(timer);
    });
    return entry;
  }

  /** Starts every informer registered so far and waits for their initial lists. */
  async start(): Promise<void> {
    for (const entry of this.shared.values()) {
      const last = entry.last;
      // Keep a copy of the previous version of each object for update handlers (registered after the others).
      entry.informer.on('add', (obj) => { last.set(keyOf(obj), obj); });
      entry.informer.on('update', (obj) => { last.set(keyOf(obj), obj); });
      entry.informer.on('delete', (obj) => { last.delete(keyOf(obj)); });
      entry.started ??= entry.informer.start();
    }
    await Promise.all([...this.shared.values()].map((entry) => entry.started ?? Promise.resolve()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.shared.values()].map((entry) => entry.informer.stop()));
  }
}

export class RetryAfter extends Error {
  readonly delayMs: number;

  constructor(delayMs: number, message = `retry after ${delayMs} ms`) {
    super(message);
    this.name = 'RetryAfter';
    this.delayMs = delayMs;
  }
}

/**
 * A keyed work queue: a key is processed by one worker at a time, re-added keys are coalesced, failures are retried with
 * exponential backoff per key, and `RetryAfter` asks for a plain delayed requeue.
 */
export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private readonly name: string;
  private readonly sync: (key: string) => Promise<void>;
  private readonly onError: (key: string, err: unknown) => void;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(options: {
    name: string; sync: (key: string) => Promise<void>; onError?: (key: string, err: unknown) => void;
    baseDelayMs?: number; maxDelayMs?: number;
  }) {
    this.name = options.name;
    this.sync = options.sync;
    this.onError = options.onError ?? (() => undefined);
    this.baseDelayMs = options.baseDelayMs ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 5_000;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.pending.has(key)) return;
    this.pending.add(key);
    queueMicrotask(() => { this.process(key); });
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, timer);
  }

  private process(key: string): void {
    if (!this.pending.delete(key) || this.stopped) return;
    this.running.add(key);
    const run = this.sync(key).then(
      () => { this.failures.delete(key); },
      (err: unknown) => {
        if (err instanceof RetryAfter) {
          this.addAfter(key, err.delayMs);
          return;
        }
        const count = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, count);
        this.onError(key, err);
        this.addAfter(key, Math.min(this.baseDelayMs * 2 ** (count - 1), this.maxDelayMs));
      },
    ).finally(() => {
      this.running.delete(key);
      this.inFlight.delete(run);
      if (this.dirty.delete(key)) this.add(key);
    });
    this.inFlight.add(run);
  }

  /** Stops taking work and waits for the syncs in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.pending.clear();
    this.dirty.clear();
    await Promise.allSettled([...this.inFlight]);
  }

  toString(): string {
    return `WorkQueue(${this.name})`;
  }
}

/** A simple logger interface; the simulation logs through it (silent by default). */
export interface SimLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: SimLogger = { debug: () => undefined, warn: () => undefined };

export function consoleLogger(prefix = 'sim'): SimLogger {
  const write = (level: string, message: string, fields?: Record<string, unknown>): void => {
    const extra = fields ? ` ${JSON.stringify(fields)}` : '';
    process.stderr.write(`${new Date().toISOString()} ${prefix} ${level} ${message}${extra}\n`);
  };
  return { debug: (m, f) => { write('debug', m, f); }, warn: (m, f) => { write('warn', m, f); } };
}

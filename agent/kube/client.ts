/**
 * A thin Kubernetes API client for the agent, on undici: GET, LIST (paged), WATCH (newline-delimited events) and CREATE of
 * plain JSON objects. It speaks to one API server with a bearer token (asked for on every request: projected ServiceAccount
 * tokens rotate) or a client certificate, and checks the server against a CA.
 *
 * The agent needs five calls (list and watch pods and PVCs, get a PV, create TokenReviews and SubjectAccessReviews); this
 * keeps @kubernetes/client-node, whose generated API surface alone costs ~80 MiB of memory, out of the agent process.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { DynamicStorageError } from '../../shared/errors.ts';
import type { KubeList, Status, WatchEvent } from './types.ts';
import { ndjsonLines } from '../../shared/ndjson.ts';

/** Where the API server is and how to authenticate to it. */
export interface KubeConnection {
  /** `https://host:port` */
  server: string;
  /** PEM CA bundle the API server's certificate is checked against (default: the system's). */
  ca?: string | Buffer;
  /** Client certificate and key (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** A bearer token, asked for on every request. */
  token?: () => string | Promise<string>;
  insecureSkipTlsVerify?: boolean;
}

export interface Selectors {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface WatchRequest extends Selectors {
  /** Start after this version (from a list or the last event). */
  resourceVersion: string;
  /** The API server ends the watch after this long (the informer then watches again). */
  timeoutSeconds: number;
  signal?: AbortSignal;
  /** Called once the API server has accepted the watch. */
  onConnect?: () => void;
}

/** The calls the agent makes. Paths are API paths: `/api/v1/pods`, `/apis/authentication.k8s.io/v1/tokenreviews`. */
export interface KubeClient {
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  /** Lists every page; the result carries the list's resourceVersion. */
  list<T>(path: string, selectors?: Selectors, signal?: AbortSignal): Promise<KubeList<T>>;
  /** Watch events (bookmarks included) until the server ends the watch; ERROR events are returned, not thrown. */
  watch<T>(path: string, options: WatchRequest): AsyncGenerator<WatchEvent<T>, void, undefined>;
  create<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T>;
  close(): Promise<void>;
}

/** The API server answered with an error status (or a watch carried an ERROR event). */
export class KubeApiError extends DynamicStorageError {
  readonly statusCode: number;
  readonly reason: string;

  constructor(statusCode: number, reason: string, message: string) {
    super('KubeApiError', `HTTP ${statusCode} ${reason}: ${message}`);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.reason = reason;
  }
}

/** The resourceVersion asked for is too old (HTTP 410 Gone, or a watch ERROR event with code 410): list again. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 410;
}

function statusError(statusCode: number, text: string): KubeApiError {
  let status: Status;
  try {
    status = JSON.parse(text) as Status;
  } catch {
    status = { message: text.trim().slice(0, 500) };
  }
  return new KubeApiError(status.code ?? statusCode, status.reason ?? 'Unknown', status.message ?? `HTTP ${statusCode}`);
}

/** The error a watch ERROR event stands for. */
export function watchError(object: unknown): KubeApiError {
  const status = (object ?? {}) as Status;
  return new KubeApiError(status.code ?? 500, status.reason ?? 'Unknown', status.message ?? 'watch error');
}

export interface HttpKubeClientOptions {
  /** Time allowed to connect (default 5 s). */
  connectTimeoutMs?: number;
  /** Time allowed for a whole get, list page or create, and for a watch's response headers (default 30 s). */
  requestTimeoutMs?: number;
  /** Items per list page (default 500). */
  pageSize?: number;
  /** Overrides the connection pool (tests). */
  dispatcher?: Dispatcher;
}

function query(params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

export class HttpKubeClient implements KubeClient {
  private readonly server: string;
  private readonly connection: KubeConnection;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly requestTimeoutMs: number;
  private readonly pageSize: number;

  constructor(connection: KubeConnection, options: HttpKubeClientOptions = {}) {
    this.connection = connection;
    this.server = connection.server.replace(/\/+$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.pageSize = options.pageSize ?? 500;
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Agent({
      connectTimeout: options.connectTimeoutMs ?? 5000,
      connect: {
        ...(connection.ca ? { ca: connection.ca } : {}),
        ...(connection.cert ? { cert: connection.cert } : {}),
        ...(connection.key ? { key: connection.key } : {}),
        rejectUnauthorized: connection.insecureSkipTlsVerify !== true,
      },
    });
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return JSON.parse(await this.call('GET', path, undefined, signal)) as T;
  }

  async create<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return JSON.parse(await this.call('POST', path, JSON.stringify(body), signal)) as T;
  }

  async list<T>(path: string, selectors: Selectors = {}, signal?: AbortSignal): Promise<KubeList<T>> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    let continueToken: string | undefined;
    do {
      const page = JSON.parse(await this.call('GET', path + query({
        labelSelector: selectors.labelSelector, fieldSelector: selectors.fieldSelector, limit: String(this.pageSize), continue: continueToken,
      }), undefined, signal)) as KubeList<T> & { metadata?: { continue?: string } };
      for (const item of page.items) items.push(item);
      resourceVersion = page.metadata?.resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
    return { metadata: resourceVersion === undefined ? {} : { resourceVersion }, items };
  }

  async *watch<T>(path: string, options: WatchRequest): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const url = this.server + path + query({
      watch: 'true', allowWatchBookmarks: 'true', resourceVersion: options.resourceVersion, timeoutSeconds: String(options.timeoutSeconds),
      labelSelector: options.labelSelector, fieldSelector: options.fieldSelector,
    });
    const response = await request(url, {
      method: 'GET', dispatcher: this.dispatcher, headers: await this.headers(false), signal: options.signal,
      headersTimeout: this.requestTimeoutMs,
      // Nothing at all (not even a bookmark) for well past the server's own timeout: the connection is dead.
      bodyTimeout: (options.timeoutSeconds + 60) * 1000,
    });
    if (response.statusCode !== 200) throw statusError(response.statusCode, await response.body.text());
    options.onConnect?.();
    try {
      for await (const line of ndjsonLines(response.body as AsyncIterable<Uint8Array>)) yield JSON.parse(line) as WatchEvent<T>;
    } finally {
      response.body.destroy();
    }
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.destroy();
  }

  private async headers(withBody: boolean): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (withBody) headers['content-type'] = 'application/json';
    if (this.connection.token) headers.authorization = `Bearer ${(await this.connection.token()).trim()}`;
    return headers;
  }

  private async call(method: 'GET' | 'POST', path: string, body: string | undefined, signal?: AbortSignal): Promise<string> {
    const deadline = AbortSignal.timeout(this.requestTimeoutMs);
    const response = await request(this.server + path, {
      method, dispatcher: this.dispatcher, headers: await this.headers(body !== undefined), body,
      signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      headersTimeout: this.requestTimeoutMs, bodyTimeout: this.requestTimeoutMs,
    });
    const text = await response.body.text();
    if (response.statusCode < 200 || response.statusCode > 299) throw statusError(response.statusCode, text);
    return text;
  }
}

/** A client for one API server: `createKubeClient({ server, ca, token })`. */
export function createKubeClient(connection: KubeConnection, options?: HttpKubeClientOptions): KubeClient {
  return new HttpKubeClient(connection, options);
}

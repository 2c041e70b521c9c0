/**
 * A thin Kubernetes API client for the agent, on Node's own `node:https` (and `node:http` for plain test servers): GET,
 * LIST (paged), WATCH (newline-delimited events) and CREATE of plain JSON objects. It speaks to one API server over kept-alive
 * connections with a bearer token (asked for on every request: projected ServiceAccount tokens rotate) or a client
 * certificate, and checks the server against a CA.
 *
 * The agent needs five calls (list and watch pods and PVCs, get a PV, create TokenReviews and SubjectAccessReviews); this
 * keeps @kubernetes/client-node, whose generated API surface alone costs ~80 MiB of memory, out of the agent process, and
 * undici too (~13 MiB): the agent's server loads `node:http` and `node:https` anyway.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
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
  /**
   * An idle kept-alive connection is closed after this long (default 4 s, as undici did): closing before the API server
   * does avoids sending a request on a connection the server is closing at that moment.
   */
  keepAliveMs?: number;
}

/** A transport failure or timeout, with a stable code (the HTTP status ones are KubeApiError). */
export class KubeTransportError extends DynamicStorageError {
  constructor(code: 'KubeConnectTimeout' | 'KubeHeadersTimeout' | 'KubeBodyTimeout', message: string) {
    super(code, message);
    this.name = 'KubeTransportError';
  }
}

interface Exchange {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Time allowed from the request to the response's headers. */
  headersTimeoutMs: number;
  /** Time the response may stay silent before the connection counts as dead. */
  bodyTimeoutMs: number;
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
  private readonly agent: http.Agent;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly pageSize: number;

  constructor(connection: KubeConnection, options: HttpKubeClientOptions = {}) {
    this.connection = connection;
    this.server = connection.server.replace(/\/+$/, '');
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.pageSize = options.pageSize ?? 500;
    // An Agent's `timeout` closes only its free (idle) sockets; requests in flight have their own timeouts (send()).
    const keepAlive = { keepAlive: true, timeout: options.keepAliveMs ?? 4000 };
    this.agent = this.server.startsWith('http:')
      ? new http.Agent(keepAlive)
      : new https.Agent({
        ...keepAlive,
        ...(connection.ca ? { ca: connection.ca } : {}),
        ...(connection.cert ? { cert: connection.cert } : {}),
        ...(connection.key ? { key: connection.key } : {}),
        rejectUnauthorized: connection.insecureSkipTlsVerify !== true,
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
    const url = new URL(this.server + path + query({
      watch: 'true', allowWatchBookmarks: 'true', resourceVersion: options.resourceVersion, timeoutSeconds: String(options.timeoutSeconds),
      labelSelector: options.labelSelector, fieldSelector: options.fieldSelector,
    }));
    const response = await this.send({
      method: 'GET', url, headers: await this.headers(false), signal: options.signal, headersTimeoutMs: this.requestTimeoutMs,
      // Nothing at all (not even a bookmark) for well past the server's own timeout: the connection is dead.
      bodyTimeoutMs: (options.timeoutSeconds + 60) * 1000,
    });
    try {
      if (response.statusCode !== 200) throw statusError(response.statusCode ?? 0, await readText(response));
      options.onConnect?.();
      for await (const line of ndjsonLines(response)) yield JSON.parse(line) as WatchEvent<T>;
    } finally {
      response.destroy();
    }
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }

  private async headers(withBody: boolean): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (withBody) headers['content-type'] = 'application/json';
    if (this.connection.token) headers.authorization = `Bearer ${(await this.connection.token()).trim()}`;
    return headers;
  }

  private async call(method: 'GET' | 'POST', path: string, body: string | undefined, signal?: AbortSignal): Promise<string> {
    const deadline = AbortSignal.timeout(this.requestTimeoutMs);
    const headers = await this.headers(body !== undefined);
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const response = await this.send({
      method, url: new URL(this.server + path), headers, body, signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      headersTimeoutMs: this.requestTimeoutMs, bodyTimeoutMs: this.requestTimeoutMs,
    });
    const text = await readText(response);
    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299) throw statusError(status, text);
    return text;
  }

  /** One request; resolves with the response once its headers are in, the body still to read. */
  private send(exchange: Exchange): Promise<http.IncomingMessage> {
    const { url } = exchange;
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = transport.request(url, {
        method: exchange.method, agent: this.agent, headers: exchange.headers, ...(exchange.signal ? { signal: exchange.signal } : {}),
      });
      const fail = (err: Error): void => { req.destroy(err); };
      const headersTimer = setTimeout(() => {
        fail(new KubeTransportError('KubeHeadersTimeout', `no response from ${url.host} within ${exchange.headersTimeoutMs} ms`));
      }, exchange.headersTimeoutMs);
      req.once('socket', (socket: Socket) => { this.guardConnect(socket, url.protocol === 'https:', fail); });
      req.once('error', (err) => {
        clearTimeout(headersTimer);
        reject(err);
      });
      req.once('response', (response) => {
        clearTimeout(headersTimer);
        req.setTimeout(exchange.bodyTimeoutMs, () => {
          fail(new KubeTransportError('KubeBodyTimeout', `${url.host} sent nothing for ${exchange.bodyTimeoutMs} ms`));
        });
        // A request destroyed while its body is read (abort, timeout) fails the body with the same error.
        req.once('error', (err) => { response.destroy(err); });
        resolve(response);
      });
      req.end(exchange.body);
    });
  }

  /** A new connection must be up (TLS handshake included) within the connect timeout; a kept-alive one is. */
  private guardConnect(socket: Socket, tls: boolean, fail: (err: Error) => void): void {
    if (!socket.connecting) return;
    const timer = setTimeout(() => {
      fail(new KubeTransportError('KubeConnectTimeout', `could not connect to the API server within ${this.connectTimeoutMs} ms`));
    }, this.connectTimeoutMs);
    const done = (): void => { clearTimeout(timer); };
    socket.once(tls ? 'secureConnect' : 'connect', done);
    socket.once('close', done);
  }
}

/** The whole body as text (UTF-8). */
async function readText(response: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A client for one API server: `createKubeClient({ server, ca, token })`. */
export function createKubeClient(connection: KubeConnection, options?: HttpKubeClientOptions): KubeClient {
  return new HttpKubeClient(connection, options);
}

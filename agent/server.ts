/**
 * The agent's HTTP(S) endpoints.
 *
 * | path                 | auth | answer                                                            |
 * |----------------------|------|-------------------------------------------------------------------|
 * | `/healthz`           | no   | 200 while the probe loop runs on time, else 503                   |
 * | `/readyz`            | no   | 200 once discovery has listed its node and a pass has run          |
 * | `/metrics`           | yes  | Prometheus text exposition                                        |
 * | `/v1/volumes`        | yes  | VolumeList (shared/readings.ts)                                   |
 * | `/v1/volumes/watch`  | yes  | newline-delimited VolumeEvents (agent/stream.ts)                  |
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { errorMessage } from '../shared/errors.ts';
import { listenOn } from '../shared/listen.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentMetrics } from './metrics.ts';
import type { Prober } from './prober.ts';
import { FailureLimiter, gateRequest, type RequestAuthorizer } from '../shared/auth.ts';

export { FailureLimiter };
import type { ChangeStream } from './stream.ts';

export interface Probe {
  ok: boolean;
  message: string;
}

/** How much the agent lets any one client take; see docs/security.md. */
export interface ServerLimits {
  /** Connections open at once, in all (default 1024). */
  maxConnections: number;
  /** Connections open at once from one address (default 32): one client cannot take the others' share. */
  maxConnectionsPerAddress: number;
  /** Time to send a request's headers (default 10 s). */
  headersTimeoutMs: number;
  /** A connection with no request in flight is closed after this long (default 15 s); change streams are exempt. */
  idleTimeoutMs: number;
  /** Change streams open at once (default 64), and per caller (default 4). */
  maxStreams: number;
  maxStreamsPerCaller: number;
  /** Failed authentications from one address allowed per window (default 20 per 10 s); then 429 without asking the API server. */
  authFailuresPerWindow: number;
  authFailureWindowMs: number;
}

export const defaultServerLimits: ServerLimits = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 32,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 15_000,
  maxStreams: 64,
  maxStreamsPerCaller: 4,
  authFailuresPerWindow: 20,
  authFailureWindowMs: 10_000,
};

export interface ServerOptions {
  host: string;
  port: number;
  limits?: Partial<ServerLimits>;
  /**
   * Serve HTTPS. With `certFile` and `keyFile`, they are re-read every `reloadMs` (default 60 s) and a changed pair is
   * served from the next handshake on: the controller replaces the Secret the DaemonSet mounts, kubelet updates the files.
   */
  tls?: { cert: string | Buffer; key: string | Buffer; certFile?: string | undefined; keyFile?: string | undefined; reloadMs?: number | undefined };
  authorizer: Pick<RequestAuthorizer, 'check'>;
  prober: Prober;
  stream: ChangeStream;
  metrics: AgentMetrics;
  liveness: () => Probe;
  readiness: () => Probe;
  logger: Logger;
}

export interface AgentServer {
  readonly url: string;
  readonly port: number;
  /** Stops accepting, ends the change streams, waits for in-flight requests (then cuts them after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

export const protectedPaths = ['/metrics', '/v1/volumes', '/v1/volumes/watch'] as const;

function sendText(res: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(text.endsWith('\n') ? text : text + '\n');
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** Open change streams, per caller: one caller cannot take every slot. */
class StreamSlots {
  private readonly perCaller = new Map<string, number>();
  private total = 0;
  private readonly limits: ServerLimits;

  constructor(limits: ServerLimits) {
    this.limits = limits;
  }

  /** A release function, or undefined when no slot is free for this caller. */
  take(caller: string): (() => void) | undefined {
    const mine = this.perCaller.get(caller) ?? 0;
    if (this.total >= this.limits.maxStreams || mine >= this.limits.maxStreamsPerCaller) return undefined;
    this.total += 1;
    this.perCaller.set(caller, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perCaller.get(caller) ?? 1) - 1;
      if (left <= 0) this.perCaller.delete(caller);
      else this.perCaller.set(caller, left);
    };
  }
}

interface ServerState {
  limits: ServerLimits;
  failures: FailureLimiter;
  streams: StreamSlots;
}

interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** The authenticated caller's user name. */
  caller: string;
}

async function serveProtected(options: ServerOptions, state: ServerState, path: string, { req, res, caller }: Exchange): Promise<void> {
  switch (path) {
    case '/metrics': {
      const text = await options.metrics.expose();
      res.writeHead(200, { 'content-type': options.metrics.contentType, 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    case '/v1/volumes':
      sendJson(res, 200, options.prober.snapshot());
      return;
    default: {
      const release = state.streams.take(caller);
      if (!release) {
        sendText(res, 429, 'Too Many Requests: too many change streams open', { 'retry-after': '5', connection: 'close' });
        return;
      }
      res.on('close', release);
      // A change stream is quiet from the client's side by design; the heartbeats keep it alive.
      req.socket.setTimeout(0);
      options.stream.attach(res);
    }
  }
}

async function handle(options: ServerOptions, state: ServerState, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://agent').pathname;
  if (path === '/healthz' || path === '/readyz') {
    const probe = path === '/healthz' ? options.liveness() : options.readiness();
    sendText(res, probe.ok ? 200 : 503, probe.message);
    return;
  }
  if (!(protectedPaths as readonly string[]).includes(path)) {
    sendText(res, 404, 'Not Found');
    return;
  }
  if (req.method !== 'GET') {
    sendText(res, 405, 'Method Not Allowed', { allow: 'GET' });
    return;
  }
  const caller = await gateRequest({ authorizer: options.authorizer, failures: state.failures, realm: 'cnpg-dynamic-storage-agent', logger: options.logger }, req, res, path);
  if (caller === undefined) return;
  await serveProtected(options, state, path, { req, res, caller: caller.username });
}

/** Caps connections (in all and per address) and closes connections that sit idle. */
function guardConnections(server: http.Server, limits: ServerLimits): void {
  const perAddress = new Map<string, number>();
  server.maxConnections = limits.maxConnections;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.headersTimeoutMs * 3;
  server.keepAliveTimeout = Math.min(limits.idleTimeoutMs, 65_000);
  // TLS handshakes happen before 'connection' listeners of the HTTP layer see a request: guard the raw socket.
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const count = (perAddress.get(address) ?? 0) + 1;
    if (count > limits.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(address, count);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
    socket.setTimeout(limits.idleTimeoutMs, () => { socket.destroy(); });
  });
}

export async function startServer(options: ServerOptions): Promise<AgentServer> {
  const limits: ServerLimits = { ...defaultServerLimits, ...options.limits };
  const state: ServerState = { limits, failures: new FailureLimiter(limits.authFailuresPerWindow, limits.authFailureWindowMs), streams: new StreamSlots(limits) };
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handle(options, state, req, res).catch((err: unknown) => {
      options.logger.error('request failed', { err, path: req.url });
      if (!res.headersSent) sendText(res, 500, `Internal Server Error: ${errorMessage(err)}`);
      else res.destroy();
    });
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, listener)
    : http.createServer(listener);
  guardConnections(server, limits);
  const reload = server instanceof https.Server && options.tls ? watchCertificate(server, options.tls, options.logger) : undefined;
  const port = await listenOn(server, options.port, options.host);
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.tls ? 'https' : 'http'}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close(graceMs = 5000): Promise<void> {
      if (reload) clearInterval(reload);
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.closeAllConnections(); }, graceMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        options.stream.close();
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** Re-reads the certificate files and serves a changed pair; a half-written pair (not matching) is skipped, logged. */
function watchCertificate(server: https.Server, tls: NonNullable<ServerOptions['tls']>, logger: Logger): NodeJS.Timeout | undefined {
  const { certFile, keyFile } = tls;
  if (!certFile || !keyFile) return undefined;
  let current = `${tls.cert.toString()}\u0000${tls.key.toString()}`;
  const timer = setInterval(() => {
    void Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]).then(([cert, key]) => {
      if (`${cert}\u0000${key}` === current) return;
      server.setSecureContext({ cert, key });
      current = `${cert}\u0000${key}`;
      logger.info('serving certificate reloaded', { certFile });
    }).catch((err: unknown) => { logger.warn('could not reload the serving certificate; serving the previous one', { err, certFile }); });
  }, tls.reloadMs ?? 60_000);
  timer.unref();
  return timer;
}

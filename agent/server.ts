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
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentMetrics } from './metrics.ts';
import type { Prober } from './prober.ts';
import type { AuthOutcome, RequestAuthorizer } from './auth.ts';
import type { ChangeStream } from './stream.ts';

export interface Probe {
  ok: boolean;
  message: string;
}

export interface ServerOptions {
  host: string;
  port: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
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

function denied(res: http.ServerResponse, outcome: Exclude<AuthOutcome, { status: 200 }>): void {
  const headers: http.OutgoingHttpHeaders = {};
  if (outcome.status === 401) headers['www-authenticate'] = 'Bearer realm="cnpg-dynamic-storage-agent"';
  if (outcome.status === 503) headers['retry-after'] = '1';
  const text = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' }[outcome.status];
  sendText(res, outcome.status, `${text}: ${outcome.reason}`, headers);
}

async function serveProtected(options: ServerOptions, path: string, res: http.ServerResponse): Promise<void> {
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
    default:
      options.stream.attach(res);
  }
}

async function handle(options: ServerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
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
  const outcome = await options.authorizer.check(req.headers.authorization, path);
  if (outcome.status !== 200) {
    options.logger.debug('request refused', { path, status: outcome.status, reason: outcome.reason });
    denied(res, outcome);
    return;
  }
  await serveProtected(options, path, res);
}

export async function startServer(options: ServerOptions): Promise<AgentServer> {
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handle(options, req, res).catch((err: unknown) => {
      options.logger.error('request failed', { err, path: req.url });
      if (!res.headersSent) sendText(res, 500, `Internal Server Error: ${errorMessage(err)}`);
      else res.destroy();
    });
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, listener)
    : http.createServer(listener);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.tls ? 'https' : 'http'}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close(graceMs = 5000): Promise<void> {
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

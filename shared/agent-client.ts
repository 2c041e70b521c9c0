/**
 * A typed client for one node agent (`GET /v1/volumes`, `GET /v1/volumes/watch`, `GET /metrics`), in the manner of CNPG's
 * instance-manager client: per-request timeouts, a typed status error, and a few jittered retries for connection errors
 * only (never after the agent has answered).
 */
import { Agent, request, type Dispatcher } from 'undici';
import { backoffDelay } from './backoff.ts';
import { DynamicStorageError } from './errors.ts';
import { parseVolumeEvent, parseVolumeList, ReadingFormatError, type VolumeEvent, type VolumeList } from './readings.ts';
import { DEFAULT_MAX_LINE_BYTES, LineTooLongError, ndjsonLines } from './ndjson.ts';
import { sleep } from './sleep.ts';

export interface AgentClientOptions {
  /** `http(s)://<pod IP>:<port>` */
  baseUrl: string;
  /** The caller's bearer token, asked for on every request (projected ServiceAccount tokens rotate). */
  token: () => string | Promise<string>;
  /** PEM CA bundle that signed the agent's serving certificate. */
  ca?: string | Buffer;
  /** The name the agent's certificate is checked against (default: the host of baseUrl). */
  tlsServerName?: string;
  /** Skip verifying the agent's certificate (a self-signed agent on the pod network). */
  insecureSkipVerify?: boolean;
  /** Time allowed to connect (default 2 s). */
  connectTimeoutMs?: number;
  /** Time allowed for a whole snapshot or metrics request, and for a change stream's response headers (default 5 s). */
  requestTimeoutMs?: number;
  /** Retries of a request whose connection failed (default 3). */
  retries?: number;
  /** First retry delay; doubled each time, with jitter (default 100 ms). */
  retryBaseMs?: number;
  /** Longest change-stream line and largest answer read from an agent (default 4 MiB). */
  maxMessageBytes?: number;
  /** Overrides the connection pool (tests). */
  dispatcher?: Dispatcher;
  random?: () => number;
}

export interface WatchOptions {
  signal?: AbortSignal;
  /** The stream fails when nothing (not even a heartbeat) arrives for this long (default 15 s, three heartbeats). */
  idleTimeoutMs?: number;
}

/** The agent answered with a status other than 200. */
export class AgentStatusError extends DynamicStorageError {
  readonly statusCode: number;
  readonly body: string;

  constructor(statusCode: number, body: string, url: string) {
    const code = { 401: 'AgentUnauthorized', 403: 'AgentForbidden', 503: 'AgentUnavailable' }[statusCode] ?? 'AgentHttpError';
    super(code, `${url}: HTTP ${statusCode}: ${body.trim().slice(0, 500)}`);
    this.name = 'AgentStatusError';
    this.statusCode = statusCode;
    this.body = body;
  }
}

/** The agent could not be reached (after the retries), or the stream broke or went silent. */
export class AgentConnectionError extends DynamicStorageError {
  constructor(message: string, cause: unknown) {
    super('AgentUnreachable', message, { cause });
    this.name = 'AgentConnectionError';
  }
}

const retriableCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
]);

function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && retriableCodes.has(code)) return code;
  }
  return undefined;
}

/** True for errors where the request never reached the agent's handler, so trying again is safe. */
export function isConnectionError(err: unknown): boolean {
  return causeCode(err) !== undefined;
}

/** The body as text, refusing (and dropping the connection) past `limit` bytes. */
async function boundedText(body: AsyncIterable<Uint8Array> & { destroy(): unknown }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) {
      body.destroy();
      throw new ReadingFormatError(`an answer is larger than ${limit} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class AgentClient {
  readonly baseUrl: string;
  private readonly options: AgentClientOptions;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(options: AgentClientOptions) {
    this.options = options;
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Agent({
      connectTimeout: options.connectTimeoutMs ?? 2000,
      connect: {
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.tlsServerName ? { servername: options.tlsServerName } : {}),
        rejectUnauthorized: options.insecureSkipVerify !== true,
      },
    });
  }

  /** Every volume's latest reading. */
  async snapshot(signal?: AbortSignal): Promise<VolumeList> {
    const text = await this.getText('/v1/volumes', signal);
    let decoded: unknown;
    try {
      decoded = JSON.parse(text);
    } catch {
      throw new ReadingFormatError('the volume list is not JSON');
    }
    return parseVolumeList(decoded);
  }

  /** The Prometheus exposition text. */
  metrics(signal?: AbortSignal): Promise<string> {
    return this.getText('/metrics', signal);
  }

  /**
   * The change stream: a SNAPSHOT first, then UPDATED / REMOVED / HEARTBEAT events as they happen. Ends when the agent ends
   * the stream (it shuts down); throws AgentConnectionError when the connection breaks or stays silent for idleTimeoutMs.
   * Reconnecting simply starts over with a new SNAPSHOT.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<VolumeEvent, void, undefined> {
    const response = await this.open('/v1/volumes/watch', options.idleTimeoutMs ?? 15_000, options.signal);
    if (response.statusCode !== 200) {
      throw new AgentStatusError(response.statusCode, await response.body.text(), `${this.baseUrl}/v1/volumes/watch`);
    }
    try {
      const limit = this.options.maxMessageBytes ?? DEFAULT_MAX_LINE_BYTES;
      for await (const line of ndjsonLines(response.body as AsyncIterable<Uint8Array>, limit)) yield this.decodeEvent(line);
    } catch (err) {
      if (err instanceof ReadingFormatError || options.signal?.aborted) throw err;
      if (err instanceof LineTooLongError) throw new ReadingFormatError(`${this.baseUrl}/v1/volumes/watch: ${err.message}`);
      throw new AgentConnectionError(`${this.baseUrl}/v1/volumes/watch: the stream broke: ${(err as Error).message}`, err);
    } finally {
      response.body.destroy();
    }
  }

  /** Closes the connection pool (when the client made its own), cutting any change stream still open. */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.destroy();
  }

  private decodeEvent(line: string): VolumeEvent {
    let decoded: unknown;
    try {
      decoded = JSON.parse(line);
    } catch {
      throw new ReadingFormatError(`a change stream line is not JSON: ${line.slice(0, 200)}`);
    }
    return parseVolumeEvent(decoded);
  }

  private async getText(path: string, signal?: AbortSignal): Promise<string> {
    const timeoutMs = this.options.requestTimeoutMs ?? 5000;
    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let statusCode: number;
    let text: string;
    try {
      const response = await this.open(path, timeoutMs, combined);
      statusCode = response.statusCode;
      text = await boundedText(response.body as AsyncIterable<Uint8Array> & { destroy(): unknown }, this.options.maxMessageBytes ?? DEFAULT_MAX_LINE_BYTES);
    } catch (err) {
      if (deadline.aborted && !signal?.aborted) {
        throw new AgentConnectionError(`${this.baseUrl}${path}: no complete answer within ${timeoutMs} ms`, err);
      }
      throw err;
    }
    if (statusCode !== 200) throw new AgentStatusError(statusCode, text, `${this.baseUrl}${path}`);
    return text;
  }

  /** Sends the request, retrying connection failures only. */
  private async open(path: string, bodyTimeoutMs: number, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    const retries = this.options.retries ?? 3;
    const base = this.options.retryBaseMs ?? 100;
    const random = this.options.random ?? Math.random;
    for (let attempt = 0; ; attempt++) {
      try {
        const token = await this.options.token();
        return await request(`${this.baseUrl}${path}`, {
          method: 'GET', dispatcher: this.dispatcher, signal,
          headers: { authorization: `Bearer ${token}`, accept: path === '/metrics' ? 'text/plain' : 'application/json' },
          headersTimeout: this.options.requestTimeoutMs ?? 5000, bodyTimeout: bodyTimeoutMs,
        });
      } catch (err) {
        if (signal?.aborted || !isConnectionError(err)) throw err;
        if (attempt >= retries) {
          throw new AgentConnectionError(`${this.baseUrl}${path}: ${causeCode(err)}: ${(err as Error).message} (after ${attempt + 1} attempts)`, err);
        }
        await sleep(backoffDelay({ initialMs: base, maxMs: Number.POSITIVE_INFINITY }, attempt + 1, random), signal);
        signal?.throwIfAborted();
      }
    }
  }
}

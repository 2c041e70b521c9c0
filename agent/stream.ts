/**
 * The change stream behind `GET /v1/volumes/watch`: newline-delimited JSON over one long-lived response.
 *
 * Every connection starts with a SNAPSHOT of every volume; after that the stream carries UPDATED and REMOVED events as the
 * probe pass that saw them ends (each event is serialized once and written to every consumer), and a HEARTBEAT whenever a
 * consumer has heard nothing for `heartbeatMs`. A consumer that reads too slowly to keep `maxBufferedBytes` in its socket
 * is disconnected; it reconnects and starts over from a fresh snapshot, so nothing is ever silently skipped.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.ts';
import { agentApiVersion, type HeartbeatEvent, type SnapshotEvent } from '../shared/readings.ts';
import type { ChangeEvent, Prober, ProberClock, Scheduler } from './prober.ts';
import { systemClock, systemScheduler } from './prober.ts';

export interface ChangeStreamOptions {
  prober: Prober;
  node: string;
  epoch: string;
  heartbeatMs: number;
  maxBufferedBytes?: number;
  clock?: ProberClock;
  scheduler?: Scheduler;
  logger: Logger;
}

interface Client {
  res: ServerResponse;
  lastWriteMono: number;
}

export const ndjsonContentType = 'application/x-ndjson';

export class ChangeStream {
  private readonly clients = new Set<Client>();
  private readonly clock: ProberClock;
  private readonly scheduler: Scheduler;
  private readonly maxBufferedBytes: number;
  private readonly options: ChangeStreamOptions;
  private unsubscribe: (() => void) | undefined;
  private heartbeatTimer: unknown;
  private closed = false;

  constructor(options: ChangeStreamOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 8 * 1024 * 1024;
  }

  get size(): number {
    return this.clients.size;
  }

  start(): void {
    this.unsubscribe = this.options.prober.subscribe((events) => { this.broadcast(events); });
    this.scheduleHeartbeat();
  }

  /** Takes over a response: headers, the snapshot, then every change until either side closes. */
  attach(res: ServerResponse): void {
    if (this.closed) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('shutting down\n');
      return;
    }
    res.writeHead(200, { 'content-type': ndjsonContentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.socket?.setNoDelay(true);
    const list = this.options.prober.snapshot();
    const snapshot: SnapshotEvent = {
      apiVersion: agentApiVersion, node: list.node, epoch: list.epoch, seq: list.seq, type: 'SNAPSHOT', volumes: list.volumes,
    };
    const client: Client = { res, lastWriteMono: this.clock.monoMs() };
    this.clients.add(client);
    res.on('close', () => { this.clients.delete(client); });
    this.write(client, JSON.stringify(snapshot) + '\n');
  }

  /** Ends every stream (clean shutdown). */
  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    if (this.heartbeatTimer !== undefined) this.scheduler.clearTimeout(this.heartbeatTimer);
    for (const client of this.clients) client.res.end();
    this.clients.clear();
  }

  private broadcast(events: readonly ChangeEvent[]): void {
    if (this.clients.size === 0) return;
    let text = '';
    for (const event of events) text += JSON.stringify(event) + '\n';
    for (const client of this.clients) this.write(client, text);
  }

  private write(client: Client, text: string): void {
    if (client.res.writableLength > this.maxBufferedBytes) {
      this.options.logger.warn('change stream consumer too slow; disconnecting it', { buffered: client.res.writableLength });
      this.clients.delete(client);
      client.res.destroy();
      return;
    }
    client.lastWriteMono = this.clock.monoMs();
    client.res.write(text);
  }

  private scheduleHeartbeat(): void {
    if (this.closed) return;
    this.heartbeatTimer = this.scheduler.setTimeout(() => {
      this.heartbeat();
      this.scheduleHeartbeat();
    }, Math.max(10, Math.floor(this.options.heartbeatMs / 4)));
  }

  private heartbeat(): void {
    const now = this.clock.monoMs();
    let line: string | undefined;
    for (const client of this.clients) {
      if (now - client.lastWriteMono < this.options.heartbeatMs) continue;
      if (line === undefined) {
        const event: HeartbeatEvent = {
          apiVersion: agentApiVersion, node: this.options.node, epoch: this.options.epoch, seq: this.options.prober.seq,
          type: 'HEARTBEAT', time: new Date(this.clock.wallMs()).toISOString(),
        };
        line = JSON.stringify(event) + '\n';
      }
      this.write(client, line);
    }
  }
}

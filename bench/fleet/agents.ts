/**
 * Many node agents served from one process, speaking the agents' change stream (`GET /v1/volumes/watch`: a SNAPSHOT,
 * then UPDATED and HEARTBEAT lines, shared/readings.ts) under `/nodes/<node>`. Like the real agent (agent/prober.ts),
 * an unchanged reading is sent again every 30 s; `set` changes one volume's usage and sends it at once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { agentApiVersion, type FilesystemUsage, type VolumeEvent, type VolumeReading } from '../../shared/readings.ts';

export interface SimulatedVolume {
  namespace: string;
  cluster: string;
  instance: string;
  role: 'data' | 'wal' | 'tablespace';
  tablespace?: string | undefined;
  pvc: string;
  node: string;
  totalBytes: number;
  usedBytes: number;
}

export interface SimulatedAgents {
  readonly url: string;
  /** Sets a volume's usage and sends the reading now; returns when it was written to the stream (ms, performance.now). */
  set(pvcKey: string, usage: { totalBytes?: number; usedBytes: number }): number | undefined;
  volume(pvcKey: string): SimulatedVolume | undefined;
  /** Open streams (one per connected node). */
  streams(): number;
  close(): Promise<void>;
}

function usageOf(volume: SimulatedVolume): FilesystemUsage {
  const free = volume.totalBytes - volume.usedBytes;
  return {
    totalBytes: volume.totalBytes, usedBytes: volume.usedBytes, availableBytes: free, freeBytes: free,
    percentUsed: Math.ceil((volume.usedBytes * 100) / volume.totalBytes), inodesTotal: 65_536, inodesUsed: 1_000, inodesFree: 64_536, inodesPercentUsed: 2,
  };
}

function readingOf(volume: SimulatedVolume, sampledAt: string, changedAt: string): VolumeReading {
  return {
    key: `${volume.namespace}/${volume.pvc}`, namespace: volume.namespace, cluster: volume.cluster, instance: volume.instance, role: volume.role,
    ...(volume.tablespace === undefined ? {} : { tablespace: volume.tablespace }),
    pvc: volume.pvc, pv: `pv-${volume.pvc}`, podName: volume.instance, podUid: `uid-${volume.instance}`, node: volume.node,
    path: `/var/lib/kubelet/pods/uid-${volume.instance}/volumes/kubernetes.io~csi/pv-${volume.pvc}/mount`,
    status: 'ok', usage: usageOf(volume), sampledAt, changedAt,
  };
}

export async function startSimulatedAgents(volumes: readonly SimulatedVolume[], options: { refreshMs?: number; heartbeatMs?: number } = {}): Promise<SimulatedAgents> {
  const refreshMs = options.refreshMs ?? 30_000;
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const epoch = `bench-${process.pid}`;
  let seq = 0;
  const byKey = new Map<string, { volume: SimulatedVolume; changedAt: string; sentAt: number }>();
  const byNode = new Map<string, string[]>();
  for (const volume of volumes) {
    const key = `${volume.namespace}/${volume.pvc}`;
    byKey.set(key, { volume, changedAt: new Date().toISOString(), sentAt: 0 });
    byNode.set(volume.node, [...(byNode.get(volume.node) ?? []), key]);
  }
  const streams = new Map<string, Set<http.ServerResponse>>();
  const write = (node: string, event: VolumeEvent): void => {
    const line = JSON.stringify(event) + '\n';
    for (const res of streams.get(node) ?? []) res.write(line);
  };
  const send = (key: string, changed: boolean): void => {
    const entry = byKey.get(key);
    if (!entry) return;
    const now = new Date().toISOString();
    if (changed) entry.changedAt = now;
    entry.sentAt = Date.now();
    seq += 1;
    write(entry.volume.node, { apiVersion: agentApiVersion, node: entry.volume.node, epoch, seq, type: 'UPDATED', volume: readingOf(entry.volume, now, entry.changedAt) });
  };

  const server = http.createServer((req, res) => {
    const match = /^\/nodes\/([^/]+)\/v1\/volumes\/watch$/.exec(new URL(req.url ?? '/', 'http://agents').pathname);
    const node = match?.[1];
    if (!node) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    const now = new Date().toISOString();
    const keys = byNode.get(node) ?? [];
    const snapshot = keys.flatMap((key) => {
      const entry = byKey.get(key);
      return entry ? [readingOf(entry.volume, now, entry.changedAt)] : [];
    });
    res.write(JSON.stringify({ apiVersion: agentApiVersion, node, epoch, seq, type: 'SNAPSHOT', volumes: snapshot } satisfies VolumeEvent) + '\n');
    const set = streams.get(node) ?? new Set<http.ServerResponse>();
    set.add(res);
    streams.set(node, set);
    req.on('close', () => { set.delete(res); });
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  // Unchanged readings again every refreshMs, spread over the period as probes of many volumes are.
  const all = [...byKey.keys()];
  let cursor = 0;
  const tickMs = 100;
  const refresher = setInterval(() => {
    const due = Math.ceil((all.length * tickMs) / refreshMs);
    for (let i = 0; i < due && all.length > 0; i += 1) {
      const key = all[cursor % all.length] ?? '';
      cursor += 1;
      if (Date.now() - (byKey.get(key)?.sentAt ?? 0) >= refreshMs * 0.9) send(key, false);
    }
  }, tickMs);
  const heartbeat = setInterval(() => {
    for (const node of streams.keys()) write(node, { apiVersion: agentApiVersion, node, epoch, seq, type: 'HEARTBEAT', time: new Date().toISOString() });
  }, heartbeatMs);

  return {
    url: `http://127.0.0.1:${port}`,
    set(key, usage) {
      const entry = byKey.get(key);
      if (!entry) return undefined;
      entry.volume.usedBytes = usage.usedBytes;
      if (usage.totalBytes !== undefined) entry.volume.totalBytes = usage.totalBytes;
      send(key, true);
      return performance.now();
    },
    volume: (key) => byKey.get(key)?.volume,
    streams: () => [...streams.values()].reduce((n, s) => n + s.size, 0),
    async close() {
      clearInterval(refresher);
      clearInterval(heartbeat);
      for (const set of streams.values()) for (const res of set) res.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
    },
  };
}

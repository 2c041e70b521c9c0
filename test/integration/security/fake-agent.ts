/**
 * A hostile "agent" for the security tests: an HTTP server that answers the change stream with whatever readings it is
 * told to, and remembers the bearer tokens it was sent.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { agentApiVersion, type VolumeReading } from '../../../shared/readings.ts';

export interface FakeAgent {
  readonly url: string;
  /** Authorization headers received, in order. */
  readonly tokens: string[];
  /** Change-stream requests received. */
  watches(): number;
  close(): Promise<void>;
}

/** A reading of `pvc` that says the volume is `percent` full, as an agent on `node` would send it. */
export function fakeReading(options: { namespace: string; cluster: string; pvc: string; node: string; percent: number; sampledAt?: Date }): VolumeReading {
  const total = 64 * 1024 * 1024;
  const used = Math.round((total * options.percent) / 100);
  const at = (options.sampledAt ?? new Date()).toISOString();
  return {
    key: `${options.namespace}/${options.pvc}`, namespace: options.namespace, cluster: options.cluster, instance: options.pvc, role: 'data',
    pvc: options.pvc, pv: `pv-${options.pvc}`, podName: options.pvc, podUid: '00000000-0000-0000-0000-000000000000', node: options.node,
    path: `/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/pv-${options.pvc}/mount`,
    status: 'ok',
    usage: {
      totalBytes: total, usedBytes: used, availableBytes: total - used, freeBytes: total - used, percentUsed: options.percent,
      inodesTotal: 1000, inodesUsed: 10, inodesFree: 990, inodesPercentUsed: 1,
    },
    sampledAt: at, changedAt: at,
  };
}

export async function startFakeAgent(host: string, port: number, node: string, volumes: () => VolumeReading[]): Promise<FakeAgent> {
  const tokens: string[] = [];
  let watches = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    tokens.push(req.headers.authorization ?? '');
    if (!req.url?.startsWith('/v1/volumes/watch')) {
      res.writeHead(404).end();
      return;
    }
    watches += 1;
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const envelope = { apiVersion: agentApiVersion, node, epoch: 'fake', seq: 1 };
    res.write(JSON.stringify({ ...envelope, type: 'SNAPSHOT', volumes: volumes() }) + '\n');
    const timer = setInterval(() => {
      for (const volume of volumes()) res.write(JSON.stringify({ ...envelope, type: 'UPDATED', volume }) + '\n');
    }, 500);
    timers.add(timer);
    res.on('close', () => { clearInterval(timer); timers.delete(timer); });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    tokens,
    watches: () => watches,
    close: () => new Promise<void>((resolve) => {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
  };
}

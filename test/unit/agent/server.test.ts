import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAgent, type RunningAgent } from '../../../agent/agent.ts';
import { configDefaults, type AgentConfig } from '../../../agent/config.ts';
import type { AuthOutcome } from '../../../agent/auth.ts';
import type { VolumeTarget } from '../../../agent/prober.ts';
import { AgentClient, AgentConnectionError, AgentStatusError } from '../../../shared/agent-client.ts';
import { silentLogger } from '../../harness/log.ts';
import type { VolumeEvent } from '../../../shared/readings.ts';
import { FakeMounts, FakeStatfs, target } from './fakes.ts';

const config: AgentConfig = {
  ...configDefaults, nodeName: 'node-a', listenHost: '127.0.0.1', listenPort: 0, probeIntervalMs: 60_000, heartbeatMs: 200,
  tokenAudiences: [], processMetrics: false,
};

/** Tokens: "controller" may read everything, "prometheus" only /metrics, anything else is unknown. */
function fakeAuthorizer(): { check(header: string | undefined, path: string): Promise<AuthOutcome> } {
  return {
    check(header, path) {
      const token = header?.replace(/^Bearer /, '');
      const caller = { username: `system:serviceaccount:ops:${token ?? ''}`, groups: [] };
      if (token !== 'controller' && token !== 'prometheus') return Promise.resolve({ status: 401, reason: 'invalid bearer token' });
      if (token === 'prometheus' && path !== '/metrics') return Promise.resolve({ status: 403, caller, reason: 'not allowed' });
      return Promise.resolve({ status: 200, caller });
    },
  };
}

async function next(iterator: AsyncIterator<VolumeEvent>, skipHeartbeats = true): Promise<VolumeEvent> {
  for (;;) {
    const result = await iterator.next();
    assert.ok(!result.done, 'stream ended');
    if (!skipHeartbeats || result.value.type !== 'HEARTBEAT') return result.value;
  }
}

describe('agent server and client', () => {
  let agent: RunningAgent;
  let statfs: FakeStatfs;
  let synced = false;
  let publish: (targets: VolumeTarget[]) => void = () => undefined;
  const clients: AgentClient[] = [];
  const client = (token: string, extra: Partial<ConstructorParameters<typeof AgentClient>[0]> = {}): AgentClient => {
    const c = new AgentClient({ baseUrl: agent.url, token: () => token, retryBaseMs: 10, ...extra });
    clients.push(c);
    return c;
  };
  const t1 = target('pg-1');
  const t2 = target('pg-1-wal', 'wal');

  before(async () => {
    statfs = new FakeStatfs();
    statfs.set(t1.identity.path, { blocksFree: 900, blocksAvailable: 900 });
    statfs.set(t2.identity.path, { blocksFree: 500, blocksAvailable: 400 });
    agent = await startAgent(config, {
      logger: silentLogger, statfs, mountCheck: new FakeMounts(), authorizer: fakeAuthorizer(),
      discovery: (onTargets) => {
        publish = onTargets;
        return { start: () => Promise.resolve(), stop: () => Promise.resolve(), status: () => ({ synced }) };
      },
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await agent.stop();
  });

  it('answers /healthz, and /readyz only once discovery has synced', async () => {
    assert.equal((await fetch(`${agent.url}/healthz`)).status, 200);
    const notReady = await fetch(`${agent.url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), 'volume discovery has not listed this node yet\n');
    synced = true;
    publish([t1, t2]);
    assert.equal((await fetch(`${agent.url}/readyz`)).status, 200);
  });

  it('refuses without a token (401), with a token not allowed (403), 404 and 405 elsewhere', async () => {
    const res = await fetch(`${agent.url}/v1/volumes`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="cnpg-dynamic-storage-agent"');
    await assert.rejects(client('stranger').snapshot(), (err: unknown) => err instanceof AgentStatusError && err.statusCode === 401 && err.code === 'AgentUnauthorized');
    await assert.rejects(client('prometheus').snapshot(), (err: unknown) => err instanceof AgentStatusError && err.code === 'AgentForbidden' && /not allowed/.test(err.body));
    await assert.rejects(client('prometheus').watch().next(), { code: 'AgentForbidden' });
    assert.equal((await fetch(`${agent.url}/v2/volumes`)).status, 404);
    assert.equal((await fetch(`${agent.url}/v1/volumes`, { method: 'POST' })).status, 405);
  });

  it('serves the snapshot and the metrics to allowed callers', async () => {
    const list = await client('controller').snapshot();
    assert.equal(list.node, 'node-a');
    assert.equal(list.epoch, agent.epoch);
    assert.deepEqual(list.volumes.map((v) => [v.key, v.status, v.usage?.usedBytes, v.usage?.percentUsed]), [
      ['db/pg-1', 'ok', 100 * 4096, 10], ['db/pg-1-wal', 'ok', 500 * 4096, 56],
    ]);
    const text = await client('prometheus').metrics();
    assert.match(text, /^cnpg_disk_used_bytes\{namespace="db",cluster="pg",instance="pg-1",volume_type="wal",tablespace="",persistentvolumeclaim="pg-1-wal",node="node-a"\} 2048000$/m);
  });

  it('streams a snapshot, then changes as the pass that saw them ends, then heartbeats', async () => {
    const stream = client('controller').watch()[Symbol.asyncIterator]();
    const first = await next(stream);
    assert.equal(first.type, 'SNAPSHOT');
    assert.equal(first.volumes.length, 2);
    statfs.set(t1.identity.path, { blocksFree: 800, blocksAvailable: 800 });
    agent.prober.probeAll();
    const update = await next(stream);
    assert.equal(update.type, 'UPDATED');
    assert.equal(update.volume.usage?.usedBytes, 200 * 4096);
    assert.equal(update.seq, first.seq + 1);
    publish([t1]);
    const removed = await next(stream);
    assert.deepEqual(removed.type === 'REMOVED' && [removed.key, removed.identity.role], ['db/pg-1-wal', 'wal']);
    const heartbeat = await next(stream, false);
    assert.equal(heartbeat.type, 'HEARTBEAT');
    assert.equal(heartbeat.seq, removed.seq);
    await stream.return(undefined);
  });

  it('retries connection errors a few times, then fails with AgentConnectionError', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    let tokenAsks = 0;
    const c = new AgentClient({ baseUrl: `http://127.0.0.1:${port}`, token: () => { tokenAsks++; return 't'; }, retries: 2, retryBaseMs: 5 });
    clients.push(c);
    await assert.rejects(c.snapshot(), (err: unknown) => err instanceof AgentConnectionError && /ECONNREFUSED.*after 3 attempts/.test(err.message));
    assert.equal(tokenAsks, 3);
  });

  it('does not retry once the agent has answered, and fails a silent stream after the idle timeout', async () => {
    let requests = 0;
    const silent = http.createServer((req, res) => {
      requests++;
      if (req.url === '/v1/volumes') { res.writeHead(500).end('boom'); return; }
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.flushHeaders();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const c = new AgentClient({ baseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, token: () => 't' });
      clients.push(c);
      await assert.rejects(c.snapshot(), { code: 'AgentHttpError' });
      assert.equal(requests, 1);
      const started = Date.now();
      await assert.rejects(c.watch({ idleTimeoutMs: 300 }).next(), (err: unknown) => err instanceof AgentConnectionError && /stream broke/.test(err.message));
      assert.ok(Date.now() - started >= 250);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('ends open streams on stop', async () => {
    const stream = client('controller').watch()[Symbol.asyncIterator]();
    assert.equal((await next(stream)).type, 'SNAPSHOT');
    await agent.stop();
    for (;;) {
      const result = await stream.next();
      if (result.done) break;
    }
  });
});

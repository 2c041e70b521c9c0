/**
 * The agent's thin Kubernetes client against a fake API server on port 0: paged lists with selectors, watches with
 * bookmarks, 410 Gone and other failures, the supervised informer, kubeconfig and in-cluster connections (token re-read,
 * client certificates over TLS), the reviews, and that nothing in the agent loads @kubernetes/client-node or undici.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { kubeAccessReviewer, kubeTokenReviewer } from '../../../agent/auth.ts';
import { connectionFromKubeConfig } from '../../harness/agent-kube.ts';
import { createKubeClient, isGone, KubeApiError, type KubeClient } from '../../../agent/kube/client.ts';
import { inClusterConnection, kubeSourceFromEnv } from '../../../agent/kube/connection.ts';
import { Informer } from '../../../agent/kube/informer.ts';
import { connectionFromKubeconfig, connectionFromKubeconfigFile } from '../../../agent/kube/kubeconfig.ts';
import { trimPod, trimPvc } from '../../../agent/kube/trim.ts';
import type { Pod, PersistentVolumeClaim } from '../../../agent/kube/types.ts';
import { errorCode } from '../../../shared/errors.ts';
import { createLogger, type Logger } from '../../../shared/log.ts';
import { createCertificateAuthority, issueCertificate } from '../../harness/pki.ts';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

interface Seen { method: string; path: string; query: URLSearchParams; authorization: string | undefined; body: string }
type Handler = (req: Seen, res: http.ServerResponse) => void;

/** A fake API server: a handler per test, every request recorded, open watches kept for the test to feed. */
class FakeApi {
  readonly requests: Seen[] = [];
  readonly watches: http.ServerResponse[] = [];
  handler: Handler = (_req, res) => { res.writeHead(404).end(); };
  /** TCP connections accepted, and closed. */
  connections = 0;
  closed = 0;
  private readonly server: http.Server;

  constructor() {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://api');
        const seen = { method: req.method ?? '', path: url.pathname, query: url.searchParams, authorization: req.headers.authorization, body };
        this.requests.push(seen);
        if (url.searchParams.get('watch') === 'true') this.watches.push(res);
        this.handler(seen, res);
      });
    });
    this.server.on('connection', (socket) => {
      this.connections++;
      socket.on('close', () => { this.closed++; });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => { this.server.listen(0, '127.0.0.1', resolve); });
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => { this.server.close(() => { resolve(); }); });
  }

  /** Requests to a path, watches or lists. */
  calls(pathname: string, watch: boolean): Seen[] {
    return this.requests.filter((r) => r.path === pathname && (r.query.get('watch') === 'true') === watch);
  }
}

const json = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};
const event = (res: http.ServerResponse, type: string, object: unknown): void => { res.write(JSON.stringify({ type, object }) + '\n'); };

function pod(name: string, resourceVersion: string, extra: { phase?: string; claim?: string } = {}): Pod & Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'db', uid: `uid-${name}`, resourceVersion, labels: { 'cnpg.io/cluster': 'pg' }, creationTimestamp: '2025-01-01T00:00:00Z',
      managedFields: [{ manager: 'kubelet' }] } as Pod['metadata'],
    spec: { nodeName: 'node-a', volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: extra.claim ?? name } }, { name: 'shm', emptyDir: {} } as never], containers: [{ name: 'postgres' }] } as Pod['spec'],
    status: { phase: extra.phase ?? 'Running', conditions: [{ type: 'Ready' }] } as Pod['status'],
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({}, { level: 'debug', sink: (line) => { lines.push(JSON.parse(line) as Record<string, unknown>); } }) };
}

describe('agent Kubernetes client', () => {
  let api: FakeApi;
  let client: KubeClient;
  let tokens: number;
  let apiUrl: string;

  beforeEach(async () => {
    api = new FakeApi();
    apiUrl = await api.start();
    tokens = 0;
    client = createKubeClient({ server: apiUrl, token: () => `token-${++tokens}` }, { pageSize: 2, requestTimeoutMs: 2000 });
  });
  afterEach(async () => {
    await client.close();
    await api.stop();
  });

  it('lists every page with the selectors, asking for the token on every request', async () => {
    api.handler = (req, res) => {
      const page = req.query.get('continue') ?? '';
      if (page === '') json(res, 200, { metadata: { resourceVersion: '10', continue: 'p2' }, items: [pod('a', '5'), pod('b', '6')] });
      else json(res, 200, { metadata: { resourceVersion: '10' }, items: [pod('c', '7')] });
    };
    const list = await client.list<Pod>('/api/v1/pods', { labelSelector: 'cnpg.io/cluster', fieldSelector: 'spec.nodeName=node-a' });
    assert.deepEqual(list.items.map((p) => p.metadata?.name), ['a', 'b', 'c']);
    assert.equal(list.metadata?.resourceVersion, '10');
    assert.deepEqual(api.requests.map((r) => [r.query.get('labelSelector'), r.query.get('fieldSelector'), r.query.get('limit'), r.query.get('continue'), r.authorization]), [
      ['cnpg.io/cluster', 'spec.nodeName=node-a', '2', null, 'Bearer token-1'],
      ['cnpg.io/cluster', 'spec.nodeName=node-a', '2', 'p2', 'Bearer token-2'],
    ]);
  });

  it('turns an error status into a KubeApiError with the API server\'s reason', async () => {
    api.handler = (_req, res) => { json(res, 403, { kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403, message: 'pods is forbidden' }); };
    await assert.rejects(client.get('/api/v1/persistentvolumes/pv-1'), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 'KubeApiError');
      assert.equal(err.statusCode, 403);
      assert.equal(err.message, 'HTTP 403 Forbidden: pods is forbidden');
      return true;
    });
    api.handler = (_req, res) => { res.writeHead(410).end('gone'); };
    await assert.rejects(client.list('/api/v1/pods'), (err: unknown) => isGone(err));
  });

  it('creates TokenReviews and SubjectAccessReviews', async () => {
    api.handler = (req, res) => {
      const body = JSON.parse(req.body) as { kind: string; spec: Record<string, unknown> };
      if (body.kind === 'TokenReview') {
        json(res, 201, { ...body, status: { authenticated: true, user: { username: 'system:serviceaccount:ops:c', uid: 'u1', groups: ['g'] }, audiences: ['api'] } });
      } else {
        json(res, 201, { ...body, status: { allowed: false, reason: 'no rule' } });
      }
    };
    const authn = await kubeTokenReviewer(client, ['api']).review('caller-token');
    assert.deepEqual(authn, { authenticated: true, caller: { username: 'system:serviceaccount:ops:c', uid: 'u1', groups: ['g'] } });
    const authz = await kubeAccessReviewer(client).review({ username: 'x', groups: ['g'], uid: 'u1' }, { path: '/v1/volumes', verb: 'get' });
    assert.deepEqual(authz, { allowed: false, reason: 'no rule' });
    assert.deepEqual(api.requests.map((r) => [r.method, r.path, JSON.parse(r.body) as unknown]), [
      ['POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'caller-token', audiences: ['api'] } }],
      ['POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
        spec: { user: 'x', groups: ['g'], uid: 'u1', nonResourceAttributes: { path: '/v1/volumes', verb: 'get' } } }],
    ]);
  });

  it('keeps its connection to the API server alive between requests', async () => {
    api.handler = (_req, res) => { json(res, 200, { metadata: { name: 'x' } }); };
    for (let i = 0; i < 3; i++) await client.get('/api/v1/persistentvolumes/pv-1');
    await client.create('/apis/authentication.k8s.io/v1/tokenreviews', { kind: 'TokenReview' });
    assert.equal(api.requests.length, 4);
    assert.equal(api.connections, 1);
    assert.equal(api.closed, 0);
  });

  it('closes a kept-alive connection that stays idle, and opens a new one for the next request', async () => {
    const brief = createKubeClient({ server: apiUrl }, { keepAliveMs: 100 });
    try {
      api.handler = (_req, res) => { json(res, 200, { metadata: { name: 'x' } }); };
      await brief.get('/api/v1/persistentvolumes/pv-1');
      await sleep(30);
      assert.equal(api.closed, 0, 'still open right after the request');
      await until('the idle connection closed', () => api.closed === 1, 2000);
      await brief.get('/api/v1/persistentvolumes/pv-1');
      assert.equal(api.connections, 2);
    } finally {
      await brief.close();
    }
  });

  it('gives up on a watch whose response does not start in time, and ends a watch when aborted', async function () {
    this.timeout(10_000);
    const quick = createKubeClient({ server: apiUrl }, { requestTimeoutMs: 200 });
    try {
      api.handler = () => undefined; // never answers
      await assert.rejects(quick.watch('/api/v1/pods', { resourceVersion: '1', timeoutSeconds: 60 }).next(), (err: unknown) => errorCode(err) === 'KubeHeadersTimeout');
      api.handler = (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders(); };
      const abort = new AbortController();
      const events = quick.watch<Pod>('/api/v1/pods', { resourceVersion: '1', timeoutSeconds: 60, signal: abort.signal });
      const first = events.next();
      event(await until('the second watch', () => api.watches[1]), 'ADDED', pod('a', '2'));
      assert.equal((await first).value?.object.metadata?.name, 'a');
      const second = events.next();
      abort.abort();
      await assert.rejects(second, (err: unknown) => (err as Error).name === 'AbortError');
    } finally {
      await quick.close();
    }
  });

  describe('informer', () => {
    let informer: Informer<Pod> | undefined;
    let changes: number;
    const start = (logger: Logger = createLogger({}, { sink: () => undefined })): Promise<void> => {
      changes = 0;
      informer = new Informer<Pod>({
        name: 'pods', client, path: '/api/v1/pods', labelSelector: 'cnpg.io/cluster', fieldSelector: 'spec.nodeName=node-a', trim: trimPod,
        onChange: () => { changes++; }, backoff: { initialMs: 40, maxMs: 80 }, logger, watchTimeoutSeconds: { min: 300, max: 301 },
      });
      return informer.start();
    };
    afterEach(async () => { await informer?.stop(); });

    it('lists, watches from the list\'s version, applies events and follows bookmarks into the next watch', async () => {
      api.handler = (req, res) => {
        if (req.query.get('watch') === 'true') res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
        else json(res, 200, { metadata: { resourceVersion: '10' }, items: [pod('a', '5')] });
      };
      await start();
      const inf = informer!;
      assert.equal(inf.synced, true);
      assert.deepEqual(inf.list(), [trimPod(pod('a', '5'))]);
      assert.deepEqual(inf.list()[0], {
        metadata: { name: 'a', namespace: 'db', uid: 'uid-a', resourceVersion: '5', labels: { 'cnpg.io/cluster': 'pg' }, creationTimestamp: '2025-01-01T00:00:00Z' },
        spec: { volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: 'a' } }], nodeName: 'node-a' }, status: { phase: 'Running' },
      }, 'trimmed to what the agent reads');
      const watch = await until('the watch', () => api.watches[0]);
      await until('connected', () => inf.connected);
      const first = api.calls('/api/v1/pods', true)[0]!;
      assert.deepEqual([first.query.get('resourceVersion'), first.query.get('allowWatchBookmarks'), first.query.get('labelSelector'),
        first.query.get('fieldSelector'), first.query.get('timeoutSeconds')], ['10', 'true', 'cnpg.io/cluster', 'spec.nodeName=node-a', '300']);
      const before = changes;
      event(watch, 'ADDED', pod('b', '11'));
      event(watch, 'MODIFIED', { ...pod('a', '12'), status: { phase: 'Running', conditions: [] } }); // nothing the agent reads
      event(watch, 'MODIFIED', pod('b', '13', { phase: 'Failed' }));
      event(watch, 'DELETED', pod('a', '14'));
      event(watch, 'BOOKMARK', { kind: 'Pod', metadata: { resourceVersion: '20' } });
      await until('b failed and a gone', () => inf.list().length === 1 && inf.get('b', 'db')?.status?.phase === 'Failed');
      assert.equal(changes - before, 3, 'ADDED, the phase change and DELETED; not the condition-only change');
      watch.end(); // the server's timeout
      const second = await until('the next watch', () => api.calls('/api/v1/pods', true)[1]);
      assert.equal(second.query.get('resourceVersion'), '20', 'from the bookmark, without listing again');
      assert.equal(api.calls('/api/v1/pods', false).length, 1);
    });

    it('lists again at once after 410 Gone, and after other failures with backoff, keeping the cache meanwhile', async () => {
      let failLists = 0;
      let listVersion = 10;
      api.handler = (req, res) => {
        if (req.query.get('watch') === 'true') {
          res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
          return;
        }
        if (failLists > 0) {
          failLists--;
          json(res, 500, { kind: 'Status', reason: 'InternalError', code: 500, message: 'etcd unavailable' });
          return;
        }
        listVersion += 10;
        json(res, 200, { metadata: { resourceVersion: String(listVersion) }, items: [pod('a', '5'), pod(`n${listVersion}`, '6')] });
      };
      const { logger, lines } = recordingLogger();
      await start(logger);
      const inf = informer!;
      event(await until('watch 1', () => api.watches[0]), 'ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
      await until('the relist after 410', () => api.calls('/api/v1/pods', false).length === 2);
      assert.ok(lines.some((l) => l.msg === 'resource version expired; listing again'));
      assert.ok(!lines.some((l) => l.msg === 'watch failed; restarting'), 'a 410 is not a failure');
      await until('watch 2', () => api.watches[1]);
      assert.equal(api.calls('/api/v1/pods', true)[1]?.query.get('resourceVersion'), '30');
      assert.deepEqual(inf.list().map((p) => p.metadata?.name).sort(), ['a', 'n30']);
      // The connection breaks and the next two lists fail: the cache stays until a list succeeds.
      failLists = 2;
      api.watches[1]!.destroy();
      await until('two failed lists', () => api.calls('/api/v1/pods', false).length === 4, 5000);
      assert.deepEqual(inf.list().map((p) => p.metadata?.name).sort(), ['a', 'n30'], 'the last cache is kept while the lists fail');
      await until('the fresh list applied', () => inf.get('n40', 'db'), 5000);
      const failures = lines.filter((l) => l.msg === 'watch failed; restarting');
      assert.deepEqual(failures.map((l) => l.failures), [1, 2, 3]);
      for (const l of failures) assert.ok(typeof l.retryInMs === 'number' && l.retryInMs >= 20 && l.retryInMs <= 80, String(l.retryInMs));
      assert.equal(inf.synced, true);
    });

    it('resolves start after a failed first list and keeps retrying in the background', async () => {
      let up = false;
      api.handler = (req, res) => {
        if (!up) json(res, 503, { kind: 'Status', reason: 'ServiceUnavailable', code: 503, message: 'starting' });
        else if (req.query.get('watch') === 'true') res.writeHead(200).flushHeaders();
        else json(res, 200, { metadata: { resourceVersion: '1' }, items: [pod('a', '1')] });
      };
      await start();
      assert.equal(informer!.synced, false);
      up = true;
      await until('synced', () => informer!.synced);
      assert.equal(informer!.list().length, 1);
    });
  });
});

describe('agent Kubernetes connections', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-kube-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('chooses KUBECONFIG, then the in-cluster ServiceAccount, then ~/.kube/config', () => {
    assert.deepEqual(kubeSourceFromEnv({ KUBECONFIG: '/a:/b', KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, '/home/x'),
      { kind: 'kubeconfig', path: '/a' });
    assert.deepEqual(kubeSourceFromEnv({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, '/home/x'), {
      kind: 'in-cluster', host: '10.0.0.1', port: '443',
      tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
    });
    assert.deepEqual(kubeSourceFromEnv({}, '/home/x'), { kind: 'kubeconfig', path: '/home/x/.kube/config' });
  });

  it('in a cluster: reads the CA once and the rotating token on every request', async () => {
    const tokenFile = path.join(dir, 'token');
    const caFile = path.join(dir, 'ca.crt');
    await writeFile(caFile, 'CA PEM');
    await writeFile(tokenFile, 'first\n');
    const connection = await inClusterConnection({ kind: 'in-cluster', host: 'fd00::1', port: '443', tokenFile, caFile });
    assert.equal(connection.server, 'https://[fd00::1]:443');
    assert.equal(connection.ca?.toString(), 'CA PEM');
    assert.equal(await connection.token?.(), 'first');
    await writeFile(tokenFile, 'rotated');
    assert.equal(await connection.token?.(), 'rotated');
  });

  it('reads a kubeconfig: CA and client certificate data or files, token or token file; refuses exec', async () => {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    await writeFile(path.join(dir, 'ca.pem'), 'CA');
    await writeFile(path.join(dir, 'tok'), 'from-file\n');
    const text = (user: string): string => [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters:', '- name: k', '  cluster:', '    server: https://127.0.0.1:6443', '    certificate-authority: ca.pem',
      'contexts:', '- name: c', '  context:', '    cluster: k', '    user: u',
      'users:', '- name: u', '  user:', ...user.split('\n').map((l) => `    ${l}`), '',
    ].join('\n');
    const certs = await connectionFromKubeconfig(text(`client-certificate-data: ${b64('CERT')}\nclient-key-data: ${b64('KEY')}`), dir);
    assert.deepEqual([certs.server, certs.ca?.toString(), certs.cert?.toString(), certs.key?.toString(), certs.token], ['https://127.0.0.1:6443', 'CA', 'CERT', 'KEY', undefined]);
    assert.equal(await (await connectionFromKubeconfig(text('token: abc'), dir)).token?.(), 'abc');
    assert.equal(await (await connectionFromKubeconfig(text('tokenFile: tok'), dir)).token?.(), 'from-file');
    await assert.rejects(connectionFromKubeconfig(text('exec:\n  command: aws'), dir), /only client certificates and tokens are supported/);
    // client-node's exportConfig() writes JSON, which is YAML too.
    const exported = JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'local', cluster: { server: 'https://h:1', 'certificate-authority-data': b64('CA2') } }],
      users: [{ name: 'sa', user: { token: 't' } }], contexts: [{ name: 'sa', context: { name: 'sa', cluster: 'local', user: 'sa' } }], preferences: {}, 'current-context': 'sa' });
    const fromJson = await connectionFromKubeconfig(exported, dir);
    assert.deepEqual([fromJson.server, fromJson.ca?.toString(), await fromJson.token?.()], ['https://h:1', 'CA2', 't']);
  });

  it('adapts a loaded client-node KubeConfig by its shape', async () => {
    const connection = connectionFromKubeConfig({
      getCurrentCluster: () => ({ server: 'https://h:1', caData: Buffer.from('CA').toString('base64') }),
      getCurrentUser: () => ({ token: 'tok' }),
    });
    assert.deepEqual([connection.server, connection.ca?.toString(), await connection.token?.()], ['https://h:1', 'CA', 'tok']);
  });

  it('authenticates with a client certificate over TLS, checking the server against the kubeconfig\'s CA', async function () {
    this.timeout(20_000);
    const ca = await createCertificateAuthority(dir, 'ca');
    const serving = await issueCertificate(dir, ca, 'server', { commonName: 'api', serverAuth: true, ipAddresses: ['127.0.0.1'] });
    const user = await issueCertificate(dir, ca, 'user', { commonName: 'agent', clientAuth: true });
    const [caPem, servingCert, servingKey, userCert, userKey] = await Promise.all([ca.cert, serving.cert, serving.key, user.cert, user.key].map((f) => readFile(f, 'utf8')));
    const server = https.createServer({ cert: servingCert, key: servingKey, ca: caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const cn = (req.socket as import('node:tls').TLSSocket).getPeerCertificate().subject.CN;
      json(res, 200, { metadata: { name: cn } });
    });
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
    const b64 = (s: string | undefined): string => Buffer.from(s ?? '').toString('base64');
    const file = path.join(dir, 'tls.kubeconfig');
    await writeFile(file, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters:', '- name: k', '  cluster:', `    server: https://127.0.0.1:${(server.address() as AddressInfo).port}`, `    certificate-authority-data: ${b64(caPem)}`,
      'contexts:', '- name: c', '  context:', '    cluster: k', '    user: u',
      'users:', '- name: u', '  user:', `    client-certificate-data: ${b64(userCert)}`, `    client-key-data: ${b64(userKey)}`, '',
    ].join('\n'));
    const kube = createKubeClient(await connectionFromKubeconfigFile(file));
    try {
      assert.deepEqual(await kube.get('/api/v1/namespaces/default'), { metadata: { name: 'agent' } });
    } finally {
      await kube.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it('trims PVCs to their identity, labels, volume name and mode', () => {
    const pvc = { metadata: { name: 'pg-1', namespace: 'db', uid: 'u', resourceVersion: '3', labels: { a: 'b' }, annotations: { x: 'y' } },
      spec: { volumeName: 'pv-1', volumeMode: 'Filesystem', resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound' } } as PersistentVolumeClaim;
    assert.deepEqual(trimPvc(pvc), { metadata: { name: 'pg-1', namespace: 'db', uid: 'u', resourceVersion: '3', labels: { a: 'b' } }, spec: { volumeName: 'pv-1', volumeMode: 'Filesystem' } });
  });

  it('nothing the agent loads imports @kubernetes/client-node or undici', async function () {
    this.timeout(30_000);
    // Every agent module is imported (main.ts last: its static graph is linked before it runs, then it exits on the missing
    // NODE_NAME); a resolve hook records every module resolved.
    const hook = `import { registerHooks } from 'node:module';
      const seen = new Set();
      registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.add(r.url); return r; } });
      process.on('exit', () => { process.stdout.write(JSON.stringify([...seen])); });`;
    const files = ['agent.ts', 'auth.ts', 'config.ts', 'discovery.ts', 'metrics.ts', 'prober.ts', 'server.ts', 'statfs.ts', 'stream.ts',
      'kube/client.ts', 'kube/connection.ts', 'kube/informer.ts', 'kube/kubeconfig.ts', 'kube/trim.ts', 'kube/types.ts', 'main.ts'];
    const script = files.map((f) => `await import(${JSON.stringify(path.join(repoRoot, 'agent', f))});`).join('\n');
    const { stdout } = await run(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, '--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '' }, cwd: repoRoot,
    }).catch((err: unknown) => {
      const failed = err as { stdout?: string; code?: number };
      assert.equal(failed.code, 2, 'main.ts exits 2 on the missing NODE_NAME');
      return { stdout: failed.stdout ?? '' };
    });
    const urls = JSON.parse(stdout) as string[];
    assert.ok(urls.some((u) => u.endsWith('/agent/main.ts')) && urls.some((u) => u.endsWith('/agent/kube/client.ts')), 'the hook saw the graph');
    assert.deepEqual(urls.filter((u) => u.includes('@kubernetes')), []);
    // The API server client is on node:https, which the agent's server loads anyway: undici would cost ~13 MiB more.
    assert.deepEqual(urls.filter((u) => u.includes('/node_modules/undici/')), []);
  });
});

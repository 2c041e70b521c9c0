import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runCli, type CliIo } from '../../../plugin/cli.ts';
import { makeSimulateSubcommand, type SimulationResult } from '../../../plugin/simulate.ts';
import { SimulateInputError } from '../../../plugin/simulate-errors.ts';
import {
  agentQuery,
  instanceOfPvc,
  kubeletQuery,
  queryRanges,
  readPrometheusHistory,
  tracesFromSeries,
  type PrometheusRequest,
} from '../../../plugin/simulate-prometheus.ts';
import { freePort } from '../../harness/ports.ts';

interface Answer {
  status: number;
  body: string;
}

/** A real HTTP server on a free port that answers each request as the test says, and records what was asked. */
class FakePrometheus {
  readonly requests: URL[] = [];
  answer: (url: URL) => Answer = () => ({ status: 200, body: matrix([]) });
  private readonly server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    this.requests.push(url);
    const { status, body } = this.answer(url);
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => { resolve(); }));
  }
}

type Series = { metric: Record<string, string>; values: [number, string][] };

function matrix(result: Series[]): string {
  return JSON.stringify({ status: 'success', data: { resultType: 'matrix', result } });
}

const t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
const agentSeries = (pvc: string, node: string, values: [number, string][]): Series => ({
  metric: { __name__: 'cnpg_disk_used_bytes', namespace: 'db', cluster: 'pg', instance: '10.0.0.7:9187', exported_instance: pvc.replace(/-wal$/, ''), volume_type: 'data', tablespace: '', persistentvolumeclaim: pvc, node },
  values,
});

function request(url: string, overrides: Partial<PrometheusRequest> = {}): PrometheusRequest {
  return { url, namespace: 'db', cluster: 'pg', volume: { role: 'data' }, start: t0 * 1000, end: (t0 + 600) * 1000, stepMs: 60_000, timeoutMs: 5_000, ...overrides };
}

async function failure(promise: Promise<unknown>): Promise<SimulateInputError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SimulateInputError, String(err));
    return err;
  }
  assert.fail('no error');
}

describe('simulate: history from Prometheus', () => {
  it('asks for the agent\'s metric, under either namespace label', () => {
    assert.equal(agentQuery('db', 'pg', { role: 'data' }),
      'cnpg_disk_used_bytes{namespace="db",cluster="pg",volume_type="data"} or cnpg_disk_used_bytes{exported_namespace="db",cluster="pg",volume_type="data"}');
    assert.equal(agentQuery('db', 'pg', { role: 'tablespace', tablespace: 'app' }),
      'cnpg_disk_used_bytes{namespace="db",cluster="pg",volume_type="tablespace",tablespace="app"} or cnpg_disk_used_bytes{exported_namespace="db",cluster="pg",volume_type="tablespace",tablespace="app"}');
  });

  it('asks for kubelet\'s metric of the PVCs CNPG names for the volume', () => {
    assert.equal(kubeletQuery('db', 'pg', { role: 'data' }),
      'kubelet_volume_stats_used_bytes{namespace="db",persistentvolumeclaim=~"pg-[0-9]+"} or kubelet_volume_stats_used_bytes{exported_namespace="db",persistentvolumeclaim=~"pg-[0-9]+"}');
    assert.equal(kubeletQuery('db', 'pg.eu', { role: 'wal' }).split(' or ')[0], 'kubelet_volume_stats_used_bytes{namespace="db",persistentvolumeclaim=~"pg\\\\.eu-[0-9]+-wal"}');
    assert.equal(kubeletQuery('db', 'pg', { role: 'tablespace', tablespace: 'app' }).split(' or ')[0], 'kubelet_volume_stats_used_bytes{namespace="db",persistentvolumeclaim=~"pg-[0-9]+-tbs-app"}');
    assert.equal(instanceOfPvc('pg-2-wal', { role: 'wal' }), 'pg-2');
    assert.equal(instanceOfPvc('pg-3-tbs-app', { role: 'tablespace', tablespace: 'app' }), 'pg-3');
    assert.equal(instanceOfPvc('pg-1', { role: 'data' }), 'pg-1');
  });

  it('cuts a long range into queries of at most 10,000 points', () => {
    assert.deepEqual(queryRanges(0, 25, 1, 10), [{ start: 0, end: 9 }, { start: 10, end: 19 }, { start: 20, end: 25 }]);
    assert.deepEqual(queryRanges(0, 0, 15_000), [{ start: 0, end: 0 }]);
    const day = queryRanges(0, 14 * 86_400_000, 15_000);
    assert.equal(day.length, 9);
    assert.ok(day.every((r) => (r.end - r.start) / 15_000 + 1 <= 10_000));
  });

  it('merges the series of one instance (a PVC that moved node), in time order, leaving out what cannot be replayed', () => {
    const { traces, warnings } = tracesFromSeries([
      agentSeries('pg-2', 'node-b', [[t0 + 120, '300'], [t0 + 180, '400']]),
      agentSeries('pg-1', 'node-a', [[t0, '100'], [t0 + 60, 'NaN'], [t0 + 120, '120']]),
      agentSeries('pg-2', 'node-a', [[t0, '200'], [t0 + 60, '250'], [t0 + 120, '290']]),
      agentSeries('pg-3', 'node-c', [[t0, '5']]),
    ], { role: 'data' });
    assert.deepEqual(traces.map((t) => [t.instance, t.trace.map((p) => [p.at.getTime() / 1000 - t0, p.usedBytes])]), [
      ['pg-1', [[0, 100], [120, 120]]],
      ['pg-2', [[0, 200], [60, 250], [120, 300], [180, 400]]],
    ]);
    assert.deepEqual(warnings, ['pg-3: 1 sample in the range, left out (a replay needs two)']);
  });

  describe('over HTTP', () => {
    const prometheus = new FakePrometheus();
    let url: string;

    before(async () => { url = await prometheus.start(); });
    after(async () => { await prometheus.stop(); });
    beforeEach(() => { prometheus.requests.length = 0; });

    it('reads the agent\'s metric with a range query', async () => {
      prometheus.answer = () => ({ status: 200, body: matrix([agentSeries('pg-1', 'n', [[t0, '1'], [t0 + 60, '2']])]) });
      const history = await readPrometheusHistory(request(`${url}/prefix/`));
      assert.equal(history.metric, 'cnpg_disk_used_bytes');
      assert.deepEqual(history.traces.map((t) => t.instance), ['pg-1']);
      assert.equal(prometheus.requests.length, 1);
      const asked = prometheus.requests[0]!;
      assert.equal(asked.pathname, '/prefix/api/v1/query_range');
      assert.deepEqual(Object.fromEntries(asked.searchParams), { query: agentQuery('db', 'pg', { role: 'data' }), start: String(t0), end: String(t0 + 600), step: '60' });
    });

    it('falls back to kubelet\'s metric when the agent\'s has no samples', async () => {
      prometheus.answer = (asked) => (asked.searchParams.get('query')?.startsWith('kubelet')
        ? { status: 200, body: matrix([{ metric: { namespace: 'db', persistentvolumeclaim: 'pg-1-wal' }, values: [[t0, '7'], [t0 + 60, '8']] }]) }
        : { status: 200, body: matrix([]) });
      const history = await readPrometheusHistory(request(url, { volume: { role: 'wal' } }));
      assert.equal(history.metric, 'kubelet_volume_stats_used_bytes');
      assert.deepEqual(history.traces.map((t) => [t.instance, t.trace.map((p) => p.usedBytes)]), [['pg-1', [7, 8]]]);
      assert.equal(prometheus.requests.length, 2);
    });

    it('splits a long history into several queries', async () => {
      prometheus.answer = () => ({ status: 200, body: matrix([]) });
      await failure(readPrometheusHistory(request(url, { stepMs: 15_000, end: (t0 + 14 * 86_400) * 1000 })));
      assert.equal(prometheus.requests.length, 18, 'nine ranges for each metric');
      const starts = prometheus.requests.slice(0, 9).map((u) => Number(u.searchParams.get('start')));
      assert.deepEqual(starts.map((s) => s - t0), Array.from({ length: 9 }, (_, i) => i * 150_000));
    });

    it('says when neither metric has samples', async () => {
      prometheus.answer = () => ({ status: 200, body: matrix([]) });
      const error = await failure(readPrometheusHistory(request(url)));
      assert.equal(error.code, 'PrometheusNoData');
      assert.equal(error.message, `Prometheus at ${url} has no usable samples of cnpg_disk_used_bytes or kubelet_volume_stats_used_bytes for the data volumes of Cluster db/pg between 2026-01-01T00:00:00.000Z and 2026-01-01T00:10:00.000Z`);
    });

    const answers: [string, Answer, string, RegExp][] = [
      ['an HTTP error with Prometheus\'s message', { status: 400, body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'exceeded maximum resolution' }) },
        'PrometheusHttpError', /answered HTTP 400 to cnpg_disk_used_bytes\{.*\}: exceeded maximum resolution$/],
      ['an HTTP error from a proxy', { status: 502, body: '<html>Bad Gateway</html>' }, 'PrometheusHttpError', /answered HTTP 502 to .*: <html>Bad Gateway<\/html>$/],
      ['an answer that is not JSON', { status: 200, body: 'hello' }, 'PrometheusQueryFailed', /did not answer .*: the answer is not JSON$/],
      ['an error status', { status: 200, body: JSON.stringify({ status: 'error', error: 'query timed out' }) }, 'PrometheusQueryFailed', /: query timed out$/],
      ['an instant vector', { status: 200, body: JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }) }, 'PrometheusQueryFailed', /: the answer is not a range query result$/],
    ];
    for (const [name, answer, code, message] of answers) {
      it(`reports ${name} as ${code}`, async () => {
        prometheus.answer = () => answer;
        const error = await failure(readPrometheusHistory(request(url)));
        assert.equal(error.code, code);
        assert.match(error.message, message);
      });
    }

    it('runs the command on it, ending at the clock\'s time rounded down to the step', async () => {
      prometheus.answer = () => ({
        status: 200,
        body: matrix([
          agentSeries('pg-1', 'n', Array.from({ length: 11 }, (_, i): [number, string] => [t0 + i * 60, String(2 ** 30 + i * 2 ** 20)])),
          agentSeries('pg-2', 'n', Array.from({ length: 11 }, (_, i): [number, string] => [t0 + i * 60, String(2 ** 30)])),
        ]),
      });
      const out: string[] = [];
      const io: CliIo = {
        stdout: (text) => { out.push(text); }, stderr: (text) => { assert.fail(text); },
        readFile: () => Promise.resolve('apiVersion: dynamicstorage.cnpg.io/v1alpha1\nkind: DynamicStorage\nmetadata: {name: pg, namespace: db}\nspec: {cluster: {name: pg}, storage: {request: 2Gi, limit: 4Gi}}\n'),
        readStdin: () => Promise.resolve(''), listDirectory: () => Promise.resolve(undefined),
      };
      const command = makeSimulateSubcommand({ now: () => new Date((t0 + 600) * 1000 + 42_000) });
      assert.equal(await runCli(['simulate', '-f', 'p.yaml', '--prometheus', url, '--since', '10m', '--step', '1m', '-o', 'json'], io, [command]), 0);
      const result = JSON.parse(out.join('')) as SimulationResult;
      assert.equal(result.source, url);
      assert.equal(result.metric, 'cnpg_disk_used_bytes');
      assert.deepEqual(result.instances, ['pg-1', 'pg-2']);
      assert.equal(result.start, '2026-01-01T00:00:00Z');
      assert.equal(result.end, '2026-01-01T00:10:00Z');
      assert.equal(prometheus.requests[0]?.searchParams.get('end'), String(t0 + 600));
    });
  });

  it('reports a Prometheus that cannot be reached', async () => {
    const port = await freePort();
    const error = await failure(readPrometheusHistory(request(`http://127.0.0.1:${port}`)));
    assert.equal(error.code, 'PrometheusUnreachable');
    assert.match(error.message, new RegExp(`^cannot reach Prometheus at http://127\\.0\\.0\\.1:${port}: fetch failed: .*ECONNREFUSED`));
  });
});

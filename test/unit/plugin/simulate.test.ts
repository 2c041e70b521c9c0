import assert from 'node:assert/strict';
import { runCli, type CliIo } from '../../../plugin/cli.ts';
import {
  compactDuration,
  parseDurationText,
  parseSimulateArgs,
  renderSimulation,
  type SimulationResult,
} from '../../../plugin/simulate.ts';
import { GiB, formatQuantity } from '../../../shared/quantity.ts';

function memoryIo(files: Record<string, string>, stdin = ''): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out, err,
    stdout: (text) => { out.push(text); },
    stderr: (text) => { err.push(text); },
    readFile: (file) => {
      const text = files[file];
      return text === undefined ? Promise.reject(new Error(`ENOENT: no such file or directory, open '${file}'`)) : Promise.resolve(text);
    },
    readStdin: () => Promise.resolve(stdin),
    listDirectory: () => Promise.resolve(undefined),
  };
}

const policyYaml = `apiVersion: dynamicstorage.cnpg.io/v1alpha1
kind: DynamicStorage
metadata: {name: pg, namespace: db}
spec:
  cluster: {name: pg}
  storage: {request: 2Gi, limit: 20Gi}
  tablespaces:
    - name: app
      storage: {request: 4Gi, limit: 8Gi, targetBuffer: 30, maintenanceWindow: {schedule: "30 2 * * 1-5", duration: 90m, timezone: Europe/Berlin}}
`;

/** Six hours, sampled every 5 minutes: pg-1 grows from 1Gi to 5Gi, pg-2 to 4Gi. */
function growingTrace(): string {
  const rows = ['timestamp,instance,used_bytes'];
  for (let minute = 0; minute <= 360; minute += 5) {
    const t = 1_767_225_600 + minute * 60;
    rows.push(`${t},pg-1,${Math.round(GiB * (1 + (4 * minute) / 360))}`, `${t},pg-2,${Math.round(GiB * (1 + (3 * minute) / 360))}`);
  }
  return `${rows.join('\n')}\n`;
}

const files = { 'policy.yaml': policyYaml, 'usage.csv': growingTrace() };

async function run(args: string[], io = memoryIo(files)): Promise<{ code: number; out: string; err: string }> {
  const code = await runCli(['simulate', ...args], io);
  return { code, out: io.out.join(''), err: io.err.join('') };
}

describe('kubectl cnpg storage simulate', () => {
  describe('options', () => {
    it('reads every option, with the documented defaults', () => {
      assert.deepEqual(parseSimulateArgs(['-f', 'p.yaml', '--trace', 'u.csv']), {
        policyFile: 'p.yaml', trace: 'u.csv', prometheus: undefined, volume: { role: 'data' }, initialSize: undefined,
        resizeLatencyMs: 60_000, stepMs: 15_000, output: 'table',
      });
      assert.deepEqual(parseSimulateArgs([
        '--filename=p.yaml', '--prometheus', 'http://prom:9090/prefix', '-n', 'db', '--cluster', 'pg', '--since', '7d', '--until', '2026-01-31T00:00:00Z',
        '--volume', 'tablespace:app', '--initial-size', '5Gi', '--resize-latency', '2m30s', '--step=1m', '-o', 'json',
      ]), {
        policyFile: 'p.yaml', trace: undefined,
        prometheus: { url: 'http://prom:9090/prefix', namespace: 'db', cluster: 'pg', sinceMs: 7 * 86_400_000, until: Date.UTC(2026, 0, 31) },
        volume: { role: 'tablespace', tablespace: 'app' }, initialSize: 5 * GiB, resizeLatencyMs: 150_000, stepMs: 60_000, output: 'json',
      });
      assert.equal(parseSimulateArgs(['-f', 'p', '--prometheus', 'https://p']).prometheus?.sinceMs, 14 * 86_400_000);
    });

    const usageErrors: [string[], string][] = [
      [['--trace', 'u.csv'], 'no policy: give -f <policy.yaml>'],
      [['-f', 'p.yaml'], 'give the history with exactly one of --trace <usage.csv> and --prometheus <url>'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--prometheus', 'http://p:9090'], 'give the history with exactly one of --trace <usage.csv> and --prometheus <url>'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--bogus'], 'unknown argument "--bogus"'],
      [['-f', '-', '--trace', '-'], '-f and --trace cannot both read standard input'],
      [['-f', 'p.yaml', '--trace'], '--trace needs a value'],
      [['-f', 'p.yaml', '--trace', '--step', '1m'], '--trace needs a value'],
      [['-f', 'p.yaml', '-f', 'q.yaml', '--trace', 'u.csv'], '-f is given twice'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--volume', 'logs'], '--volume must be data, wal or tablespace:<name>, not "logs"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--volume', 'tablespace:'], '--volume must be data, wal or tablespace:<name>, not "tablespace:"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--step', '15'], '--step must be a duration such as 15s, 5m, 1h30m or 14d, not "15"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--step', '500ms'], '--step must be at least 1s, not "500ms"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--resize-latency', 'soon'], '--resize-latency must be a duration such as 15s, 5m, 1h30m or 14d, not "soon"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--initial-size', 'big'], '--initial-size: "big" is not a valid quantity (examples: 10Gi, 500Mi, 1Ti)'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--initial-size', '0'], '--initial-size must be positive, not "0"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '-o', 'yaml'], '--output must be table or json, not "yaml"'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '-n', 'db'], '--namespace goes with --prometheus'],
      [['-f', 'p.yaml', '--trace', 'u.csv', '--since', '1d'], '--since goes with --prometheus'],
      [['-f', 'p.yaml', '--prometheus', 'prom:9090'], '--prometheus must be an http or https URL, not "prom:9090"'],
      [['-f', 'p.yaml', '--prometheus', 'http://p', '--since', '30s'], '--since must be at least 60s, not "30s"'],
      [['-f', 'p.yaml', '--prometheus', 'http://p', '--until', 'yesterday'], '--until must be an RFC 3339 time such as 2026-01-31T00:00:00Z or unix seconds, not "yesterday"'],
    ];
    for (const [args, message] of usageErrors) {
      it(`exits 2 on ${args.join(' ')}`, async () => {
        const result = await run(args);
        assert.equal(result.code, 2);
        assert.equal(result.out, '');
        assert.ok(result.err.startsWith(`kubectl cnpg storage simulate: ${message}\n\nUsage: kubectl cnpg storage simulate`), result.err);
      });
    }

    it('exits 2 when a file cannot be read', async () => {
      for (const args of [['-f', 'missing.yaml', '--trace', 'usage.csv'], ['-f', 'policy.yaml', '--trace', 'missing.csv']]) {
        const result = await run(args);
        assert.equal(result.code, 2);
        assert.match(result.err, /^kubectl cnpg storage simulate: cannot read missing\.(yaml|csv): ENOENT/);
      }
    });

    it('prints its help, and is listed in the commands', async () => {
      const help = await run(['--help']);
      assert.equal(help.code, 0);
      assert.match(help.out, /^Usage: kubectl cnpg storage simulate -f <policy.yaml> \(--trace <usage.csv> \| --prometheus <url>\)/);
      const io = memoryIo({});
      assert.equal(await runCli(['--help'], io), 0);
      assert.match(io.out.join(''), /\n {2}simulate {2}replay the sizing engine over a usage history/);
    });

    it('parses durations exactly, and prints them in their largest units', () => {
      assert.equal(parseDurationText('90s'), 90_000);
      assert.equal(parseDurationText('1h30m'), 5_400_000);
      assert.equal(parseDurationText('14d'), 14 * 86_400_000);
      assert.equal(parseDurationText('1.5m'), 90_000);
      assert.equal(parseDurationText('250ms'), 250);
      for (const bad of ['', '15', 'm', '1x', '-1s', '1h 30m']) assert.equal(parseDurationText(bad), undefined, bad);
      assert.deepEqual([0, 15_000, 60_000, 5_400_000, 86_400_000, 90_061_000].map(compactDuration), ['0s', '15s', '1m', '1h30m', '1d', '1d1h1m1s']);
    });
  });

  describe('input problems', () => {
    it('reports an invalid policy exactly as validate does, and exits 1', async () => {
      const invalid = policyYaml.replace('request: 2Gi, limit: 20Gi', 'request: 30Gi, limit: 20Gi, targetBuffer: 70');
      const result = await run(['-f', 'bad.yaml', '--trace', 'usage.csv'], memoryIo({ ...files, 'bad.yaml': invalid }));
      const validate = memoryIo({ 'bad.yaml': invalid });
      assert.equal(await runCli(['validate', '-f', 'bad.yaml'], validate), 1);
      assert.equal(result.code, 1);
      assert.equal(result.out, '');
      assert.equal(result.err, validate.out.join(''));
      assert.match(result.err, /spec\.storage\.request: Invalid value: request \(30Gi\) cannot exceed limit \(20Gi\) \[RequestAboveLimit\]/);
    });

    const problems: [string, Record<string, string>, string[], RegExp][] = [
      ['no DynamicStorage', { 'p.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n' }, [], /^p\.yaml: no DynamicStorage \(apiVersion dynamicstorage\.cnpg\.io\/v1alpha1\) \[NoPolicy\]\n$/],
      ['two DynamicStorage objects', { 'p.yaml': `${policyYaml}---\n${policyYaml}` }, [], /^p\.yaml: 2 DynamicStorage objects; give a file with one \[SeveralPolicies\]\n$/],
      ['YAML that does not parse', { 'p.yaml': 'spec: [\n' }, [], /^p\.yaml: document 1 is not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a \] at line 2, column 1: \[PolicyNotParsed\]\n$/],
      ['a volume the policy does not manage', { 'p.yaml': policyYaml }, ['--volume', 'wal'],
        /^p\.yaml: DynamicStorage db\/pg does not manage the wal volume \(no spec\.walStorage\); it manages: data, tablespace:app \[VolumeNotManaged\]\n$/],
      ['a tablespace the policy does not manage', { 'p.yaml': policyYaml }, ['--volume', 'tablespace:idx'],
        /does not manage the tablespace idx volume \(no spec\.tablespaces\[name=idx\]\.storage\); it manages: data, tablespace:app \[VolumeNotManaged\]/],
      ['a bad trace row', { 'p.yaml': policyYaml, 'usage.csv': 'timestamp,instance,used_bytes\n1767225600,pg-1,5\n1767225615,pg-1,five\n' }, [],
        /^usage\.csv: line 3: used_bytes "five" is not a non-negative number of bytes \[InvalidUsedBytes\]\n$/],
      ['an empty trace', { 'p.yaml': policyYaml, 'usage.csv': '' }, [], /^usage\.csv: the trace is empty: expected the header timestamp,instance,used_bytes and rows \[EmptyTrace\]\n$/],
    ];
    for (const [name, input, extra, message] of problems) {
      it(`exits 1 on ${name}`, async () => {
        const result = await run(['-f', 'p.yaml', '--trace', 'usage.csv', ...extra], memoryIo({ 'usage.csv': files['usage.csv'], ...input }));
        assert.equal(result.code, 1);
        assert.equal(result.out, '');
        assert.match(result.err, message);
      });
    }

    it('reads the trace from standard input', async () => {
      const result = await run(['-f', 'policy.yaml', '--trace', '-', '--step', '5m', '-o', 'json'], memoryIo({ 'policy.yaml': policyYaml }, files['usage.csv']));
      assert.equal(result.code, 0, result.err);
      assert.equal((JSON.parse(result.out) as SimulationResult).source, '<stdin>');
    });
  });

  describe('output', function () {
    this.timeout(60_000);
    let json: SimulationResult;
    let table: string;

    before(async () => {
      const a = await run(['-f', 'policy.yaml', '--trace', 'usage.csv', '--step', '1m', '-o', 'json']);
      assert.equal(a.code, 0, a.err);
      json = JSON.parse(a.out) as SimulationResult;
      const b = await run(['-f', 'policy.yaml', '--trace', 'usage.csv', '--step', '1m']);
      assert.equal(b.code, 0, b.err);
      table = b.out;
    });

    it('JSON: the setting, exactly', () => {
      const { resizes: _r, maxActionsIn24h: _m, secondsOutOfSpace: _o, secondsOverCritical: _c, provisionedGiBHours: _p, idealGiBHours: _i, finalSize: _f, perInstance, ...setting } = json;
      assert.deepEqual(setting, {
        dynamicStorage: 'db/pg', volume: 'data', source: 'usage.csv', metric: null, instances: ['pg-1', 'pg-2'],
        start: '2026-01-01T00:00:00Z', end: '2026-01-01T06:00:00Z', stepSeconds: 60, resizeLatencySeconds: 60, initialSize: 2 * GiB,
        policy: { request: 2 * GiB, limit: 20 * GiB, targetBuffer: 20, criticalThreshold: 95, maxActionsPerDay: 4, reservedActionsForEmergency: 1, maintenanceWindow: null },
        warnings: [],
      });
      assert.deepEqual(perInstance.map((i) => Object.keys(i)), [['instance', 'maxPercentUsed', 'secondsOverCritical', 'secondsOutOfSpace'], ['instance', 'maxPercentUsed', 'secondsOverCritical', 'secondsOutOfSpace']]);
    });

    it('JSON: resizes that chain, in time order, within the budget and the limit', () => {
      assert.ok(json.resizes.length > 0, 'growing usage from 1Gi to 5Gi on a 2Gi volume needs resizes');
      let size = json.initialSize;
      let previous = '';
      for (const r of json.resizes) {
        assert.deepEqual(Object.keys(r), ['at', 'kind', 'from', 'to', 'reason', 'message', 'instance']);
        assert.match(r.at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
        assert.ok(r.at >= previous, `${r.at} before ${previous}`);
        assert.match(r.kind, /^(Emergency|Scheduled)$/);
        assert.equal(r.from, size);
        assert.ok(r.to > r.from && r.to <= json.policy.limit);
        assert.equal(r.instance, 'pg-1', 'pg-1 is always the fullest');
        size = r.to;
        previous = r.at;
      }
      assert.equal(json.finalSize, size);
      assert.ok(json.maxActionsIn24h >= 1 && json.maxActionsIn24h <= json.policy.maxActionsPerDay);
      assert.ok(json.finalSize >= (5 * GiB) / 0.95, 'the final size holds the final usage');
    });

    it('JSON: the totals are consistent', () => {
      const hours = 6 + 1 / 60;
      assert.ok(json.secondsOutOfSpace >= 0 && json.secondsOutOfSpace <= json.secondsOverCritical);
      assert.equal(json.secondsOutOfSpace, Math.max(...json.perInstance.map((i) => i.secondsOutOfSpace)));
      assert.ok(json.provisionedGiBHours >= 2 * hours && json.provisionedGiBHours <= (json.finalSize / GiB) * hours);
      assert.ok(json.idealGiBHours > 0 && json.idealGiBHours < json.provisionedGiBHours * 2);
      const [pg1, pg2] = json.perInstance;
      assert.ok(pg1 !== undefined && pg2 !== undefined && pg1.maxPercentUsed > pg2.maxPercentUsed);
    });

    it('table: the setting, the timeline and the totals', () => {
      const lines = table.split('\n');
      assert.deepEqual(lines.slice(0, 11), [
        'Simulation: DynamicStorage db/pg, data volume',
        '  History:         usage.csv',
        '  Instances:       pg-1, pg-2',
        '  Period:          2026-01-01T00:00:00Z to 2026-01-01T06:00:00Z (6h), every 1m',
        '  Resize latency:  1m',
        '  Policy:          request 2Gi, limit 20Gi, target buffer 20%, critical at 95%',
        '  Window:          none (planned growth at any time)',
        '  Budget:          4 actions a day, 1 reserved for emergencies',
        '  Initial size:    2Gi',
        '',
        `Resizes: ${json.resizes.length}`,
      ]);
      assert.match(lines[11] ?? '', /^ {2}AT {21}KIND {8}FROM +TO +FULLEST +REASON$/);
      json.resizes.forEach((r, i) => {
        assert.match(lines[12 + i] ?? '', new RegExp(`^  ${r.at}   ${r.kind} +${formatQuantity(r.from)} +${formatQuantity(r.to)} +pg-1 +${r.reason}$`));
      });
      assert.ok(table.includes(`\nFinal size:              ${formatQuantity(json.finalSize)}\n`));
      assert.ok(table.includes(`\nMax actions in 24h:      ${json.maxActionsIn24h} (budget 4)\n`));
      assert.ok(table.includes(`\nOut of space:            ${compactDuration(json.secondsOutOfSpace * 1000)}\n`));
      assert.ok(table.includes(`\nProvisioned:             ${json.provisionedGiBHours.toFixed(1)} GiB-hours per volume (`));
      assert.match(table, /\nINSTANCE {3}MAX USED {3}OVER CRITICAL {3}OUT OF SPACE\npg-1 {7}\d+\.\d% .*\npg-2 {7}\d+\.\d% .*\n$/);
    });

    it('simulates a tablespace with its own policy, defaults applied, from another initial size', async () => {
      const result = await run(['-f', 'policy.yaml', '--trace', 'usage.csv', '--step', '5m', '--volume', 'tablespace:app', '--initial-size', '5Gi', '-o', 'json']);
      assert.equal(result.code, 0, result.err);
      const tablespace = JSON.parse(result.out) as SimulationResult;
      assert.equal(tablespace.volume, 'tablespace:app');
      assert.equal(tablespace.initialSize, 5 * GiB);
      assert.deepEqual(tablespace.policy, {
        request: 4 * GiB, limit: 8 * GiB, targetBuffer: 30, criticalThreshold: 95, maxActionsPerDay: 4, reservedActionsForEmergency: 1,
        maintenanceWindow: '30 2 * * 1-5 Europe/Berlin for 1h30m',
      });
      assert.ok(tablespace.resizes.every((r) => r.to <= 8 * GiB));
      assert.equal(tablespace.resizes[0]?.from ?? tablespace.finalSize, 5 * GiB);
    });
  });

  it('renders a result as text, exactly', () => {
    const result: SimulationResult = {
      dynamicStorage: 'db/pg', volume: 'wal', source: 'http://prometheus:9090', metric: 'cnpg_disk_used_bytes', instances: ['pg-1', 'pg-2'],
      start: '2026-01-01T00:00:00Z', end: '2026-01-15T00:00:00Z', stepSeconds: 15, resizeLatencySeconds: 90, initialSize: 10 * GiB,
      policy: { request: 10 * GiB, limit: 100 * GiB, targetBuffer: 25, criticalThreshold: 90, maxActionsPerDay: 6, reservedActionsForEmergency: 2, maintenanceWindow: '0 3 * * * UTC for 2h' },
      resizes: [
        { at: '2026-01-03T03:00:00Z', kind: 'Scheduled', from: 10 * GiB, to: 14 * GiB, reason: 'BelowTargetBuffer', message: 'm', instance: 'pg-2' },
        { at: '2026-01-09T17:42:15Z', kind: 'Emergency', from: 14 * GiB, to: 28 * GiB, reason: 'PredictedFull', message: 'm', instance: null },
      ],
      maxActionsIn24h: 1, secondsOutOfSpace: 0, secondsOverCritical: 75, provisionedGiBHours: 6543.21, idealGiBHours: 5000, finalSize: 28 * GiB,
      perInstance: [
        { instance: 'pg-1', maxPercentUsed: 71.5, secondsOverCritical: 0, secondsOutOfSpace: 0 },
        { instance: 'pg-2', maxPercentUsed: 90.2, secondsOverCritical: 75, secondsOutOfSpace: 0 },
      ],
      warnings: ['pg-3: 1 sample in the range, left out (a replay needs two)'],
    };
    assert.equal(renderSimulation(result), `Simulation: DynamicStorage db/pg, wal volume
  History:         http://prometheus:9090 (cnpg_disk_used_bytes)
  Instances:       pg-1, pg-2
  Period:          2026-01-01T00:00:00Z to 2026-01-15T00:00:00Z (14d), every 15s
  Resize latency:  1m30s
  Policy:          request 10Gi, limit 100Gi, target buffer 25%, critical at 90%
  Window:          0 3 * * * UTC for 2h
  Budget:          6 actions a day, 2 reserved for emergencies
  Initial size:    10Gi

Resizes: 2
  AT                     KIND        FROM   TO     FULLEST   REASON
  2026-01-03T03:00:00Z   Scheduled   10Gi   14Gi   pg-2      BelowTargetBuffer
  2026-01-09T17:42:15Z   Emergency   14Gi   28Gi   -         PredictedFull

Final size:              28Gi
Max actions in 24h:      1 (budget 6)
Out of space:            0s
At or over critical:     1m15s
Provisioned:             6543.2 GiB-hours per volume (1.31x the ideal 5000.0)

INSTANCE   MAX USED   OVER CRITICAL   OUT OF SPACE
pg-1       71.5%      0s              0s
pg-2       90.2%      1m15s           0s
Warning: pg-3: 1 sample in the range, left out (a replay needs two)
`);
  });
});

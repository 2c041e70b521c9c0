/**
 * The end-to-end targets without a cluster: the selection from the environment, the scenario units, and what the AKS
 * driver would run (Cluster manifests, psql and statfs commands, fill and sentinel SQL, the switchover patch).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { GiB, MiB, parseQuantity } from '../../../shared/quantity.ts';
import {
  aksSizes, clusterManifest, createAksDriver, fillSql, freeSql, leaderPod, mountPath, nextFillMiB, parseForwardedPort, walRoomBytes, parseStatfs, psqlArgs,
  sentinelChecksumSql, sentinelWriteSql, statfsArgs, switchoverPatch, transientExecError,
} from '../../../e2e/targets/aks.ts';
import { readTargetSettings, unitsQuantity, type Usage } from '../../../e2e/targets/index.ts';
import { standinSizes } from '../../../e2e/targets/standin.ts';
import { ceilingOf } from '../../../e2e/invariants.ts';

function usage(usedBytes: number, availableBytes: number): Usage {
  return { sizeBytes: usedBytes + availableBytes, usedBytes, availableBytes, usedPercent: (usedBytes / (usedBytes + availableBytes)) * 100 };
}

describe('e2e targets', function () {
  describe('selection', function () {
    it('defaults to the stand-in and reads KUBECONFIG', function () {
      assert.deepEqual(readTargetSettings({}), { name: 'standin', kubeconfig: undefined, commandEnv: {} });
      const env = { E2E_TARGET: ' aks ', KUBECONFIG: '/tmp/kc', PATH: '/bin' };
      assert.deepEqual(readTargetSettings(env), { name: 'aks', kubeconfig: '/tmp/kc', commandEnv: env });
      assert.equal(readTargetSettings({ E2E_TARGET: 'node' }).name, 'node');
    });

    it('refuses an unknown target, naming the variable and the choices', function () {
      assert.throws(() => readTargetSettings({ E2E_TARGET: 'eks' }), /E2E_TARGET must be one of standin, node, aks, got "eks"/);
    });
  });

  describe('sizes', function () {
    it('counts the stand-in in MiB and AKS in eighths of a GiB, whole GiB for every size a scenario asks for', function () {
      assert.equal(unitsQuantity(standinSizes, 64), '64Mi');
      assert.equal(unitsQuantity(standinSizes, 106), '106Mi');
      for (const [units, quantity] of [[64, '8Gi'], [72, '9Gi'], [80, '10Gi'], [96, '12Gi'], [128, '16Gi'], [256, '32Gi'], [8, '1Gi'], [4, '512Mi']] as const) {
        assert.equal(unitsQuantity(aksSizes, units), quantity);
      }
      assert.equal(aksSizes.storageClass, 'managed-csi-premium');
      assert.ok(parseQuantity(unitsQuantity(aksSizes, 64)) >= 5 * GiB, 'AKS requests 5Gi and up');
      assert.equal(aksSizes.allocationUnit, GiB);
    });

    it('rounds the emergency overshoot to the allocation unit of the target', function () {
      const policy = { request: '8Gi', limit: '12Gi', emergencyGrow: { exceedLimitOnEmergency: true }, growth: { minimumStep: '1Gi' } };
      assert.equal(ceilingOf(policy, GiB), 14 * GiB);
      assert.equal(ceilingOf({ ...policy, limit: '96Mi', growth: { minimumStep: '8Mi' } }, MiB), 106 * MiB);
    });
  });

  describe('AKS commands', function () {
    it('makes a CNPG Cluster with WAL storage and tablespaces on the given class', function () {
      const manifest = clusterManifest('ns', 'pg', { instances: 2, size: '8Gi', storageClass: 'managed-csi-premium', walStorage: true, tablespaces: ['analytics'] });
      assert.deepEqual(manifest.metadata, { name: 'pg', namespace: 'ns' });
      assert.equal(manifest.apiVersion, 'postgresql.cnpg.io/v1');
      const spec = manifest.spec as Record<string, unknown>;
      assert.equal(spec.instances, 2);
      assert.deepEqual(spec.storage, { size: '8Gi', storageClass: 'managed-csi-premium' });
      assert.deepEqual(spec.walStorage, { size: '8Gi', storageClass: 'managed-csi-premium' });
      assert.deepEqual(spec.tablespaces, [{ name: 'analytics', storage: { size: '8Gi', storageClass: 'managed-csi-premium' } }]);
      const plain = clusterManifest('ns', 'pg', { instances: 1, size: '8Gi', storageClass: 'x', walStorage: false, tablespaces: [] }).spec as Record<string, unknown>;
      assert.equal(plain.walStorage, undefined);
      assert.equal(plain.tablespaces, undefined);
    });

    it("tunes a target's Clusters: WAL segments, parameters, and a WAL volume of its own when asked", function () {
      const shape = { instances: 1, size: '64Mi', storageClass: 'x', walStorage: false, tablespaces: [] };
      const spec = clusterManifest('ns', 'pg', shape, { walSegmentSizeMiB: 1, walVolume: true, parameters: { max_wal_size: '16MB' } }).spec as Record<string, unknown>;
      assert.deepEqual(spec.walStorage, { size: '64Mi', storageClass: 'x' });
      assert.deepEqual(spec.bootstrap, { initdb: { database: 'app', owner: 'app', walSegmentSize: 1 } });
      assert.deepEqual(spec.postgresql, { parameters: { max_slot_wal_keep_size: '-1', max_wal_size: '16MB' } });
      const untuned = clusterManifest('ns', 'pg', shape).spec as Record<string, unknown>;
      assert.equal(untuned.bootstrap, undefined);
    });

    it('retries exec only while the instance is between lives, never an SQL error', function () {
      assert.ok(transientExecError('error: unable to upgrade connection: container not found ("postgres")'));
      assert.ok(transientExecError('OCI runtime exec failed: exec failed: unable to start container process: error executing setns process: exit status 1'));
      assert.ok(transientExecError('psql: error: connection to server on socket "/controller/run/.s.PGSQL.5432" failed: No such file or directory\n\tIs the server running locally'));
      assert.ok(transientExecError('FATAL:  the database system is starting up'));
      assert.ok(!transientExecError('ERROR:  relation "e2e_sentinel" does not exist'));
      assert.ok(!transientExecError('ERROR:  could not extend file "base/16385/16390": No space left on device'));
    });

    it('runs psql and stat -f in the postgres container of the instance', function () {
      assert.deepEqual(psqlArgs('ns', 'pg-1', 'SELECT 1;'), ['exec', '-n', 'ns', 'pg-1', '-c', 'postgres', '--', 'psql', '-U', 'postgres', '-d', 'app', '-v', 'ON_ERROR_STOP=1', '-qAtX', '-c', 'SELECT 1;']);
      assert.deepEqual(statfsArgs('ns', 'pg-2', mountPath('wal')), ['exec', '-n', 'ns', 'pg-2', '-c', 'postgres', '--', 'stat', '-f', '-c', '%S %b %f %a', '/var/lib/postgresql/wal']);
      assert.equal(mountPath('data'), '/var/lib/postgresql/data');
      assert.equal(mountPath({ tablespace: 'analytics' }), '/var/lib/postgresql/tablespaces/analytics');
    });

    it('reads statfs as df does', function () {
      const u = parseStatfs('4096 1000 200 150\n');
      assert.deepEqual([u.sizeBytes, u.usedBytes, u.availableBytes], [4096 * 1000, 4096 * 800, 4096 * 150]);
      assert.equal(u.usedPercent, (800 / 950) * 100);
      assert.throws(() => parseStatfs('stat: cannot read file system information'), /unexpected stat -f output/);
    });

    it('fills data and tablespaces with uncompressed rows, WAL with records held by a slot, and frees them again', function () {
      const data = fillSql('data', 3);
      assert.match(data, /CREATE TABLE IF NOT EXISTS e2e_fill_data \(id bigserial, payload text\);/);
      assert.match(data, /SET STORAGE EXTERNAL/);
      assert.match(data, /generate_series\(1, 3\)/);
      assert.match(fillSql({ tablespace: 'my-space' }, 1), /CREATE TABLE IF NOT EXISTS e2e_fill_tbs_my_space .* TABLESPACE "my-space";/);
      const wal = fillSql('wal', 5);
      assert.match(wal, /pg_create_physical_replication_slot\('e2e_hold_wal', true\)/);
      assert.match(wal, /pg_logical_emit_message\(false, 'e2e-fill', repeat\(md5\(g::text\), 32768\)\)\) FROM generate_series\(1, 5\)/);
      assert.match(freeSql('wal'), /pg_drop_replication_slot\('e2e_hold_wal'\)/);
      assert.match(fillSql({ tablespace: 'my-space' }, 1, true), /CREATE UNLOGGED TABLE IF NOT EXISTS e2e_fill_tbs_my_space_unlogged .* TABLESPACE "my-space";/);
      assert.match(freeSql({ tablespace: 'a' }), /DROP TABLE IF EXISTS e2e_fill_tbs_a, e2e_fill_tbs_a_unlogged;/);
      assert.throws(() => fillSql('data', 0), RangeError);
      assert.throws(() => fillSql('data', 1.5), RangeError);
    });

    it('fills in rounds of half the gap, nothing when there', function () {
      assert.equal(nextFillMiB(usage(0, 8 * GiB), 50), 2048);
      assert.equal(nextFillMiB(usage(3900 * MiB, 100 * MiB), 99), 30);
      assert.equal(nextFillMiB(usage(3940 * MiB, 60 * MiB), 99), 10);
      assert.equal(nextFillMiB(usage(90 * MiB, 10 * MiB), 50), 0);
      assert.equal(nextFillMiB(usage(10 * MiB, 90 * MiB), 10.5), 1, 'at least 1 MiB');
    });

    it('with WAL on a volume of its own, fills the whole gap in one round as far as the WAL volume has room', function () {
      assert.equal(nextFillMiB(usage(20 * MiB, 44 * MiB), 92, 200 * MiB), 38, 'the whole gap');
      assert.equal(nextFillMiB(usage(20 * MiB, 44 * MiB), 92, 10.5 * MiB), 10, 'as far as the WAL volume has room');
      assert.equal(nextFillMiB(usage(20 * MiB, 44 * MiB), 92, 0), 1, 'at least 1 MiB');
      assert.equal(nextFillMiB(usage(60 * MiB, 4 * MiB), 92, 200 * MiB), 0);
      assert.equal(walRoomBytes(usage(16 * MiB, 240 * MiB)), 112 * MiB, 'half the WAL volume, less what it holds');
      assert.equal(walRoomBytes(usage(130 * MiB, 126 * MiB)), 0);
    });

    it('writes sentinels per tablespace and reads their checksum back', function () {
      assert.match(sentinelWriteSql(undefined), /CREATE TABLE e2e_sentinel \(id int PRIMARY KEY, payload text\);/);
      assert.match(sentinelWriteSql('analytics'), /CREATE TABLE e2e_sentinel_analytics .* TABLESPACE "analytics";/);
      assert.equal(sentinelChecksumSql('analytics'), "SELECT md5(string_agg(payload, ',' ORDER BY id)) FROM e2e_sentinel_analytics;");
    });

    it('switches over as kubectl cnpg promote does, through the status', function () {
      const at = new Date('2026-12-01T10:00:00Z');
      assert.deepEqual(switchoverPatch('pg-2', at), {
        status: { targetPrimary: 'pg-2', targetPrimaryTimestamp: '2026-12-01T10:00:00.000Z', phase: 'Switchover in progress', phaseReason: 'Switching over to pg-2' },
      });
    });

    it('finds the leading controller pod and the forwarded port', function () {
      assert.equal(leaderPod('cnpg-dynamic-storage-controller-7d9f-abcde_1a2b3c'), 'cnpg-dynamic-storage-controller-7d9f-abcde');
      assert.equal(leaderPod(undefined), undefined);
      assert.equal(parseForwardedPort('Forwarding from 127.0.0.1:41234 -> 9100'), 41234);
      assert.equal(parseForwardedPort('Forwarding from [::1]:41234 -> 9100'), undefined);
    });

    it('says what AKS cannot do, and why', function () {
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }], users: [{ name: 'u', token: 't' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
      });
      const driver = createAksDriver(kc, { name: 'aks', kubeconfig: undefined, commandEnv: {} }, () => Promise.reject(new Error('no commands here')));
      assert.equal(driver.clock.supported, false);
      for (const capability of [driver.clock, driver.faults.infeasible, driver.faults.growthBoundary]) {
        assert.ok(!capability.supported && capability.reason.length > 20, 'a reason is given');
      }
      assert.ok(driver.faults.quota.supported && driver.faults.latency.supported && driver.drain.supported);
      assert.deepEqual(driver.sizes.boundaryStorageClass, { supported: true, use: 'managed-csi' });
    });
  });
});

/** A kube-apiserver that only knows one CNPG Cluster `ns/pg` with `primary` as its primary, and its two instance pods. */
async function fakeApiServer(primary: string): Promise<{ kubeConfig: k8s.KubeConfig; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.startsWith('/apis/postgresql.cnpg.io/v1/namespaces/ns/clusters/pg')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'pg', namespace: 'ns' }, spec: { instances: 2 }, status: { currentPrimary: primary } }));
      return;
    }
    if (req.method === 'GET' && req.url?.startsWith('/api/v1/namespaces/ns/pods?')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const pod = (name: string): object => ({ metadata: { name, namespace: 'ns' } });
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'PodList', metadata: {}, items: [pod('pg-1'), pod('pg-2')] }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', code: 404 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  return { kubeConfig, close: () => new Promise((resolve) => { server.close(() => { resolve(); }); }) };
}

/**
 * A volume of 1000 blocks of 1 MiB behind `kubectl exec`: `stat -f` reports it, fill SQL adds its rows, freeing SQL gives
 * back what the fills wrote.
 */
function fakeVolume(baseMiB: number, filledMiB = 0): { run: (command: string, args: readonly string[]) => Promise<string>; calls: string[][]; usedMiB: () => number; peakMiB: () => number } {
  let filled = filledMiB;
  let peak = baseMiB + filled;
  const calls: string[][] = [];
  return {
    calls, usedMiB: () => baseMiB + filled, peakMiB: () => peak,
    run: (command, args) => {
      calls.push([command, ...args]);
      const last = args.at(-1) ?? '';
      if (args.includes('stat')) {
        const free = 1000 - baseMiB - filled;
        return Promise.resolve(`${MiB} 1000 ${free} ${free}\n`);
      }
      // Replicas replay at once here.
      if (last.includes('pg_current_wal_lsn')) return Promise.resolve('0/3000000\n');
      if (last.includes('pg_last_wal_replay_lsn')) return Promise.resolve('t\n');
      const rows = /generate_series\(1, (\d+)\)/.exec(last);
      if (rows) {
        // The rows, and as much WAL until the checkpoint at the end of the statement.
        peak = Math.max(peak, baseMiB + filled + 2 * Number(rows[1]));
        filled += Number(rows[1]);
      } else if (last.includes('DROP TABLE')) {
        filled = 0;
      }
      return Promise.resolve('');
    },
  };
}

describe('e2e targets: the AKS driver fills through psql on the primary', function () {
  it('writes in rounds until the volume is at the percentage, never past it, each in the primary\'s postgres container', async function () {
    const api = await fakeApiServer('pg-1');
    try {
      const volume = fakeVolume(10);
      const driver = createAksDriver(api.kubeConfig, { name: 'aks', kubeconfig: undefined, commandEnv: {} }, volume.run);
      await driver.fill({ namespace: 'ns', cluster: 'pg', instance: 1, role: 'data' }, 50);
      assert.ok(Math.abs(volume.usedMiB() - 500) <= 5, `at 50%: ${volume.usedMiB()} MiB of 1000`);
      assert.ok(volume.peakMiB() <= 500, `never past the target, WAL included: ${volume.peakMiB()}`);
      const psql = volume.calls.filter((c) => c.includes('psql') && (c.at(-1) ?? '').includes('generate_series'));
      assert.ok(psql.length >= 3 && psql.length < 40, `in rounds: ${psql.length}`);
      for (const call of psql) assert.deepEqual(call.slice(0, 9), ['kubectl', 'exec', '-n', 'ns', 'pg-1', '-c', 'postgres', '--', 'psql']);
      const replayed = volume.calls.filter((c) => (c.at(-1) ?? '').includes('pg_last_wal_replay_lsn'));
      assert.ok(replayed.length >= psql.length && replayed.every((c) => c[4] === 'pg-2'), 'each round waits for the replica to replay it');
      assert.match(psql[0]?.at(-1) ?? '', /generate_series\(1, 245\)/, 'half of the 490 MiB gap first');
    } finally {
      await api.close();
    }
  });

  it('frees what it wrote when above the percentage, then fills again', async function () {
    const api = await fakeApiServer('pg-1');
    try {
      const volume = fakeVolume(10, 890);
      const driver = createAksDriver(api.kubeConfig, { name: 'aks', kubeconfig: undefined, commandEnv: {} }, volume.run);
      await driver.fill({ namespace: 'ns', cluster: 'pg', instance: 1, role: { tablespace: 'analytics' } }, 50);
      const sql = volume.calls.filter((c) => c.includes('psql')).map((c) => c.at(-1) ?? '');
      assert.match(sql[0] ?? '', /DROP TABLE IF EXISTS e2e_fill_tbs_analytics/);
      const fills = sql.filter((statement) => statement.includes('generate_series'));
      assert.ok(fills.length > 0);
      // A tablespace filled on the primary: unlogged rows, so that its WAL volume does not fill with it.
      for (const fill of fills) assert.match(fill, /CREATE UNLOGGED TABLE IF NOT EXISTS e2e_fill_tbs_analytics_unlogged .*TABLESPACE "analytics"/);
      assert.ok(sql.some((statement) => statement.includes('pg_last_wal_replay_lsn')), 'waits for the replica to replay each round');
      assert.ok(Math.abs(volume.usedMiB() - 500) <= 5, `at 50%: ${volume.usedMiB()}`);
      const stat = volume.calls.find((c) => c.includes('stat'));
      assert.equal(stat?.at(-1), '/var/lib/postgresql/tablespaces/analytics');
    } finally {
      await api.close();
    }
  });

  it('refuses to fill the WAL of a replica (the slot holds WAL back on the primary only)', async function () {
    const api = await fakeApiServer('pg-1');
    try {
      const volume = fakeVolume(10);
      const driver = createAksDriver(api.kubeConfig, { name: 'aks', kubeconfig: undefined, commandEnv: {} }, volume.run);
      await assert.rejects(driver.fill({ namespace: 'ns', cluster: 'pg', instance: 2, role: 'wal' }, 50), /WAL is filled on the primary only/);
      assert.deepEqual(volume.calls, []);
    } finally {
      await api.close();
    }
  });
});

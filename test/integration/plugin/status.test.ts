/**
 * `kubectl cnpg storage status` against a real API server: the command runs as a child process, both directly
 * (`node plugin/main.ts status ...`) and through kubectl's plugin mechanism (`kubectl cnpg storage status ...` with
 * plugin/ on PATH), and its whole output is compared. Relative times are kept hours away from any unit boundary so the
 * expected text does not depend on how long the run takes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { applyCrds } from '../../harness/crds.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { freePort } from '../../harness/ports.ts';
import type { DynamicStorage, DynamicStorageStatus } from '../../../shared/api/dynamicstorage.generated.ts';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const namespace = 'ns';
const ds = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace };
const clusters = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace };

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function runProcess(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, { cwd: repoRoot, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failure = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw err;
    return { code: failure.code, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

describe('kubectl cnpg storage status on a real API server', function () {
  let plane: ControlPlane;
  let kubectl: string;
  let tmp: string;
  const start = Date.now();
  // Ten and a half hours either side of now: "10h ago" and "in 10h" for the next 30 minutes.
  const actionAt = start - 10.5 * 3_600_000;
  const windowStart = new Date(start + 10.5 * 3_600_000);
  const schedule = `${windowStart.getUTCMinutes()} ${windowStart.getUTCHours()} * * *`;
  const nextWindow = rfc3339(Date.UTC(windowStart.getUTCFullYear(), windowStart.getUTCMonth(), windowStart.getUTCDate(), windowStart.getUTCHours(), windowStart.getUTCMinutes()));

  const pgStatus: DynamicStorageStatus = {
    observedGeneration: 1,
    conditions: [{ type: 'Valid', status: 'True', reason: 'Valid', message: 'the policy passed every check', lastTransitionTime: rfc3339(actionAt) }],
    storageSizing: {
      data: {
        effectiveSize: '10Gi', targetSize: '10Gi', state: 'Balanced', reason: 'WithinTargetBuffer', message: 'the fullest volume is 61% used, within the 20% buffer',
        actualSizes: { 'pg-1': '10Gi', 'pg-2': '10Gi' },
        instances: {
          'pg-1': { persistentVolumeClaim: 'pg-1', used: '5.9Gi', available: '3.8Gi', percentUsed: 61, diskStatus: 'Reported' },
          'pg-2': { persistentVolumeClaim: 'pg-2', used: '5.8Gi', available: '3.9Gi', percentUsed: 60, diskStatus: 'Reported' },
        },
        lastAction: { kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: rfc3339(actionAt), completedAt: rfc3339(actionAt + 45_000), result: 'Success' },
        recentActions: [{ kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: rfc3339(actionAt), completedAt: rfc3339(actionAt + 45_000), result: 'Success' }],
        budget: { actionsLast24h: 1, availableForPlanned: 2, availableForEmergency: 3, budgetResetsAt: rfc3339(actionAt + 86_400_000) },
        nextMaintenanceWindow: nextWindow,
      },
      wal: {
        effectiveSize: '2Gi', targetSize: '2Gi', state: 'WaitingForDiskStatus', reason: 'DiskStatusMissing', message: 'no usable reading for pg-2',
        instances: {
          'pg-1': { persistentVolumeClaim: 'pg-1-wal', used: '0.4Gi', available: '1.5Gi', percentUsed: 21, diskStatus: 'Reported' },
          'pg-2': { persistentVolumeClaim: 'pg-2-wal', diskStatus: 'DiskStatusMissing' },
        },
        budget: { actionsLast24h: 0, availableForPlanned: 3, availableForEmergency: 4 },
      },
    },
  };

  const expected = `Cluster: pg
Dynamic Sizing: Enabled
DynamicStorage: ns/pg

Data Volume:
  Request:        5Gi
  Limit:          50Gi
  Target Buffer:  20%
  Effective Size: 10Gi
  State:          Balanced
  Reason:         WithinTargetBuffer: the fullest volume is 61% used, within the 20% buffer
  Last Action:    ScheduledGrow 8Gi -> 10Gi, Success, ${rfc3339(actionAt)} (10h ago)
                  completed ${rfc3339(actionAt + 45_000)} (after 45s)
  Window:         ${schedule} UTC for 1h

  Instance        PVC Size    Used     Available   Usage%
  pg-1            10Gi        5.9Gi    3.8Gi       61%
  pg-2            10Gi        5.8Gi    3.9Gi       60%

  Budget:
    Max Actions/Day:      4
    Used (24h):           1
    Available (Planned):  2
    Available (Emergency): 3
    Resets At:            ${rfc3339(actionAt + 86_400_000)}

  Next Maintenance Window: ${nextWindow} (in 10h)

WAL Volume:
  Request:        1Gi
  Limit:          8Gi
  Target Buffer:  30%
  Effective Size: 2Gi
  State:          WaitingForDiskStatus
  Reason:         DiskStatusMissing: no usable reading for pg-2

  Instance        PVC Size    Used     Available   Usage%  Disk Status
  pg-1            2Gi         0.4Gi    1.5Gi       21%     Reported
  pg-2            3Gi         -        -           -       DiskStatusMissing

  Budget:
    Max Actions/Day:      5
    Used (24h):           0
    Available (Planned):  3
    Available (Emergency): 4
    Resets At:            -

  Next Maintenance Window: always open

Tablespace archive:
  Request:        1Gi
  Limit:          20Gi
  Target Buffer:  20%
  Effective Size: -
  State:          not reported yet

  Instance        PVC Size    Used     Available   Usage%
  pg-1            1Gi         -        -           -
  pg-2            1Gi         -        -           -

  Budget:
    Max Actions/Day:      4
    Used (24h):           -
    Available (Planned):  -
    Available (Emergency): -
    Resets At:            -

  Next Maintenance Window: always open
`;

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    kubectl = path.join(plane.binDir, 'kubectl');
    tmp = await mkdtemp(path.join(os.tmpdir(), 'status-plugin-'));
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    for (const [name, size] of [['pg', '8Gi'], ['plain', '10Gi']] as const) {
      await custom.createNamespacedCustomObject({
        ...clusters,
        body: {
          apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name },
          spec: { instances: 2, storage: { size }, walStorage: { size: '1Gi' }, tablespaces: [{ name: 'archive', storage: { size: '1Gi' } }] },
        },
      });
    }
    const claims: [string, string, string, string | undefined, string][] = [
      ['pg-1', 'pg-1', 'PG_DATA', undefined, '8Gi'], ['pg-2', 'pg-2', 'PG_DATA', undefined, '8Gi'],
      ['pg-1-wal', 'pg-1', 'PG_WAL', undefined, '2Gi'], ['pg-2-wal', 'pg-2', 'PG_WAL', undefined, '3Gi'],
      ['pg-1-tbs-archive', 'pg-1', 'PG_TABLESPACE', 'archive', '1Gi'], ['pg-2-tbs-archive', 'pg-2', 'PG_TABLESPACE', 'archive', '1Gi'],
      ['plain-1', 'plain-1', 'PG_DATA', undefined, '10Gi'],
    ];
    for (const [name, instance, role, tablespace, size] of claims) {
      await core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          metadata: {
            name,
            labels: {
              'cnpg.io/cluster': name.startsWith('plain') ? 'plain' : 'pg', 'cnpg.io/instanceName': instance, 'cnpg.io/pvcRole': role,
              ...(tablespace ? { 'cnpg.io/tablespaceName': tablespace } : {}),
            },
          },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      });
      // Play the volume binder: the claim is bound at its size.
      const claim = await core.readNamespacedPersistentVolumeClaim({ name, namespace });
      claim.status = { phase: 'Bound', capacity: { storage: size } };
      await core.replaceNamespacedPersistentVolumeClaimStatus({ name, namespace, body: claim });
    }
    await custom.createNamespacedCustomObject({
      ...ds,
      body: {
        apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg' },
        spec: {
          cluster: { name: 'pg' },
          storage: { request: '5Gi', limit: '50Gi', maintenanceWindow: { schedule, duration: '1h', timezone: 'UTC' } },
          walStorage: { request: '1Gi', limit: '8Gi', targetBuffer: 30, emergencyGrow: { maxActionsPerDay: 5 } },
          tablespaces: [{ name: 'archive', storage: { request: '1Gi', limit: '20Gi' } }],
        },
      },
    });
    await custom.createNamespacedCustomObject({
      ...ds,
      body: {
        apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'gone' },
        spec: { cluster: { name: 'gone' }, storage: { request: '5Gi', limit: '50Gi' } },
      },
    });
    await writeStatus('pg', pgStatus);
    await writeStatus('gone', {
      observedGeneration: 1,
      conditions: [{ type: 'Valid', status: 'False', reason: 'ClusterNotFound', message: 'spec.cluster.name: Not found: "gone": no CNPG Cluster of that name in namespace ns', lastTransitionTime: rfc3339(start) }],
    });
  });

  after(async function () {
    this.timeout(60_000);
    await plane.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  async function writeStatus(name: string, body: DynamicStorageStatus): Promise<void> {
    const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const object = await custom.getNamespacedCustomObject({ ...ds, name }) as DynamicStorage;
    await custom.replaceNamespacedCustomObjectStatus({ ...ds, name, body: { ...object, status: body } });
  }

  function status(...args: string[]): Promise<Result> {
    return runProcess(process.execPath, [path.join(repoRoot, 'plugin/main.ts'), 'status', ...args]);
  }

  it('prints every managed volume of the Cluster, read from the API server', async () => {
    const result = await status('pg', '-n', namespace, '--kubeconfig', plane.kubeconfigPath);
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, expected);
    assert.equal(result.code, 0);
  });

  it('answers as `kubectl cnpg storage` through kubectl\'s plugin mechanism', async () => {
    const env = { ...process.env, PATH: `${path.join(repoRoot, 'plugin')}${path.delimiter}${process.env.PATH ?? ''}` };
    const plugins = await runProcess(kubectl, ['plugin', 'list', '--name-only'], env);
    assert.ok(plugins.stdout.split('\n').includes('kubectl-cnpg-storage'), `kubectl finds the plugin:\n${plugins.stdout}${plugins.stderr}`);
    const result = await runProcess(kubectl, ['cnpg', 'storage', 'status', 'pg', '-n', namespace, '--kubeconfig', plane.kubeconfigPath], env);
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, expected);
    assert.equal(result.code, 0);
    const missing = await runProcess(kubectl, ['cnpg', 'storage', 'status', 'nothing', '-n', namespace, '--kubeconfig', plane.kubeconfigPath], env);
    assert.deepEqual(missing, { code: 1, stdout: '', stderr: 'kubectl cnpg storage status: Cluster "nothing" not found in namespace "ns", and no DynamicStorage names it\n' });
  });

  it('takes the namespace from the kubeconfig context, and --context picks the context', async () => {
    const kubeconfig = path.join(tmp, 'kubeconfig');
    await copyFile(plane.kubeconfigPath, kubeconfig);
    await execFileAsync(kubectl, ['--kubeconfig', kubeconfig, 'config', 'set-context', '--current', `--namespace=${namespace}`]);
    const { stdout: context } = await execFileAsync(kubectl, ['--kubeconfig', kubeconfig, 'config', 'current-context']);
    const result = await status('pg', '--kubeconfig', kubeconfig, '--context', context.trim());
    assert.equal(result.stdout, expected);
    const unknown = await status('pg', '--kubeconfig', kubeconfig, '--context', 'nope');
    assert.deepEqual(unknown, { code: 1, stdout: '', stderr: 'kubectl cnpg storage status: context "nope" not found in the kubeconfig\n' });
  });

  it('prints the same model as JSON', async () => {
    const result = await status('pg', '-n', namespace, '--kubeconfig', plane.kubeconfigPath, '-o', 'json');
    assert.equal(result.code, 0);
    const model = JSON.parse(result.stdout) as { cluster: unknown; volumes: { title: string; nextMaintenanceWindow: string | null; instances: { pvcSize: string | null }[] }[] };
    assert.deepEqual(model.cluster, { name: 'pg', namespace, found: true });
    assert.deepEqual(model.volumes.map((v) => v.title), ['Data Volume', 'WAL Volume', 'Tablespace archive']);
    assert.deepEqual(model.volumes.map((v) => v.nextMaintenanceWindow), [nextWindow, null, null]);
    assert.deepEqual(model.volumes.map((v) => v.instances.map((i) => i.pvcSize)), [['10Gi', '10Gi'], ['2Gi', '3Gi'], ['1Gi', '1Gi']]);
  });

  it('says Disabled for a Cluster without a DynamicStorage, and exits 0', async () => {
    const result = await status('plain', '-n', namespace, '--kubeconfig', plane.kubeconfigPath);
    assert.deepEqual(result, {
      code: 0, stderr: '',
      stdout: `Cluster: plain
Dynamic Sizing: Disabled

CloudNativePG keeps the sizes set in the Cluster (spec.storage.size: 10Gi).
To enable dynamic sizing, create a DynamicStorage in namespace "ns" with spec.cluster.name: plain
and a request and limit per volume (kubectl explain dynamicstorage.spec).
`,
    });
  });

  it('shows an invalid policy prominently, and exits 0', async () => {
    const result = await status('gone', '-n', namespace, '--kubeconfig', plane.kubeconfigPath);
    assert.deepEqual(result, {
      code: 0, stderr: '',
      stdout: `Cluster: gone
Dynamic Sizing: Enabled
DynamicStorage: ns/gone

!! Valid=False (ClusterNotFound): the policy is not valid; nothing is resized until it is fixed:
!!   spec.cluster.name: Not found: "gone": no CNPG Cluster of that name in namespace ns

Warning: Cluster "gone" not found in namespace "ns".

Data Volume:
  Request:        5Gi
  Limit:          50Gi
  Target Buffer:  20%
  Effective Size: -
  State:          not reported yet

  No volumes found for this role yet.

  Budget:
    Max Actions/Day:      4
    Used (24h):           -
    Available (Planned):  -
    Available (Emergency): -
    Resets At:            -

  Next Maintenance Window: always open
`,
    });
  });

  it('exits 1 with a clear message when the kubeconfig cannot be read or the API server cannot be reached', async () => {
    const result = await status('pg', '--kubeconfig', path.join(tmp, 'does-not-exist'));
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^kubectl cnpg storage status: cannot load the kubeconfig .*does-not-exist: .*ENOENT/);
    const unreachable = path.join(tmp, 'unreachable');
    await writeFile(unreachable, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${await freePort()}", insecure-skip-tls-verify: true}}]`,
      'users: [{name: u, user: {token: t}}]', 'contexts: [{name: c, context: {cluster: c, user: u}}]', '',
    ].join('\n'));
    const refused = await status('pg', '--kubeconfig', unreachable);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^kubectl cnpg storage status: cannot (list|read) .* in namespace "default": .*ECONNREFUSED.*\n$/);
  });
});

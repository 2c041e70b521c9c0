import assert from 'node:assert/strict';
import { resolveTargets, type Lookups } from '../../../agent/discovery.ts';
import { backoffDelay } from '../../../shared/backoff.ts';
import type { ObjectMeta, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod } from '../../../agent/kube/types.ts';

const root = '/var/lib/kubelet';

function pvc(name: string, role: string | undefined, extra: { tablespace?: string; volumeName?: string | null; mode?: string } = {}): PersistentVolumeClaim {
  const labels: Record<string, string> = { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': name.replace(/-(wal|tbs-.*)$/, '') };
  if (role) labels['cnpg.io/pvcRole'] = role;
  if (extra.tablespace) labels['cnpg.io/tablespaceName'] = extra.tablespace;
  const spec: NonNullable<PersistentVolumeClaim['spec']> = {};
  if (extra.volumeName !== null) spec.volumeName = extra.volumeName ?? `pv-${name}`;
  if (extra.mode) spec.volumeMode = extra.mode;
  return { metadata: { name, namespace: 'db', labels }, spec };
}

function pv(name: string, spec: PersistentVolumeSpec = { csi: { driver: 'disk.csi.azure.com', volumeHandle: 'h' } }): PersistentVolume {
  return { metadata: { name }, spec };
}

function pod(name: string, uid: string, volumes: [string, string][], extra: { node?: string; phase?: string; role?: string; deleting?: boolean; created?: string } = {}): Pod {
  const labels: Record<string, string> = { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': name };
  if (extra.role !== 'job') labels['cnpg.io/podRole'] = 'instance';
  const metadata: ObjectMeta = { name, namespace: 'db', uid, labels, creationTimestamp: extra.created ?? '2025-01-01T00:00:00Z' };
  if (extra.deleting) metadata.deletionTimestamp = '2025-01-02T00:00:00Z';
  return {
    metadata,
    spec: {
      nodeName: extra.node ?? 'node-a',
      volumes: [...volumes.map(([volume, claim]) => ({ name: volume, persistentVolumeClaim: { claimName: claim } })), { name: 'shm' }],
    },
    status: { phase: extra.phase ?? 'Running' },
  };
}

function lookups(pvcs: PersistentVolumeClaim[], pvs: PersistentVolume[]): Lookups {
  return {
    pvc: (ns, name) => pvcs.find((c) => c.metadata?.namespace === ns && c.metadata.name === name),
    pv: (name) => pvs.find((v) => v.metadata?.name === name),
  };
}

const claims = [
  pvc('pg-1', 'PG_DATA'), pvc('pg-1-wal', 'PG_WAL'), pvc('pg-1-tbs-my-space', 'PG_TABLESPACE', { tablespace: 'my_space' }),
];
const volumes = claims.map((c) => pv(c.spec?.volumeName ?? ''));
const instance = pod('pg-1', 'uid-1', [['pgdata', 'pg-1'], ['pg-wal', 'pg-1-wal'], ['tbs-my-space', 'pg-1-tbs-my-space']]);

describe('agent discovery mapping', () => {
  it('maps every volume of an instance to its kubelet CSI mount with CNPG identity', () => {
    const { targets, waiting, missingPvs } = resolveTargets([instance], lookups(claims, volumes), root, 'node-a');
    assert.deepEqual(waiting, []);
    assert.deepEqual(missingPvs, []);
    assert.deepEqual(targets, [
      {
        identity: {
          key: 'db/pg-1', namespace: 'db', cluster: 'pg', instance: 'pg-1', role: 'data', pvc: 'pg-1', pv: 'pv-pg-1',
          podName: 'pg-1', podUid: 'uid-1', node: 'node-a', path: '/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/pv-pg-1/mount',
        },
        requireMountPoint: true,
      },
      {
        identity: {
          key: 'db/pg-1-tbs-my-space', namespace: 'db', cluster: 'pg', instance: 'pg-1', role: 'tablespace', tablespace: 'my_space',
          pvc: 'pg-1-tbs-my-space', pv: 'pv-pg-1-tbs-my-space', podName: 'pg-1', podUid: 'uid-1', node: 'node-a',
          path: '/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/pv-pg-1-tbs-my-space/mount',
        },
        requireMountPoint: true,
      },
      {
        identity: {
          key: 'db/pg-1-wal', namespace: 'db', cluster: 'pg', instance: 'pg-1', role: 'wal', pvc: 'pg-1-wal', pv: 'pv-pg-1-wal',
          podName: 'pg-1', podUid: 'uid-1', node: 'node-a', path: '/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/pv-pg-1-wal/mount',
        },
        requireMountPoint: true,
      },
    ]);
  });

  it('ignores pods of other nodes and pods that finished', () => {
    const pods = [pod('pg-1', 'uid-1', [['pgdata', 'pg-1']], { node: 'node-b' }), pod('pg-1', 'uid-2', [['pgdata', 'pg-1']], { phase: 'Succeeded' })];
    assert.deepEqual(resolveTargets(pods, lookups(claims, volumes), root, 'node-a').targets, []);
  });

  it('falls back to the pod volume name for the role when the PVC has no role label', () => {
    const unlabelled = [pvc('pg-1', undefined), pvc('pg-1-wal', undefined), pvc('other', undefined)];
    const p = pod('pg-1', 'uid-1', [['pgdata', 'pg-1'], ['pg-wal', 'pg-1-wal'], ['scratch', 'other']]);
    const { targets } = resolveTargets([p], lookups(unlabelled, [pv('pv-pg-1'), pv('pv-pg-1-wal'), pv('pv-other')]), root, 'node-a');
    assert.deepEqual(targets.map((t) => [t.identity.pvc, t.identity.role]), [['pg-1', 'data'], ['pg-1-wal', 'wal']]);
  });

  it('says why a volume waits: PVC unknown, not bound, PV unknown (and asks for the PV)', () => {
    const p = pod('pg-1', 'uid-1', [['pgdata', 'pg-1'], ['pg-wal', 'pg-1-wal'], ['tbs-x', 'pg-1-tbs-x']]);
    const c = [pvc('pg-1', 'PG_DATA', { volumeName: null }), pvc('pg-1-wal', 'PG_WAL')];
    const result = resolveTargets([p], lookups(c, []), root, 'node-a');
    assert.deepEqual(result.targets, []);
    assert.deepEqual(result.waiting, [
      { pod: 'pg-1', pvc: 'pg-1', reason: 'PvcNotBound' },
      { pod: 'pg-1', pvc: 'pg-1-wal', reason: 'PvNotFound' },
      { pod: 'pg-1', pvc: 'pg-1-tbs-x', reason: 'PvcNotFound' },
    ]);
    assert.deepEqual(result.missingPvs, ['pv-pg-1-wal']);
  });

  it('reports block-mode and unsupported sources, places local and migrated in-tree volumes', () => {
    const c = [pvc('a', 'PG_DATA', { mode: 'Block' }), pvc('b', 'PG_DATA'), pvc('c', 'PG_DATA'), pvc('d', 'PG_DATA')];
    const pvs = [
      pv('pv-a'), pv('pv-b', { nfs: { server: 's', path: '/' } }), pv('pv-c', { local: { path: '/mnt/disk' } }),
      pv('pv-d', { awsElasticBlockStore: { volumeID: 'vol-1' } }),
    ];
    const pods = ['a', 'b', 'c', 'd'].map((n) => pod(n, `uid-${n}`, [['pgdata', n]]));
    const byPvc = new Map(resolveTargets(pods, lookups(c, pvs), root, 'node-a').targets.map((t) => [t.identity.pvc, t]));
    assert.deepEqual(byPvc.get('a')?.unsupported, { reason: 'BlockMode', message: 'PV pv-a is a raw block device: it has no filesystem to measure' });
    assert.deepEqual(byPvc.get('b')?.unsupported, { reason: 'UnsupportedVolumeSource', message: 'PV pv-b uses volume source nfs, which the agent cannot probe' });
    assert.equal(byPvc.get('c')?.identity.path, '/var/lib/kubelet/pods/uid-c/volumes/kubernetes.io~local-volume/pv-c');
    assert.equal(byPvc.get('c')?.requireMountPoint, false);
    assert.equal(byPvc.get('d')?.identity.path, '/var/lib/kubelet/pods/uid-d/volumes/kubernetes.io~csi/pv-d/mount');
    assert.equal(byPvc.get('d')?.unsupported, undefined);
  });

  it('picks one pod per PVC: the instance over a job, the live pod over a terminating one, then the newest', () => {
    const job = pod('pg-1-initdb', 'uid-job', [['pgdata', 'pg-1']], { role: 'job', created: '2025-01-03T00:00:00Z' });
    const old = pod('pg-1', 'uid-old', [['pgdata', 'pg-1']], { deleting: true, created: '2025-01-04T00:00:00Z' });
    const current = pod('pg-1', 'uid-new', [['pgdata', 'pg-1']], { created: '2025-01-02T00:00:00Z' });
    for (const order of [[job, old, current], [current, old, job], [old, current, job]]) {
      const { targets } = resolveTargets(order, lookups(claims, volumes), root, 'node-a');
      assert.deepEqual(targets.map((t) => t.identity.podUid), ['uid-new']);
    }
    const { targets } = resolveTargets([job], lookups(claims, volumes), root, 'node-a');
    assert.equal(targets[0]?.identity.instance, 'pg-1', 'a job pod still reports the instance the PVC belongs to');
  });

  it('backs off exponentially with jitter, capped', () => {
    const b = { initialMs: 500, maxMs: 30_000 };
    assert.equal(backoffDelay(b, 1, () => 0), 250);
    assert.equal(backoffDelay(b, 1, () => 1), 500);
    assert.equal(backoffDelay(b, 3, () => 1), 2000);
    assert.equal(backoffDelay(b, 20, () => 1), 30_000);
    assert.equal(backoffDelay(b, 20, () => 0), 15_000);
  });
});

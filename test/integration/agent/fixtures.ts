/**
 * Fixtures for the agent's integration tests: the shipped RBAC applied to a real control plane, CNPG-shaped pods, PVCs and
 * PVs created through the API, and a kubelet directory layout with a real tmpfs mounted per volume.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Creates every object of the given files under daemonset/. */
export async function applyManifests(kc: k8s.KubeConfig, files: string[]): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const file of files) {
    const text = await readFile(path.join(repoRoot, 'daemonset', file), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      const obj = doc.toJS() as k8s.KubernetesObject | null;
      if (obj) await client.create(obj);
    }
  }
}

export async function ensureNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } }).catch((err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  });
}

export async function ensureServiceAccount(core: k8s.CoreV1Api, namespace: string, name: string): Promise<void> {
  await ensureNamespace(core, namespace);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  });
}

/** A kubelet root in a `cnpg-ds-` temp dir with real tmpfs mounts at kubelet's CSI paths. */
export class KubeletLayout {
  readonly root: string;
  private readonly dir: string;
  private readonly mounted = new Set<string>();

  private constructor(dir: string) {
    this.dir = dir;
    this.root = path.join(dir, 'kubelet');
  }

  static async create(): Promise<KubeletLayout> {
    return new KubeletLayout(await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-agent-')));
  }

  csiPath(podUid: string, pvName: string): string {
    return path.join(this.root, 'pods', podUid, 'volumes', 'kubernetes.io~csi', pvName, 'mount');
  }

  async mount(podUid: string, pvName: string, sizeMiB: number, inodes = 1000): Promise<string> {
    const target = this.csiPath(podUid, pvName);
    await mkdir(target, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,nr_inodes=${inodes},mode=0755`, 'tmpfs', target]);
    this.mounted.add(target);
    return target;
  }

  async unmount(target: string): Promise<void> {
    await run('umount', ['-l', target]);
    this.mounted.delete(target);
  }

  async cleanup(): Promise<void> {
    for (const target of [...this.mounted]) await this.unmount(target).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface InstanceSpec {
  namespace: string;
  cluster: string;
  serial: number;
  node: string;
  wal?: boolean;
  tablespaces?: string[];
  /** Make the data volume a raw block device. */
  blockData?: boolean;
}

export interface CreatedVolume { pvc: string; pv: string; role: 'data' | 'wal' | 'tablespace'; tablespace?: string; block: boolean }
export interface CreatedInstance { name: string; podUid: string; node: string; volumes: CreatedVolume[] }

function convertTablespace(name: string): string {
  return name.replace(/_/g, '-').toLowerCase();
}

/** Creates PVs (CSI), bound PVCs labelled like CNPG's and the instance pod, scheduled on `node`. */
export async function createInstance(core: k8s.CoreV1Api, spec: InstanceSpec): Promise<CreatedInstance> {
  const name = `${spec.cluster}-${spec.serial}`;
  const volumes: CreatedVolume[] = [{ pvc: name, pv: '', role: 'data', block: spec.blockData === true }];
  if (spec.wal) volumes.push({ pvc: `${name}-wal`, pv: '', role: 'wal', block: false });
  for (const tbs of spec.tablespaces ?? []) volumes.push({ pvc: `${name}-tbs-${convertTablespace(tbs)}`, pv: '', role: 'tablespace', tablespace: tbs, block: false });
  const pvcRole = { data: 'PG_DATA', wal: 'PG_WAL', tablespace: 'PG_TABLESPACE' } as const;
  for (const v of volumes) {
    v.pv = `pvc-${spec.namespace}-${v.pvc}`;
    const volumeMode = v.block ? 'Block' : 'Filesystem';
    await core.createPersistentVolume({
      body: {
        metadata: { name: v.pv },
        spec: {
          capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Delete', storageClassName: '',
          volumeMode, csi: { driver: 'disk.csi.azure.com', volumeHandle: v.pv },
          claimRef: { namespace: spec.namespace, name: v.pvc },
        },
      },
    });
    const labels: Record<string, string> = { 'cnpg.io/cluster': spec.cluster, 'cnpg.io/instanceName': name, 'cnpg.io/pvcRole': pvcRole[v.role] };
    if (v.tablespace) labels['cnpg.io/tablespaceName'] = v.tablespace;
    await core.createNamespacedPersistentVolumeClaim({
      namespace: spec.namespace,
      body: {
        metadata: { name: v.pvc, labels, annotations: { 'cnpg.io/nodeSerial': String(spec.serial), 'cnpg.io/pvcStatus': 'ready' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: '', volumeName: v.pv, volumeMode },
      },
    });
  }
  const podVolumeName = (v: CreatedVolume): string => v.role === 'data' ? 'pgdata' : v.role === 'wal' ? 'pg-wal' : `tbs-${convertTablespace(v.tablespace ?? '')}`;
  const pod = await core.createNamespacedPod({
    namespace: spec.namespace,
    body: {
      metadata: {
        name, labels: {
          'cnpg.io/cluster': spec.cluster, 'cnpg.io/instanceName': name, 'cnpg.io/podRole': 'instance',
          'cnpg.io/instanceRole': spec.serial === 1 ? 'primary' : 'replica',
        },
      },
      spec: {
        nodeName: spec.node,
        containers: [{ name: 'postgres', image: 'ghcr.io/cloudnative-pg/postgresql:17' }],
        volumes: volumes.map((v) => ({ name: podVolumeName(v), persistentVolumeClaim: { claimName: v.pvc } })),
      },
    },
  });
  return { name, podUid: pod.metadata?.uid ?? '', node: spec.node, volumes };
}

export async function df(target: string): Promise<{ size: number; used: number; avail: number; pcent: number; itotal: number; iused: number; iavail: number; ipcent: number }> {
  const { stdout } = await run('df', ['-B1', '--output=size,used,avail,pcent,itotal,iused,iavail,ipcent', target]);
  const fields = (stdout.trim().split('\n')[1] ?? '').trim().split(/\s+/).map((f) => Number(f.replace('%', '')));
  const [size = NaN, used = NaN, avail = NaN, pcent = NaN, itotal = NaN, iused = NaN, iavail = NaN, ipcent = NaN] = fields;
  return { size, used, avail, pcent, itotal, iused, iavail, ipcent };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

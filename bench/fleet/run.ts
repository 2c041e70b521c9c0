/**
 * The controller at fleet scale, against the real control plane (test/harness/controlplane.ts): N CNPG Clusters (the
 * Cluster objects, their data and WAL PVCs, bound, and their pods on simulated nodes), one DynamicStorage each, one
 * agent pod per node, and the agents' change streams served from this process (bench/fleet/agents.ts). The controller
 * runs in its own process with its production settings (bench/fleet/controller-child.ts), compiled to JavaScript.
 *
 *   node bench/fleet/run.ts --clusters 60 [--instances 3] [--nodes 30] [--tablespaces 2 --tablespace-share 0.667]
 *                           [--idle-seconds 60] [--load-seconds 60] [--json <file>]
 *                           [--controller-root <another checkout, to measure its controller instead of this one's>]
 *
 * The issue's full size, 1,000 DynamicStorages, 3,000 instances, ~10,000 PVCs, 500 agents:
 *   node bench/fleet/run.ts --clusters 1000 --tablespaces 2 --tablespace-share 0.667
 *
 * Measures: API requests per minute by verb and resource while nothing changes (kube-apiserver's
 * apiserver_request_total, less what it counts with no controller running); the controller's RSS and CPU; the time
 * from a reading crossing the critical threshold to its PVC's patch while 1% of the volumes change every second; and
 * the time to a full pass over every DynamicStorage after a start and after a restart.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../test/harness/controlplane.ts';
import { applyCrds } from '../../test/harness/crds.ts';
import { freePort } from '../../test/harness/ports.ts';
import { parseQuantity } from '../../shared/quantity.ts';
import { startSimulatedAgents, type SimulatedAgents, type SimulatedVolume } from './agents.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GiB = 1024 ** 3;
const agentNamespace = 'cnpg-system';
const agentLabels = { 'app.kubernetes.io/name': 'cnpg-dynamic-storage-agent' };
const clustersPerNamespace = 20;

const { values: args } = parseArgs({
  options: {
    clusters: { type: 'string', default: '60' },
    instances: { type: 'string', default: '3' },
    nodes: { type: 'string' },
    tablespaces: { type: 'string', default: '0' },
    'tablespace-share': { type: 'string', default: '1' },
    'idle-seconds': { type: 'string', default: '60' },
    'load-seconds': { type: 'string', default: '60' },
    'controller-root': { type: 'string', default: repoRoot },
    json: { type: 'string' },
    /** Writes V8 CPU profiles of the controller (one per process) into this directory. */
    profile: { type: 'string' },
    /**
     * Node options of the controller process (default: those of Dockerfile.controller's ENTRYPOINT). Given more than once, the idle
     * figures are measured for each, one after the other on the same fleet; the load and the restart use the last.
     */
    'node-options': { type: 'string', multiple: true },
    /**
     * Runs the controller in a memory cgroup with this limit (MiB), as its Deployment's `resources.limits.memory` does
     * (Node sizes its heap from it): 256 as shipped. Root and cgroup v1 (this machine) only.
     */
    'memory-limit': { type: 'string' },
    /** Writes a V8 heap snapshot of the controller after the (last) idle window to this file. */
    'heap-snapshot': { type: 'string' },
  },
});
const clusters = Number(args.clusters);
const instances = Number(args.instances);
const nodes = Number(args.nodes ?? Math.max(3, Math.ceil((clusters * instances) / 6)));
const tablespaces = Number(args.tablespaces);
const tablespaceShare = Number(args['tablespace-share']);
/** Whether cluster i has the tablespaces: a share of the clusters, spread evenly. */
const hasTablespaces = (i: number): boolean => tablespaces > 0 && Math.floor((i + 1) * tablespaceShare) > Math.floor(i * tablespaceShare);
const idleMs = Number(args['idle-seconds']) * 1000;
const loadMs = Number(args['load-seconds']) * 1000;
const controllerRoot = path.resolve(args['controller-root']);

const log = (message: string): void => { process.stderr.write(`[${new Date().toISOString()}] ${message}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => { setTimeout(resolve, ms); });

async function pool<T>(items: readonly T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await run(item);
    }
  }));
}

/** Compiles the controller child of `root` to JavaScript under `<root>/.cache/bench-fleet` (as the image runs it). */
function compileChild(root: string): string {
  const outDir = path.join(root, '.cache', 'bench-fleet');
  mkdirSync(path.join(root, 'bench', 'fleet'), { recursive: true });
  const child = path.join(root, 'bench', 'fleet', 'controller-child.ts');
  if (!existsSync(child)) copyFileSync(path.join(repoRoot, 'bench', 'fleet', 'controller-child.ts'), child);
  mkdirSync(outDir, { recursive: true });
  const tsconfig = path.join(outDir, 'tsconfig.json');
  writeFileSync(tsconfig, JSON.stringify({
    extends: '../../tsconfig.json', compilerOptions: { noEmit: false, outDir: '.', rootDir: '../..', types: ['node'] },
    include: [], files: ['../../bench/fleet/controller-child.ts'],
  }));
  execFileSync(path.join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', tsconfig], { stdio: 'inherit' });
  return path.join(outDir, 'bench', 'fleet', 'controller-child.js');
}

/** GET with the admin's client certificate (kube-apiserver's /metrics). */
async function rawGet(kc: k8s.KubeConfig, url: string): Promise<string> {
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return await new Promise((resolve, reject) => {
    https.get(url, { ...opts, agent: undefined }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve(body); });
    }).on('error', reject);
  });
}

type Counts = Map<string, number>;

/** apiserver_request_total summed by verb and resource (with subresource). */
export function requestCounts(text: string): Counts {
  const counts: Counts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels: Record<string, string | undefined> = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
    const resource = `${labels.resource ?? ''}${labels.subresource ? `/${labels.subresource}` : ''}`;
    const key = `${labels.verb ?? ''} ${resource || '(non-resource)'}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

function perMinute(before: Counts, after: Counts, ms: number, baseline?: Map<string, number>): Map<string, number> {
  const rates = new Map<string, number>();
  for (const [key, value] of after) {
    const rate = ((value - (before.get(key) ?? 0)) * 60_000) / ms - (baseline?.get(key) ?? 0);
    if (rate > 0.5) rates.set(key, Math.round(rate));
  }
  return new Map([...rates].sort((a, b) => b[1] - a[1]));
}

function processStats(pid: number): { rssMiB: number; cpuTicks: number } {
  if (!existsSync(`/proc/${pid}`)) throw new Error(`the controller (pid ${pid}) is gone: it exited or was killed${memoryCgroup ? ' (see the memory cgroup line below)' : ''}`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return { rssMiB: rss, cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

async function reconcileCount(metricsPort: number): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return [...text.matchAll(/^cnpg_dynamic_storage_reconciles_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  } catch {
    return 0;
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

interface Fleet {
  volumes: SimulatedVolume[];
  dynamicStorages: number;
}

/** Clusters, their PVCs (bound, with capacity) and pods, one DynamicStorage each; agent pods, one per node. */
async function createFleet(plane: ControlPlane): Promise<Fleet> {
  const kc = plane.kubeConfig;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  await kc.makeApiClient(k8s.StorageV1Api).createStorageClass({ body: { metadata: { name: 'bench' }, provisioner: 'example.com/bench', allowVolumeExpansion: true } });
  const namespaces = [agentNamespace, ...Array.from({ length: Math.ceil(clusters / clustersPerNamespace) }, (_, i) => `fleet-${i}`)];
  for (const namespace of namespaces) {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
  }
  await pool(Array.from({ length: nodes }, (_, i) => `node-${i}`), 8, async (node) => {
    await core.createNamespacedPod({ namespace: agentNamespace, body: {
      metadata: { name: `agent-${node}`, labels: agentLabels }, spec: { nodeName: node, containers: [{ name: 'agent', image: 'agent' }] },
    } });
  });
  const volumes: SimulatedVolume[] = [];
  let created = 0;
  await pool(Array.from({ length: clusters }, (_, i) => i), 8, async (i) => {
    const namespace = `fleet-${Math.floor(i / clustersPerNamespace)}`;
    const name = `pg-${i}`;
    const spaces = hasTablespaces(i) ? Array.from({ length: tablespaces }, (_, t) => `tbs${t}`) : [];
    const cluster = await custom.createNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace, body: {
      apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name },
      spec: {
        instances, storage: { size: '10Gi', storageClass: 'bench' }, walStorage: { size: '2Gi', storageClass: 'bench' },
        ...(spaces.length > 0 ? { tablespaces: spaces.map((t) => ({ name: t, storage: { size: '4Gi', storageClass: 'bench' } })) } : {}),
      },
    } }) as k8s.KubernetesObject;
    const owner: k8s.V1OwnerReference = { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name, uid: cluster.metadata?.uid ?? '', controller: true };
    for (let n = 1; n <= instances; n += 1) {
      const instance = `${name}-${n}`;
      const node = `node-${(i * instances + n) % nodes}`;
      const members: { role: SimulatedVolume['role']; pvc: string; size: number; pgRole: string; volume: string; tablespace?: string }[] = [
        { role: 'data', pvc: instance, size: 10, pgRole: 'PG_DATA', volume: 'pgdata' },
        { role: 'wal', pvc: `${instance}-wal`, size: 2, pgRole: 'PG_WAL', volume: 'pg-wal' },
        ...spaces.map((t) => ({ role: 'tablespace' as const, pvc: `${instance}-tbs-${t}`, size: 4, pgRole: 'PG_TABLESPACE', volume: `tbs-${t}`, tablespace: t })),
      ];
      for (const { role, pvc, size, pgRole, tablespace } of members) {
        const labels: Record<string, string> = { 'cnpg.io/cluster': name, 'cnpg.io/instanceName': instance, 'cnpg.io/pvcRole': pgRole };
        if (tablespace !== undefined) labels['cnpg.io/tablespaceName'] = tablespace;
        const body: k8s.V1PersistentVolumeClaim = {
          metadata: { name: pvc, labels, annotations: { 'cnpg.io/pvcStatus': 'ready' }, ownerReferences: [owner] },
          spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'bench', resources: { requests: { storage: `${size}Gi` } } },
        };
        const made = await core.createNamespacedPersistentVolumeClaim({ namespace, body });
        await core.replaceNamespacedPersistentVolumeClaimStatus({ name: pvc, namespace, body: { metadata: made.metadata, spec: made.spec, status: { phase: 'Bound', capacity: { storage: `${size}Gi` } } } });
        const total = Math.round(size * GiB * 0.97);
        volumes.push({ namespace, cluster: name, instance, role, tablespace, pvc, node, totalBytes: total, usedBytes: Math.round(total * 0.4) });
      }
      await core.createNamespacedPod({ namespace, body: {
        metadata: { name: instance, labels: { 'cnpg.io/cluster': name, 'cnpg.io/instanceName': instance, 'cnpg.io/podRole': 'instance' }, ownerReferences: [owner] },
        spec: {
          nodeName: node, containers: [{ name: 'postgres', image: 'postgres' }],
          volumes: members.map((m) => ({ name: m.volume, persistentVolumeClaim: { claimName: m.pvc } })),
        },
      } });
    }
    await custom.createNamespacedCustomObject({ group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace, body: {
      apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name },
      spec: {
        cluster: { name }, storage: { request: '10Gi', limit: '100Gi' }, walStorage: { request: '2Gi', limit: '20Gi' },
        ...(spaces.length > 0 ? { tablespaces: spaces.map((t) => ({ name: t, storage: { request: '4Gi', limit: '40Gi' } })) } : {}),
      },
    } });
    created += 1;
    if (created % 100 === 0) log(`created ${created}/${clusters} clusters`);
  });
  return { volumes, dynamicStorages: clusters };
}

interface Running {
  child: ChildProcess;
  metricsPort: number;
  startedAt: number;
}

/** The Node options the controller's image runs it with: its Dockerfile's ENTRYPOINT, between `node` and the script. */
function shippedNodeOptions(root: string): string {
  const dockerfile = readFileSync(path.join(root, 'Dockerfile.controller'), 'utf8');
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  const argv = entrypoint === undefined ? [] : JSON.parse(entrypoint) as string[];
  return argv.filter((arg) => arg.startsWith('--')).join(' ');
}

/** glibc's malloc settings the image sets (`ENV MALLOC_...=...` lines of Dockerfile.controller). */
function shippedMallocEnvironment(root: string): Record<string, string> {
  const dockerfile = readFileSync(path.join(root, 'Dockerfile.controller'), 'utf8');
  return Object.fromEntries([...dockerfile.matchAll(/^ENV\s+(MALLOC_[A-Z_]+)=(\S+)\s*$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

/** The memory cgroup the controller runs in (`--memory-limit`), made once and removed at the end. */
const memoryCgroup = args['memory-limit'] === undefined ? undefined : `/sys/fs/cgroup/memory/cnpg-ds-bench-${process.pid}`;

function makeMemoryCgroup(): void {
  if (!memoryCgroup) return;
  mkdirSync(memoryCgroup);
  writeFileSync(path.join(memoryCgroup, 'memory.limit_in_bytes'), String(Number(args['memory-limit']) * 1024 * 1024));
}

function removeMemoryCgroup(): void {
  if (!memoryCgroup || !existsSync(memoryCgroup)) return;
  const oom = readFileSync(path.join(memoryCgroup, 'memory.oom_control'), 'utf8').match(/oom_kill (\d+)/)?.[1] ?? '0';
  const failcnt = readFileSync(path.join(memoryCgroup, 'memory.failcnt'), 'utf8').trim();
  log(`memory cgroup (limit ${args['memory-limit'] ?? ''} MiB): ${oom} OOM kills, limit reached ${failcnt} times`);
  rmdirSync(memoryCgroup);
}

async function startChild(script: string, plane: ControlPlane, agents: SimulatedAgents, nodeOptions: string): Promise<Running> {
  const metricsPort = await freePort();
  const options = { kubeconfig: plane.kubeconfigPath, agentsUrl: agents.url, agentNamespace, agentLabelSelector: 'app.kubernetes.io/name=cnpg-dynamic-storage-agent', metricsPort };
  const startedAt = performance.now();
  const execArgv = ['--expose-gc', ...nodeOptions.split(/\s+/).filter(Boolean), ...(args.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(args.profile)}`] : [])];
  const stdio: ['ignore', 'ignore', 'inherit', 'ipc'] = ['ignore', 'ignore', 'inherit', 'ipc'];
  const env = { ...process.env, ...shippedMallocEnvironment(controllerRoot) };
  // In the cgroup before Node starts, so that its heap is sized from the limit; the IPC channel survives the exec.
  const child = memoryCgroup
    ? spawn('/bin/sh', ['-c', `echo $$ > ${memoryCgroup}/cgroup.procs && exec "$@"`, 'sh', process.execPath, ...execArgv, script, JSON.stringify(options)], { cwd: path.dirname(script), stdio, env })
    : fork(script, [JSON.stringify(options)], { cwd: path.dirname(script), execArgv, stdio, env });
  return { child, metricsPort, startedAt };
}

/** The controller's memory as Node sees it, after a full GC (MiB). */
async function memoryOf(running: Running): Promise<Record<string, number>> {
  const answer = new Promise<Record<string, number>>((resolve) => {
    const onMessage = (message: { memory?: Record<string, number> }): void => {
      if (!message.memory) return;
      running.child.off('message', onMessage);
      resolve(Object.fromEntries(Object.entries(message.memory).map(([k, v]) => [k, Math.round(v / 1024 / 1024)])));
    };
    running.child.on('message', onMessage);
  });
  running.child.send({ memory: true });
  return await Promise.race([answer, sleep(10_000).then(() => ({}))]);
}

async function heapSnapshotOf(running: Running, file: string): Promise<string> {
  const answer = new Promise<string>((resolve) => {
    const onMessage = (message: { heapSnapshot?: string }): void => {
      if (!message.heapSnapshot) return;
      running.child.off('message', onMessage);
      resolve(message.heapSnapshot);
    };
    running.child.on('message', onMessage);
  });
  running.child.send({ heapSnapshot: file });
  return await Promise.race([answer, sleep(120_000).then(() => 'none (no answer in 2 minutes)')]);
}

async function stopChild(running: Running): Promise<void> {
  if (running.child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => { running.child.once('exit', () => { resolve(); }); });
  running.child.kill('SIGTERM');
  await Promise.race([exited, sleep(20_000)]);
  running.child.kill('SIGKILL');
}

/** Until the controller reconciled at least once per DynamicStorage; ms since its start. */
async function fullPass(running: Running, dynamicStorages: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await reconcileCount(running.metricsPort) >= dynamicStorages) return performance.now() - running.startedAt;
    await sleep(250);
  }
  return Number.NaN;
}

/** A steady window: API requests per minute, the controller's RSS (max of samples) and CPU. */
async function window(plane: ControlPlane, pid: number, ms: number, baseline: Map<string, number>, during?: () => Promise<void>): Promise<{ requests: Map<string, number>; rssMiB: number; rssEndMiB: number; cpuPercent: number }> {
  const metricsUrl = `${plane.server}/metrics`;
  const before = requestCounts(await rawGet(plane.kubeConfig, metricsUrl));
  const cpu0 = processStats(pid).cpuTicks;
  const started = performance.now();
  let rss = 0;
  const sampler = setInterval(() => {
    // A controller that died is reported once the window ends.
    if (existsSync(`/proc/${pid}`)) rss = Math.max(rss, processStats(pid).rssMiB);
  }, 2_000);
  try {
    if (during) await during();
    else await sleep(ms);
  } finally {
    clearInterval(sampler);
  }
  const elapsed = performance.now() - started;
  const after = requestCounts(await rawGet(plane.kubeConfig, metricsUrl));
  const cpu = ((processStats(pid).cpuTicks - cpu0) / ticksPerSecond) * 1000;
  const end = processStats(pid).rssMiB;
  rss = Math.max(rss, end);
  return { requests: perMinute(before, after, elapsed, baseline), rssMiB: Math.round(rss), rssEndMiB: Math.round(end), cpuPercent: Math.round((cpu / elapsed) * 1000) / 10 };
}

/**
 * 1% of the volumes change a little every second; one volume a second (a different one each time, all instances of
 * its cluster still healthy) crosses the critical threshold. Returns each crossing's time to its PVC's patch (ms).
 */
async function load(plane: ControlPlane, agents: SimulatedAgents, fleet: Fleet, ms: number): Promise<{ reactions: number[]; missed: number; actions: number }> {
  const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const pending = new Map<string, number>();
  const reactions: number[] = [];
  const requests = new Map<string, string>();
  const pvcs = k8s.makeInformer<k8s.V1PersistentVolumeClaim>(plane.kubeConfig, '/api/v1/persistentvolumeclaims', () => core.listPersistentVolumeClaimForAllNamespaces());
  const grown: k8s.V1PersistentVolumeClaim[] = [];
  pvcs.on('update', (pvc) => {
    const key = `${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.name ?? ''}`;
    const request = pvc.spec?.resources?.requests?.storage ?? '';
    if (requests.get(key) === request) return;
    requests.set(key, request);
    const sent = pending.get(key);
    if (sent !== undefined) {
      reactions.push(performance.now() - sent);
      pending.delete(key);
    }
    grown.push(pvc);
  });
  pvcs.on('add', (pvc) => { requests.set(`${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.name ?? ''}`, pvc.spec?.resources?.requests?.storage ?? ''); });
  await pvcs.start();
  // The resizer's and the kubelet's part: a grown PVC reports its new capacity, and its filesystem the new size (the
  // same bytes used).
  const resizer = setInterval(() => {
    for (const pvc of grown.splice(0)) {
      const request = pvc.spec?.resources?.requests?.storage ?? '';
      const key = `${pvc.metadata?.namespace ?? ''}/${pvc.metadata?.name ?? ''}`;
      const volume = agents.volume(key);
      if (volume) agents.set(key, { totalBytes: Math.round(parseQuantity(request) * 0.97), usedBytes: volume.usedBytes });
      void core.replaceNamespacedPersistentVolumeClaimStatus({ name: pvc.metadata?.name ?? '', namespace: pvc.metadata?.namespace ?? '', body: {
        // The whole metadata: a status replace also writes labels and annotations.
        metadata: { name: pvc.metadata?.name, namespace: pvc.metadata?.namespace, labels: pvc.metadata?.labels, annotations: pvc.metadata?.annotations, ownerReferences: pvc.metadata?.ownerReferences }, spec: pvc.spec, status: { phase: 'Bound', capacity: { storage: request } },
      } }).catch(() => undefined);
    }
  }, 500);
  const keys = fleet.volumes.map((v) => `${v.namespace}/${v.pvc}`);
  const crossed = new Set<string>();
  const clustersCrossed = new Set<string>();
  const started = performance.now();
  const loadStartedAt = new Date();
  let second = 0;
  while (performance.now() - started < ms) {
    second += 1;
    for (let i = 0; i < Math.max(1, Math.round(keys.length / 100)); i += 1) {
      const key = keys[Math.floor(Math.random() * keys.length)] ?? '';
      const volume = agents.volume(key);
      if (!volume || crossed.has(key)) continue;
      // A little: up to half a percent of the disk either way, kept between 30% and 60% used (no trend, no burst).
      const used = volume.usedBytes + volume.totalBytes * (Math.random() - 0.5) * 0.01;
      agents.set(key, { usedBytes: Math.round(Math.min(0.6 * volume.totalBytes, Math.max(0.3 * volume.totalBytes, used))) });
    }
    const candidate = fleet.volumes.find((v) => !clustersCrossed.has(v.cluster) && v.role === 'data' && v.instance.endsWith('-1') && Number(v.cluster.slice(3)) % 7 === second % 7);
    if (candidate) {
      const key = `${candidate.namespace}/${candidate.pvc}`;
      clustersCrossed.add(candidate.cluster);
      crossed.add(key);
      const sent = agents.set(key, { usedBytes: Math.round(candidate.totalBytes * 0.97) });
      if (sent !== undefined) pending.set(key, sent);
    }
    await sleep(Math.max(0, started + second * 1000 - performance.now()));
  }
  // A reaction slower than this counts as missed.
  await sleep(15_000);
  clearInterval(resizer);
  await pvcs.stop();
  // What the controller says about the volumes it did not grow.
  const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const unanswered: string[] = [];
  for (const key of pending.keys()) {
    const volume = agents.volume(key);
    if (!volume) continue;
    const object = await custom.getNamespacedCustomObject({ group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace: volume.namespace, name: volume.cluster }) as { status?: { storageSizing?: { data?: { state?: string; reason?: string; message?: string } } } };
    const data = object.status?.storageSizing?.data;
    unanswered.push(`${key}: ${data?.state ?? '?'} ${data?.reason ?? ''} ${data?.message ?? ''}`);
  }
  if (unanswered.length > 0) log(`not grown:\n  ${unanswered.join('\n  ')}`);
  const actions = await actionsSince(plane, loadStartedAt);
  log(`actions recorded during the load: ${actions.total} on ${actions.volumes.size} volumes (${crossed.size} crossings)`);
  for (const [volume, list] of [...actions.volumes].sort((a, b) => b[1].length - a[1].length).slice(0, 5)) log(`  ${volume}: ${list.join(' | ')}`);
  return { reactions, missed: pending.size, actions: actions.total };
}

/** Every sizing action the DynamicStorages recorded since `since`, per volume (`namespace/name role`). */
async function actionsSince(plane: ControlPlane, since: Date): Promise<{ total: number; volumes: Map<string, string[]> }> {
  const custom = plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  type Action = { kind?: string; from?: string; to?: string; timestamp?: string; result?: string; instance?: string };
  type Sizing = { recentActions?: Action[]; reason?: string };
  const list = await custom.listClusterCustomObject({ group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' }) as {
    items: { metadata?: { namespace?: string; name?: string }; status?: { storageSizing?: { data?: Sizing; wal?: Sizing; tablespaces?: Record<string, Sizing> } } }[];
  };
  const volumes = new Map<string, string[]>();
  let total = 0;
  for (const item of list.items) {
    const sizing = item.status?.storageSizing;
    const slots: [string, Sizing | undefined][] = [['data', sizing?.data], ['wal', sizing?.wal], ...Object.entries(sizing?.tablespaces ?? {}).map(([name, s]): [string, Sizing] => [`tablespace ${name}`, s])];
    for (const [role, slot] of slots) {
      const recent = (slot?.recentActions ?? []).filter((a) => a.timestamp !== undefined && new Date(a.timestamp) >= since);
      if (recent.length === 0) continue;
      total += recent.length;
      volumes.set(`${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''} ${role}`, recent.map((a) => `${a.timestamp ?? ''} ${a.kind ?? ''} ${a.from ?? ''}->${a.to ?? ''} ${a.result ?? ''}${a.instance ? ` (${a.instance})` : ''}`));
    }
  }
  return { total, volumes };
}

function table(requests: Map<string, number>): string {
  if (requests.size === 0) return '  (none)';
  return [...requests].map(([key, rate]) => `  ${key}: ${rate}/min`).join('\n');
}

async function main(): Promise<void> {
  log(`fleet: ${clusters} clusters x ${instances} instances, ${nodes} agents; controller from ${controllerRoot}`);
  const script = compileChild(controllerRoot);
  const plane = await startControlPlane({ controllerManager: false });
  let agents: SimulatedAgents | undefined;
  let running: Running | undefined;
  // Interrupted: the same clean-up as at the end (the controller, its cgroup, the control plane and its directory).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void (async () => {
        if (running) await stopChild(running);
        removeMemoryCgroup();
        await agents?.close();
        await plane.stop();
      })().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  try {
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
    const setupStarted = performance.now();
    const fleet = await createFleet(plane);
    log(`fleet created in ${Math.round((performance.now() - setupStarted) / 1000)} s: ${fleet.volumes.length} PVCs`);
    agents = await startSimulatedAgents(fleet.volumes);
    makeMemoryCgroup();

    // What kube-apiserver counts with no controller (its own leases, this script's scrapes): taken off the figures.
    const metricsUrl = `${plane.server}/metrics`;
    const b0 = requestCounts(await rawGet(plane.kubeConfig, metricsUrl));
    await sleep(20_000);
    const baseline = perMinute(b0, requestCounts(await rawGet(plane.kubeConfig, metricsUrl)), 20_000);

    const variants = args['node-options'] ?? [shippedNodeOptions(controllerRoot)];
    const idleByVariant: Record<string, unknown>[] = [];
    let firstPassMs = Number.NaN;
    let idle: Awaited<ReturnType<typeof window>> | undefined;
    let memory: Record<string, number> = {};
    for (const nodeOptions of variants) {
      if (running) await stopChild(running);
      running = await startChild(script, plane, agents, nodeOptions);
      firstPassMs = await fullPass(running, fleet.dynamicStorages, 600_000);
      log(`${nodeOptions ? `[${nodeOptions}] ` : ''}first full pass ${Math.round(firstPassMs)} ms; settling`);
      await sleep(45_000);
      idle = await window(plane, running.child.pid ?? 0, idleMs, baseline);
      memory = await memoryOf(running);
      if (args['heap-snapshot']) log(`heap snapshot: ${await heapSnapshotOf(running, path.resolve(args['heap-snapshot']))}`);
      log(`idle: ${JSON.stringify({ rssMiB: idle.rssMiB, rssEndMiB: idle.rssEndMiB, cpuPercent: idle.cpuPercent, afterGc: memory })}\n${table(idle.requests)}`);
      idleByVariant.push({ nodeOptions, firstPassMs: Math.round(firstPassMs), rssMiB: idle.rssMiB, rssEndMiB: idle.rssEndMiB, afterGcMiB: memory, cpuPercent: idle.cpuPercent });
    }
    if (!running || !idle) throw new Error('no controller ran');
    const pid = running.child.pid ?? 0;
    const nodeOptions = variants.at(-1) ?? '';

    let reaction: { reactions: number[]; missed: number; actions: number } = { reactions: [], missed: 0, actions: 0 };
    const busy = await window(plane, pid, loadMs, baseline, async () => { reaction = await load(plane, agents as SimulatedAgents, fleet, loadMs); });
    const p50 = percentile(reaction.reactions, 50);
    const p99 = percentile(reaction.reactions, 99);
    log(`load: ${reaction.reactions.length} crossings, missed ${reaction.missed}, p50 ${Math.round(p50)} ms, p99 ${Math.round(p99)} ms, max ${Math.round(Math.max(...reaction.reactions))} ms; rss ${busy.rssMiB} MiB, cpu ${busy.cpuPercent}%`);

    await stopChild(running);
    running = await startChild(script, plane, agents, nodeOptions);
    const restartPassMs = await fullPass(running, fleet.dynamicStorages, 600_000);
    log(`after a restart: full pass ${Math.round(restartPassMs)} ms`);

    const result = {
      clusters, instances, pvcs: fleet.volumes.length, nodes, controllerRoot,
      firstPassMs: Math.round(firstPassMs), restartPassMs: Math.round(restartPassMs),
      tablespaces: tablespaces > 0 ? { perCluster: tablespaces, share: tablespaceShare } : undefined,
      ...(variants.length > 1 ? { variants: idleByVariant } : {}), nodeOptions,
      idle: { rssMiB: idle.rssMiB, rssEndMiB: idle.rssEndMiB, afterGcMiB: memory, cpuPercent: idle.cpuPercent, requestsPerMinute: Object.fromEntries(idle.requests) },
      load: {
        rssMiB: busy.rssMiB, rssEndMiB: busy.rssEndMiB, cpuPercent: busy.cpuPercent, crossings: reaction.reactions.length, missed: reaction.missed, actions: reaction.actions,
        reactionP50Ms: Math.round(p50), reactionP99Ms: Math.round(p99), reactionMaxMs: Math.round(Math.max(...reaction.reactions)),
        requestsPerMinute: Object.fromEntries(busy.requests),
      },
      baselinePerMinute: Object.fromEntries(baseline),
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2) + '\n');
  } finally {
    if (running) await stopChild(running);
    removeMemoryCgroup();
    await agents?.close();
    await plane.stop();
  }
}

await main();

/**
 * `make demo`: the product running locally on its embedded default — a real control plane, three simulated AKS nodes
 * with real (tmpfs) volumes, the Azure Disk CSI and CloudNativePG stand-ins, one real agent per node and the real
 * controller — through a short scripted story: a volume filling outside the maintenance window waits for it, a WAL
 * volume nearly full grows at once, the window opens and the planned growth happens, a tablespace reaches its limit.
 *
 * Set DEMO_KEEP=1 to keep everything running at the end (Ctrl-C stops it). Product logs go to .cache/demo/demo.log.
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import type { DynamicStorage, VolumeSizingStatus } from '../shared/api/dynamicstorage.generated.ts';
import { createLogger } from '../shared/log.ts';
import { repoRoot, startLocalStack, type LocalStack } from '../test/stack/index.ts';
import type { VolumeTarget } from '../test/sim/index.ts';
import { windowAfter, type DemoWindow } from './demo-window.ts';

const run = promisify(execFile);
const namespace = 'demo';
const cluster = 'pg';
const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages', namespace };
const bold = (text: string): string => (process.stdout.isTTY ? `\u001b[1m${text}\u001b[0m` : text);

function say(text: string): void {
  console.log(`\n${bold(`==> ${text}`)}`);
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

const windowSpec = (w: DemoWindow): { schedule: string; duration: string; timezone: string } => ({ schedule: w.schedule, duration: w.duration, timezone: w.timezone });

function describeLastAction(s: VolumeSizingStatus): string {
  const last = s.lastAction;
  if (!last) return 'no action yet';
  return `last action: ${last.kind} ${last.from ?? '?'} -> ${last.to ?? '?'} at ${last.timestamp}: ${last.result ?? '?'}; ${s.recentActions?.length ?? 0} in the last 24 h`;
}

/** One or two lines per volume as `showStatus` prints them; `withActions` adds each volume's last action (for a failure). */
function volumeRows(status: DynamicStorage['status'], withActions = false): string[] {
  const sizing = status?.storageSizing;
  const volumes: [string, VolumeSizingStatus | undefined][] = [
    ['data', sizing?.data], ['wal', sizing?.wal],
    ...Object.entries(sizing?.tablespaces ?? {}).map(([name, s]): [string, VolumeSizingStatus] => [`tbs ${name}`, s]),
  ];
  const rows: string[] = [];
  for (const [label, s] of volumes) {
    if (!s) continue;
    const usage = Object.entries(s.instances ?? {}).map(([instance, i]) => `${instance} ${i.percentUsed ?? '?'}%`).join('  ');
    rows.push(`  ${label.padEnd(14)} ${String(s.state).padEnd(15)} size ${String(s.effectiveSize).padEnd(6)} target ${String(s.targetSize).padEnd(6)} budget ${s.budget?.availableForPlanned ?? '?'}/${s.budget?.availableForEmergency ?? '?'}  ${usage}`);
    if (s.message) rows.push(`  ${''.padEnd(14)} ${s.message}`);
    if (withActions && s.lastAction) rows.push(`  ${''.padEnd(14)} ${describeLastAction(s)}`);
  }
  return rows;
}

async function showStatus(custom: k8s.CustomObjectsApi): Promise<DynamicStorage> {
  const object = await custom.getNamespacedCustomObject({ ...dsApi, name: cluster }) as DynamicStorage;
  console.log(`  ${'volume'.padEnd(14)} ${'state'.padEnd(15)} (budget: planned/emergency actions left today)`);
  for (const row of volumeRows(object.status)) console.log(row);
  return object;
}

async function waitFor(custom: k8s.CustomObjectsApi, what: string, done: (status: DynamicStorage['status']) => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const object = await custom.getNamespacedCustomObject({ ...dsApi, name: cluster }) as DynamicStorage;
    if (done(object.status)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the status was:\n${volumeRows(object.status, true).join('\n')}`);
    await sleep(200);
  }
}

/** The volume is in one of `states` with no resize in flight. */
function settledIn(volume: VolumeSizingStatus | undefined, states: string[]): boolean {
  return volume?.state !== undefined && states.includes(volume.state) && volume.lastAction?.result !== 'Pending';
}

async function story(stack: LocalStack): Promise<void> {
  const custom = stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const core = stack.plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const { sim } = stack;

  say(`A CloudNativePG Cluster "${cluster}": 3 instances, data, WAL and a tablespace "analytics", 64Mi each (StorageClass managed-csi-mib)`);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await sim.cnpg.createCluster(namespace, cluster, {
    instances: 3,
    storage: { size: '64Mi', storageClass: 'managed-csi-mib' },
    walStorage: { size: '64Mi', storageClass: 'managed-csi-mib' },
    tablespaces: [{ name: 'analytics', storage: { size: '64Mi', storageClass: 'managed-csi-mib' } }],
  });
  await sim.cnpg.waitForReady(namespace, cluster, 120_000);
  for (const pvc of sim.cnpg.clusterPvcs(namespace, cluster)) {
    console.log(`  PVC ${pvc.metadata?.name ?? ''} (${pvc.metadata?.labels?.['cnpg.io/pvcRole'] ?? ''}) ${pvc.spec?.resources?.requests?.storage ?? ''}`);
  }

  // Until the story needs it, the data window is hours away; it is set to open soon right before the data volume fills,
  // so that the growth is seen waiting however long the steps before took.
  const later = windowAfter(new Date(), 6 * 60 * 60_000);
  say('A DynamicStorage policy beside it: data 64Mi..512Mi with a daily maintenance window; WAL 64Mi..256Mi and the tablespace 64Mi..96Mi, always open');
  const small = { emergencyGrow: { criticalMinimumFree: '4Mi' }, growth: { minimumStep: '8Mi' } };
  await custom.createNamespacedCustomObject({ ...dsApi, body: {
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: cluster },
    spec: {
      cluster: { name: cluster },
      storage: { request: '64Mi', limit: '512Mi', targetBuffer: 20, ...small, maintenanceWindow: windowSpec(later) },
      walStorage: { request: '64Mi', limit: '256Mi', ...small },
      tablespaces: [{ name: 'analytics', storage: { request: '64Mi', limit: '96Mi', ...small } }],
    },
  } });
  await waitFor(custom, 'the first report', (s) => settledIn(s?.storageSizing?.data, ['Balanced']), 30_000);
  await showStatus(custom);

  const window = windowAfter(new Date(), 45_000);
  say(`The data volume's maintenance window moves to ${window.opensAt.toISOString()} (cron "${window.schedule}" UTC, 10 minutes)`);
  await custom.patchNamespacedCustomObject({ ...dsApi, name: cluster, body: { spec: { storage: { maintenanceWindow: windowSpec(window) } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));

  const data: VolumeTarget = { namespace, instance: `${cluster}-1`, volume: 'data' };
  say(`Writing into ${cluster}-1's data volume up to 90%: below the 20% buffer, not critical -> the growth waits for the window`);
  await sim.workload.fill(data, { percent: 90 });
  await waitFor(custom, 'PendingGrowth', (s) => settledIn(s?.storageSizing?.data, ['PendingGrowth']), 30_000);
  await showStatus(custom);

  const wal: VolumeTarget = { namespace, instance: `${cluster}-2`, volume: 'wal' };
  say(`Writing into ${cluster}-2's WAL volume up to 97%: critical -> every WAL volume grows now, window or not`);
  const walStarted = Date.now();
  await sim.workload.fill(wal, { percent: 97 });
  await waitFor(custom, 'the WAL emergency grow', (s) => s?.storageSizing?.wal?.lastAction?.result === 'Success' && settledIn(s.storageSizing.wal, ['Balanced']), 60_000);
  console.log(`  (from the write to every WAL volume grown and reported: ${((Date.now() - walStarted) / 1000).toFixed(1)} s)`);
  await showStatus(custom);

  say(`Waiting for the maintenance window at ${window.opensAt.toISOString()}; the pending data growth runs then`);
  await waitFor(custom, 'the scheduled grow', (s) => s?.storageSizing?.data?.lastAction?.kind === 'ScheduledGrow' && settledIn(s.storageSizing.data, ['Balanced']), 180_000);
  await showStatus(custom);

  await tablespaceToLimit(custom, stack);
  await showEvents(core);
  await showMetrics(stack);
  await showPlugin(stack);
}

/** What an operator would type: the real kubectl, finding the plugin on PATH. */
async function showPlugin(stack: LocalStack): Promise<void> {
  say(`kubectl cnpg storage status ${cluster} -n ${namespace}`);
  const kubectl = path.join(stack.plane.binDir, 'kubectl');
  // kubectl refuses flags before a plugin name: the kubeconfig goes through the environment.
  const env = { ...process.env, KUBECONFIG: stack.plane.kubeconfigPath, PATH: `${path.join(repoRoot, 'plugin')}:${process.env.PATH ?? ''}` };
  const { stdout } = await run(kubectl, ['cnpg', 'storage', 'status', cluster, '-n', namespace], { env });
  console.log(stdout.replace(/^/gm, '  ').trimEnd());
}

async function tablespaceToLimit(custom: k8s.CustomObjectsApi, stack: LocalStack): Promise<void> {
  const tbs: VolumeTarget = { namespace, instance: `${cluster}-3`, volume: { tablespace: 'analytics' } };
  say('Filling the "analytics" tablespace on pg-3 again and again: each emergency grows it one step, until its 96Mi limit; then it has nowhere to go');
  const analytics = (s: DynamicStorage['status']): VolumeSizingStatus | undefined => s?.storageSizing?.tablespaces?.analytics;
  for (let round = 1; round <= 4; round += 1) {
    const before = (await custom.getNamespacedCustomObject({ ...dsApi, name: cluster }) as DynamicStorage).status;
    const actions = analytics(before)?.recentActions?.length ?? 0;
    await stack.sim.workload.fill(tbs, { percent: 97 });
    await waitFor(custom, 'the tablespace to react', (s) => {
      const volume = analytics(s);
      if (volume?.state === 'Emergency' && volume.reason === 'EmergencyAtLimit') return true;
      return (volume?.recentActions?.length ?? 0) > actions && settledIn(volume, ['Balanced', 'AtLimit']);
    }, 60_000);
    const volume = analytics((await custom.getNamespacedCustomObject({ ...dsApi, name: cluster }) as DynamicStorage).status);
    console.log(`  round ${round}: ${volume?.state ?? ''} at ${volume?.effectiveSize ?? ''}: ${volume?.message ?? ''}`);
    if (volume?.state === 'Emergency') break;
  }
  await showStatus(custom);

}

async function showEvents(core: k8s.CoreV1Api): Promise<void> {
  say(`Events on the Cluster (kubectl describe cluster ${cluster})`);
  const events = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Cluster,involvedObject.name=${cluster}` });
  for (const e of events.items.sort((a, b) => String(a.firstTimestamp).localeCompare(String(b.firstTimestamp)))) {
    console.log(`  ${String(e.type).padEnd(8)}${String(e.reason).padEnd(26)}${e.message ?? ''}`);
  }
}

async function showMetrics(stack: LocalStack): Promise<void> {
  say('Controller metrics (cnpg_dynamic_storage_*), WAL volume');
  const address = stack.controller.address;
  if (!address) return;
  const text = await (await fetch(`http://${address.host}:${address.port}/metrics`, { headers: { authorization: `Bearer ${await stack.metricsToken()}` } })).text();
  for (const line of text.split('\n').filter((l) => l.startsWith('cnpg_dynamic_storage_') && l.includes('volume_type="wal"') && !l.includes('state="'))) console.log(`  ${line}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('make demo mounts real tmpfs volumes and needs root (these machines run as root).');
    process.exit(1);
  }
  const logDir = path.join(repoRoot, '.cache', 'demo');
  await mkdir(logDir, { recursive: true });
  const logFile = path.join(logDir, 'demo.log');
  const logStream = createWriteStream(logFile, { flags: 'w' });
  const log = createLogger({}, { sink: (line) => logStream.write(line + '\n') });

  say('Starting a local control plane, 3 simulated AKS nodes, one agent per node and the controller');
  const started = Date.now();
  const stack = await startLocalStack({ nodes: 3, log, controller: { resyncMs: 5_000 } });
  console.log(`  up in ${((Date.now() - started) / 1000).toFixed(1)} s: kube-apiserver ${stack.plane.versions.kubernetes}, etcd ${stack.plane.versions.etcd}; product logs: ${logFile}`);
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('Stopping everything (processes, mounts, temp dirs)');
    await stack.stop();
    logStream.end();
    process.exit(code);
  };
  process.on('SIGINT', () => { void stop(130); });
  process.on('SIGTERM', () => { void stop(143); });
  try {
    await story(stack);
  } catch (err) {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
    return;
  }
  if (process.env.DEMO_KEEP === '1') {
    say(`Still running. kubectl --kubeconfig ${stack.plane.kubeconfigPath} get dynamicstorage -n ${namespace}   (Ctrl-C to stop)`);
    return;
  }
  await stop(0);
}

await main();

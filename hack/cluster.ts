/**
 * `make cluster-up` / `make cluster-down`: a local control plane for people, running in the background.
 *   node hack/cluster.ts up     starts it (if not running) and prints the kubeconfig path
 *   node hack/cluster.ts down   stops it and waits until nothing is left
 *   node hack/cluster.ts serve  (internal) the background process that owns the control plane
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../test/harness/controlplane.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = path.join(repoRoot, '.cache', 'cluster');
const statePath = path.join(stateDir, 'state.json');
const kubeconfigPath = path.join(stateDir, 'kubeconfig');
const logPath = path.join(stateDir, 'cluster.log');

interface ClusterState {
  pid: number;
  kubeconfig: string;
  server: string;
  versions: { kubernetes: string; etcd: string };
}

async function readState(): Promise<ClusterState | undefined> {
  try {
    return JSON.parse(await readFile(statePath, 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function up(): Promise<void> {
  const existing = await readState();
  if (existing && alive(existing.pid)) {
    console.log(existing.kubeconfig);
    return;
  }
  await mkdir(stateDir, { recursive: true });
  await rm(statePath, { force: true });
  const log = openSync(logPath, 'w');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'serve'], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const deadline = Date.now() + 180_000;
  for (;;) {
    const state = await readState();
    if (state) {
      console.error(`control plane up: kube-apiserver ${state.versions.kubernetes}, etcd ${state.versions.etcd} at ${state.server}`);
      console.error(`try: kubectl --kubeconfig ${state.kubeconfig} get ns   (stop with: make cluster-down)`);
      console.log(state.kubeconfig);
      return;
    }
    if (child.pid === undefined || !alive(child.pid) || Date.now() > deadline) {
      throw new Error(`control plane did not start; see ${logPath}:\n${await readFile(logPath, 'utf8')}`);
    }
    await sleep(250);
  }
}

async function down(): Promise<void> {
  const state = await readState();
  if (!state || !alive(state.pid)) {
    await rm(statePath, { force: true });
    console.error('no local control plane is running');
    return;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 60_000;
  while (alive(state.pid)) {
    if (Date.now() > deadline) throw new Error(`control plane process ${state.pid} did not stop`);
    await sleep(200);
  }
  await rm(statePath, { force: true });
  await rm(kubeconfigPath, { force: true });
  console.error('control plane stopped');
}

async function serve(): Promise<void> {
  let stopping = false;
  const plane = await startControlPlane();
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    void plane.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await copyFile(plane.kubeconfigPath, kubeconfigPath);
  const state: ClusterState = { pid: process.pid, kubeconfig: kubeconfigPath, server: plane.server, versions: plane.versions };
  await writeFile(statePath, JSON.stringify(state, null, 2));
  console.log(`serving ${plane.server}`);
  // Stay alive until a signal arrives.
  setInterval(() => undefined, 1 << 30);
}

const command = process.argv[2];
const actions: Record<string, () => Promise<void>> = { up, down, serve };
const action = command === undefined ? undefined : actions[command];
if (!action) {
  console.error('usage: node hack/cluster.ts up|down');
  process.exit(2);
}
await action();

/**
 * The real test stack (hack/node/stack.sh) for tests: a control plane and one real node with kubelet, containerd, CNI,
 * CoreDNS, the test CSI driver and our images. The root hooks (`realStackHooks`) bring it up for a test run when it is not
 * up already and take it down again afterwards (a stack that was up before is left running), also when a test failed.
 */
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { eventually } from '../harness/eventually.ts';

const run = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stackScript = path.join(repoRoot, 'hack/node/stack.sh');

export interface StackSettings {
  STACK_DIR: string;
  KUBECONFIG_PATH: string;
  NODE_NAME: string;
  NODE_IP: string;
  CONTAINERD_SOCK: string;
  KUBELET_ROOT: string;
  [key: string]: string;
}

export interface RealStack {
  readonly settings: StackSettings;
  readonly kubeConfig: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  /** Whether this process started the stack (and so takes it down). */
  readonly owned: boolean;
  /** The stack's kubectl (built with the control plane). */
  readonly kubectlBinary: string;
  /** kubectl against the stack; stdin from `input`. Rejects with kubectl's stderr on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<string>;
}

async function stackSettings(): Promise<StackSettings> {
  const { stdout } = await run(stackScript, ['env']);
  const settings: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) settings[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return settings as StackSettings;
}

async function kubectlPath(): Promise<string> {
  const { stdout } = await run(path.join(repoRoot, 'hack/controlplane/build.sh'), [], { maxBuffer: 16 * 1024 * 1024 });
  return path.join(stdout.trim().split('\n').pop() ?? '', 'kubectl');
}

/** Runs the stack script with its output on this process's stderr (a cold start builds for minutes). */
function stackCommand(command: 'up' | 'down' | 'status', quiet = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(stackScript, [command], { stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'ignore' : 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => { resolve(code ?? 1); });
  });
}

export async function startRealStack(): Promise<RealStack> {
  const wasUp = (await stackCommand('status', true)) === 0;
  if (!wasUp && (await stackCommand('up')) !== 0) {
    await stackCommand('down', true);
    throw new Error('hack/node/stack.sh up failed (its logs: /var/lib/cnpg-ds-stack/logs, removed again by down)');
  }
  const settings = await stackSettings();
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromString(await readFile(settings.KUBECONFIG_PATH, 'utf8'));
  const kubectlBinary = await kubectlPath();
  const kubectl = (args: string[], input?: string): Promise<string> => new Promise((resolve, reject) => {
    const child = spawn(kubectlBinary, ['--kubeconfig', settings.KUBECONFIG_PATH, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`kubectl ${args.join(' ')}: exit ${code}: ${err.trim()}`));
    });
    child.stdin.end(input ?? '');
  });
  return { settings, kubeConfig, core: kubeConfig.makeApiClient(k8s.CoreV1Api), owned: !wasUp, kubectl, kubectlBinary };
}

/** Takes the stack down when this process started it (set STACK_KEEP=1 to keep it for a look afterwards). */
export async function stopRealStack(stack: RealStack | undefined): Promise<void> {
  if (!stack?.owned || process.env.STACK_KEEP === '1') return;
  if ((await stackCommand('down')) !== 0) throw new Error('hack/node/stack.sh down failed');
}

let shared: RealStack | undefined;

/**
 * Mocha root hooks (test/.mocharc.node.json requires test/node/hooks.ts): one stack for the whole run, up before the
 * first test file (when not up already), down after the last (when this run brought it up), also after failures.
 */
export const realStackHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    // A cold machine builds the control plane, the node, the CSI driver and the images first.
    this.timeout(60 * 60_000);
    shared = await startRealStack();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(180_000);
    await stopRealStack(shared);
    shared = undefined;
  },
};

/** The running stack, for tests (started by the root hooks). */
export function useRealStack(): () => RealStack {
  return () => {
    if (!shared) throw new Error('the real stack is not running (run with --config test/.mocharc.node.json)');
    return shared;
  };
}

/** A namespace the returned function deletes again (and waits until it is gone). */
export async function createNamespace(stack: RealStack, prefix: string): Promise<{ name: string; remove: () => Promise<void> }> {
  const created = await stack.core.createNamespace({ body: { metadata: { generateName: `${prefix}-` } } });
  const name = created.metadata?.name ?? '';
  return {
    name,
    remove: async () => {
      await stack.kubectl(['delete', 'namespace', name, '--ignore-not-found', '--wait=true', '--timeout=120s']);
    },
  };
}

export async function waitForPodReady(stack: RealStack, namespace: string, name: string, timeoutMs = 120_000): Promise<k8s.V1Pod> {
  return eventually(async () => {
    const pod = await stack.core.readNamespacedPod({ namespace, name });
    const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    if (!ready) throw new Error(`pod ${namespace}/${name} not Ready: ${pod.status?.phase ?? ''} ${JSON.stringify(pod.status?.containerStatuses?.map((s) => s.state) ?? [])}`);
    return pod;
  }, { timeoutMs, intervalMs: 500 });
}

/** Runs a command in a pod's container (kubectl exec) and returns its output. */
export function execInPod(stack: RealStack, namespace: string, pod: string, command: string[]): Promise<string> {
  return stack.kubectl(['exec', '-n', namespace, pod, '--', ...command]);
}

export interface DfUsage {
  totalBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/** `df` inside the pod: POSIX output in 1-byte blocks. */
export async function dfInPod(stack: RealStack, namespace: string, pod: string, mountPath: string): Promise<DfUsage> {
  const out = await execInPod(stack, namespace, pod, ['df', '-P', '-B1', mountPath]);
  const fields = out.trim().split('\n').pop()?.trim().split(/\s+/) ?? [];
  const [total, used, available] = [fields[1], fields[2], fields[3]].map((f) => Number(f));
  if (total === undefined || used === undefined || available === undefined || [total, used, available].some((n) => !Number.isFinite(n))) {
    throw new Error(`unexpected df output: ${out}`);
  }
  return { totalBytes: total, usedBytes: used, availableBytes: available };
}

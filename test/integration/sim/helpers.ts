/** Shared setup for the simulation's integration tests: one control plane per file, one simulation per test. */
import type * as k8s from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { consoleLogger, startSimulation, type Simulation, type SimulationOptions } from '../../sim/index.ts';
import { mergePatch, waitUntil } from '../../sim/kube.ts';

export interface SimFixture {
  controlPlane: ControlPlane;
  sim: Simulation;
}

/**
 * Registers mocha hooks: a control plane for the file, a fresh simulation (and namespace) for each test, torn down
 * after each test, also when it failed.
 */
export function useSimulation(options: Omit<SimulationOptions, 'controlPlane'> = {}): { readonly cp: ControlPlane; readonly sim: Simulation; readonly namespace: string } {
  let controlPlane: ControlPlane | undefined;
  let sim: Simulation | undefined;
  let namespace = '';
  before(async function () {
    this.timeout(180_000);
    controlPlane = await startControlPlane();
  });
  after(async function () {
    this.timeout(60_000);
    await controlPlane?.stop();
  });
  beforeEach(async function () {
    this.timeout(60_000);
    if (!controlPlane) throw new Error('control plane not started');
    // SIM_LOG=1 prints what the stand-ins do
    sim = await startSimulation({ controlPlane, ...(process.env.SIM_LOG ? { log: consoleLogger() } : {}), ...options });
    namespace = await sim.createNamespace('t');
  });
  afterEach(async function () {
    this.timeout(90_000);
    // A test that failed before stopping its recorders must not leave their polling loops running.
    await Promise.all([...activeRecorders].map((recorder) => recorder.stop()));
    await sim?.stop();
    sim = undefined;
  });
  return {
    get cp() { if (!controlPlane) throw new Error('no control plane'); return controlPlane; },
    get sim() { if (!sim) throw new Error('no simulation'); return sim; },
    get namespace() { return namespace; },
  };
}

export async function createPvc(sim: Simulation, namespace: string, name: string, size: string, storageClass = 'managed-csi-mib'): Promise<k8s.V1PersistentVolumeClaim> {
  return sim.clients.core.createNamespacedPersistentVolumeClaim({ namespace, body: {
    metadata: { name, namespace },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: size } } },
  } });
}

export async function createPod(sim: Simulation, namespace: string, name: string, claims: string[]): Promise<k8s.V1Pod> {
  return sim.clients.core.createNamespacedPod({ namespace, body: {
    metadata: { name, namespace },
    spec: {
      terminationGracePeriodSeconds: 30,
      containers: [{ name: 'app', image: 'busybox:1.36', volumeMounts: claims.map((c) => ({ name: c, mountPath: `/data/${c}` })) }],
      volumes: claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: c } })),
    },
  } });
}

export async function readPvc(sim: Simulation, namespace: string, name: string): Promise<k8s.V1PersistentVolumeClaim> {
  return sim.clients.core.readNamespacedPersistentVolumeClaim({ name, namespace });
}

export async function waitForRunning(sim: Simulation, namespace: string, name: string, timeoutMs = 30_000): Promise<k8s.V1Pod> {
  return waitUntil(`pod ${namespace}/${name} to run`, async () => {
    const pod = await sim.clients.core.readNamespacedPod({ name, namespace });
    return pod.status?.phase === 'Running' ? pod : undefined;
  }, timeoutMs);
}

export async function resizePvc(sim: Simulation, namespace: string, name: string, size: string): Promise<k8s.V1PersistentVolumeClaim> {
  return sim.clients.core.patchNamespacedPersistentVolumeClaim({ name, namespace, body: { spec: { resources: { requests: { storage: size } } } } }, mergePatch);
}

/** A compact view of a PVC's resize state, for recording sequences. */
export function resizeView(pvc: k8s.V1PersistentVolumeClaim): string {
  const status = pvc.status?.allocatedResourceStatuses?.storage ?? '-';
  const conditions = (pvc.status?.conditions ?? []).filter((c) => c.status === 'True').map((c) => c.type).sort().join('+') || '-';
  return `${status}|${conditions}|${pvc.status?.capacity?.storage ?? '-'}`;
}

/** Records every distinct resize view of a PVC (through a watch-like poll) until stopped. */
export function recordResizeViews(sim: Simulation, namespace: string, name: string, intervalMs = 5): { stop(): Promise<string[]> } {
  const views: string[] = [];
  const state = { running: true };
  const record = async (): Promise<void> => {
    const pvc = await readPvc(sim, namespace, name).catch(() => undefined);
    if (pvc) {
      const view = resizeView(pvc);
      if (views.at(-1) !== view) views.push(view);
    }
  };
  const loop = (async () => {
    while (state.running) {
      await record();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  // A last reading once the loop is done: the loop's read in flight when stop() is called may predate what the caller
  // has just seen (a busy machine was seen to leave the final view out).
  const recorder = { stop: async () => { state.running = false; activeRecorders.delete(recorder); await loop; await record(); return views; } };
  activeRecorders.add(recorder);
  return recorder;
}

const activeRecorders = new Set<{ stop(): Promise<string[]> }>();

/**
 * The whole product running locally: a real control plane, the AKS stand-in (simulated nodes with tmpfs volumes, the
 * Azure Disk CSI stand-in, the CloudNativePG stand-in), one real agent per simulated node and the real controller.
 * Used by the end-to-end tests and by `make demo`.
 *
 * The agents run in this process but are reached exactly as in a cluster: each has an agent Pod on its node (the
 * simulated kubelet gives it a loopback pod IP), listens on that IP, authenticates callers with TokenReview and
 * SubjectAccessReview, and the controller finds it through the Pod list and its shipped RBAC.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { RunningAgent } from '../../agent/agent.ts';
import { startAgentOnKubeConfig } from '../harness/agent-kube.ts';
import { startController, type ControllerConfig, type RunningController } from '../../controller/controller.ts';
import { agentAudience } from '../../controller/agent-token.ts';
import { ensureAgentTls, type AgentTlsSecret } from '../../controller/agent-tls.ts';
import { allocationUnitAnnotation } from '../../controller/resolve.ts';
import { type Logger } from '../../shared/log.ts';
import { silentLogger } from '../harness/log.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';
import { applyCrds } from '../harness/crds.ts';
import { eventually } from '../harness/eventually.ts';
import { freePort } from '../harness/ports.ts';
import { startSimulation, type Simulation, type SimulationOptions } from '../sim/index.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const systemNamespace = 'cnpg-system';
export const agentLabels = { 'app.kubernetes.io/name': 'cnpg-dynamic-storage-agent', 'app.kubernetes.io/part-of': 'cnpg-dynamic-storage' };
const controllerServiceAccount = 'cnpg-dynamic-storage-controller';
const agentServiceAccount = 'cnpg-dynamic-storage-agent';
const agentDaemonSet = 'cnpg-dynamic-storage-agent';

export interface LocalStackOptions {
  nodes?: number;
  probeIntervalMs?: number;
  sim?: Omit<SimulationOptions, 'controlPlane' | 'nodes'>;
  log?: Logger;
  /**
   * HTTPS to the agents, as the product runs by default: the controller's Secret with the agents' CA and certificate
   * (controller/agent-tls.ts), the agents serving with it. Off by default here, so tests can call the agents plainly.
   */
  agentTls?: boolean;
  /** Controller settings to override (e.g. a faster resync, or a shifted clock). */
  controller?: Partial<Pick<ControllerConfig, 'resyncMs' | 'busyRequeueMs' | 'readingIntervalMs' | 'workers' | 'clock'>>;
}

export interface LocalStack {
  readonly plane: ControlPlane;
  readonly sim: Simulation;
  readonly agents: readonly RunningAgent[];
  /** The running controller (a new one after restartController). */
  readonly controller: RunningController;
  /** Stops the controller and starts a fresh one (new process state, same cluster state), as a pod restart would. */
  restartController(): Promise<RunningController>;
  /**
   * A token that may read the agents' and the controller's /metrics, as Prometheus holds one: the agents' audience, of a
   * ServiceAccount granted `get /metrics` (the controller's, which daemonset/rbac-callers.yaml binds).
   */
  metricsToken(): Promise<string>;
  stop(): Promise<void>;
}

async function createAll(kc: k8s.KubeConfig, file: string): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const doc of parseAllDocuments(await readFile(path.join(repoRoot, file), 'utf8'))) {
    const obj = doc.toJS() as k8s.KubernetesObject | null;
    if (!obj) continue;
    await client.create(obj).catch((err: unknown) => {
      if (!(err instanceof k8s.ApiException) || err.code !== 409) throw err;
    });
  }
}

/** MiB-granular simulated classes tell the controller their allocation unit (real Azure classes are whole GiB). */
async function annotateAllocationUnits(kc: k8s.KubeConfig): Promise<void> {
  const storage = kc.makeApiClient(k8s.StorageV1Api);
  for (const sc of (await storage.listStorageClass()).items) {
    const name = sc.metadata?.name ?? '';
    if (!name.endsWith('-mib') || sc.metadata?.annotations?.[allocationUnitAnnotation]) continue;
    await storage.patchStorageClass({ name, body: { metadata: { annotations: { [allocationUnitAnnotation]: '1Mi' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  }
}

/** The agents' DaemonSet, as daemonset/daemonset.yaml installs it (nothing runs it here: the stack makes its pods). */
async function createAgentDaemonSet(plane: ControlPlane): Promise<k8s.V1DaemonSet> {
  const apps = plane.kubeConfig.makeApiClient(k8s.AppsV1Api);
  return apps.createNamespacedDaemonSet({ namespace: systemNamespace, body: {
    metadata: { name: agentDaemonSet, labels: agentLabels },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': agentLabels['app.kubernetes.io/name'] } },
      template: {
        metadata: { labels: agentLabels },
        spec: { serviceAccountName: agentServiceAccount, containers: [{ name: 'agent', image: 'cnpg-dynamic-storage-agent:local' }] },
      },
    },
  } });
}

async function startAgents(plane: ControlPlane, sim: Simulation, probeIntervalMs: number, log: Logger, tls?: { certFile: string; keyFile: string }): Promise<{ agents: RunningAgent[]; port: number }> {
  const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const daemonSet = await createAgentDaemonSet(plane);
  const owner: k8s.V1OwnerReference = {
    apiVersion: 'apps/v1', kind: 'DaemonSet', name: agentDaemonSet, uid: daemonSet.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true,
  };
  const agentKubeConfig = await plane.kubeConfigFor(systemNamespace, agentServiceAccount);
  const port = await freePort();
  const agents: RunningAgent[] = [];
  try {
    for (const node of sim.nodes) {
      const name = `cnpg-dynamic-storage-agent-${node.name}`;
      await core.createNamespacedPod({ namespace: systemNamespace, body: {
        metadata: { name, labels: agentLabels, ownerReferences: [owner] },
        spec: { nodeName: node.name, serviceAccountName: agentServiceAccount, containers: [{ name: 'agent', image: 'cnpg-dynamic-storage-agent:local' }] },
      } });
      const podIP = await eventually(async () => {
        const pod = await core.readNamespacedPod({ name, namespace: systemNamespace });
        if (pod.status?.phase !== 'Running' || !pod.status.podIP) throw new Error(`agent pod ${name} not running yet`);
        return pod.status.podIP;
      }, { timeoutMs: 30_000 });
      agents.push(await startAgentOnKubeConfig({
        nodeName: node.name, kubeletRoot: node.kubeletRoot, probeIntervalMs, listenHost: podIP, listenPort: port, ...(tls ? { tls } : {}),
        heartbeatMs: 2_000, authCacheTtlMs: 10_000, tokenAudiences: [agentAudience], statfs: 'koffi', processMetrics: false, logLevel: 'info',
      }, { kubeConfig: agentKubeConfig, logger: log.child({ component: 'agent', node: node.name }) }));
    }
  } catch (err) {
    await Promise.all(agents.map((a) => a.stop()));
    throw err;
  }
  return { agents, port };
}

/** What daemonset/webhook/ registers in a cluster, pointed at the controller's port on loopback. */
async function registerPvcWebhook(plane: ControlPlane, port: number, caPem: string): Promise<void> {
  const admission = plane.kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
  await admission.createMutatingWebhookConfiguration({ body: {
    metadata: { name: 'cnpg-dynamic-storage' },
    webhooks: [{
      name: 'pvc.dynamicstorage.cnpg.io',
      clientConfig: { url: `https://127.0.0.1:${port}/mutate-pvc`, caBundle: Buffer.from(caPem).toString('base64') },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['persistentvolumeclaims'], scope: 'Namespaced' }],
      objectSelector: { matchExpressions: [{ key: 'cnpg.io/cluster', operator: 'Exists' }] },
      failurePolicy: 'Ignore', sideEffects: 'None', admissionReviewVersions: ['v1'], timeoutSeconds: 5,
    }],
  } });
}

function agentScheme(secret: AgentTlsSecret | undefined): Pick<ControllerConfig['agents'], 'scheme' | 'tlsSecret' | 'tlsServerName'> {
  return secret ? { scheme: 'https', tlsSecret: secret, tlsServerName: secret.serverName } : { scheme: 'http' };
}

/** The Secret the controller keeps for the agents, made now, and its pair written where the agents read it. */
async function agentTlsFiles(kubeConfig: k8s.KubeConfig, cleanups: (() => Promise<void>)[]): Promise<{ secret: AgentTlsSecret; files: { certFile: string; keyFile: string } }> {
  const secret: AgentTlsSecret = { namespace: systemNamespace, name: 'cnpg-dynamic-storage-agent-tls', serverName: `${agentDaemonSet}.${systemNamespace}.svc` };
  await ensureAgentTls(kubeConfig, secret, new Date(), silentLogger);
  const data = (await kubeConfig.makeApiClient(k8s.CoreV1Api).readNamespacedSecret({ name: secret.name, namespace: systemNamespace })).data ?? {};
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-agent-tls-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const files = { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') };
  await writeFile(files.certFile, Buffer.from(data['tls.crt'] ?? '', 'base64'));
  await writeFile(files.keyFile, Buffer.from(data['tls.key'] ?? '', 'base64'));
  return { secret, files };
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const log = options.log ?? silentLogger;
  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: unknown) => { log.warn('stopping the local stack', { err }); });
    }
  };
  try {
    const plane = await startControlPlane();
    cleanups.push(() => plane.stop());
    await applyCrds(plane, [path.join(repoRoot, 'crds/dynamicstorage.cnpg.io_dynamicstorages.yaml')]);

    const sim = await startSimulation({ ...options.sim, controlPlane: plane, nodes: options.nodes ?? 2 });
    cleanups.push(() => sim.stop());
    await annotateAllocationUnits(plane.kubeConfig);

    const core = plane.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: systemNamespace } } });
    for (const file of ['daemonset/serviceaccount.yaml', 'daemonset/rbac-agent.yaml', 'daemonset/rbac-callers.yaml', 'daemonset/rbac-controller.yaml']) {
      await createAll(plane.kubeConfig, file);
    }
    await core.createNamespacedServiceAccount({ namespace: systemNamespace, body: { metadata: { name: controllerServiceAccount } } });

    // The controller makes the agents' certificate at its start; here it is made first, as the controller's
    // ServiceAccount, so that the in-process agents can serve with it from their start.
    const controllerKubeConfig = await plane.kubeConfigFor(systemNamespace, controllerServiceAccount);
    const agentTls = options.agentTls ? await agentTlsFiles(controllerKubeConfig, cleanups) : undefined;
    const { agents, port } = await startAgents(plane, sim, options.probeIntervalMs ?? 250, log, agentTls?.files);
    cleanups.push(async () => {
      await Promise.all(agents.map((a) => a.stop()));
      // No kubelet will finish these pods' termination: delete them at once so the simulated nodes can go.
      const pods = await core.listNamespacedPod({ namespace: systemNamespace });
      await Promise.all(pods.items.map((p) => core.deleteNamespacedPod({ name: p.metadata?.name ?? '', namespace: systemNamespace, gracePeriodSeconds: 0 })));
    });

    // The controller runs as its ServiceAccount with the shipped RBAC, so a missing permission fails here, not on AKS.
    const webhookTls = await plane.servingCertificate('webhook');
    const controllerConfig: ControllerConfig = {
      identity: 'local-stack',
      leaderElection: { enabled: false, namespace: systemNamespace, name: 'cnpg-dynamic-storage-controller', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      watchNamespace: '', workers: options.controller?.workers ?? 2,
      resyncMs: options.controller?.resyncMs ?? 10_000, busyRequeueMs: options.controller?.busyRequeueMs ?? 500,
      readingIntervalMs: options.controller?.readingIntervalMs ?? 1_000,
      clock: options.controller?.clock,
      agents: {
        namespace: systemNamespace, labelSelector: 'app.kubernetes.io/name=cnpg-dynamic-storage-agent', port, ...agentScheme(agentTls?.secret),
        // As the product runs: audience-bound tokens requested for the controller's ServiceAccount, agents of the DaemonSet.
        tokenRequest: { namespace: systemNamespace, serviceAccount: controllerServiceAccount },
        daemonSet: { name: agentDaemonSet, serviceAccount: agentServiceAccount },
      },
      listen: { host: '127.0.0.1', port: 0 },
      // As the product runs: /metrics authenticated (TokenReview + SubjectAccessReview), the probes open.
      metricsAuth: { tokenAudiences: [agentAudience] },
      webhook: { host: '127.0.0.1', port: 0, certPem: webhookTls.certPem, keyPem: webhookTls.keyPem },
    };
    let controller = await startController(controllerKubeConfig, controllerConfig, log.child({ component: 'controller' }));
    cleanups.push(() => controller.stop());
    await registerPvcWebhook(plane, controller.webhookPort ?? 0, webhookTls.caPem);
    return {
      plane, sim, agents, stop: stopAll,
      get controller() { return controller; },
      metricsToken: () => plane.tokenFor(systemNamespace, controllerServiceAccount, 600, [agentAudience]),
      async restartController() {
        await controller.stop();
        // The same webhook port, so the registered webhook keeps reaching the new process.
        const webhook = controllerConfig.webhook ? { ...controllerConfig.webhook, port: controller.webhookPort ?? 0 } : undefined;
        controller = await startController(controllerKubeConfig, { ...controllerConfig, webhook }, log.child({ component: 'controller' }));
        return controller;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

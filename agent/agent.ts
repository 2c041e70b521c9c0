/**
 * Wires the agent together: discovery -> prober -> (metrics, status, change stream) behind the authenticated server.
 * main.ts reads the configuration and calls startAgent; tests call it in-process with their own dependencies.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../shared/log.ts';
import { kubeAccessReviewer, kubeTokenReviewer, RequestAuthorizer } from './auth.ts';
import type { AgentConfig } from './config.ts';
import { KubeDiscovery, type DiscoveryStatus } from './discovery.ts';
import type { KubeClient } from './kube/client.ts';
import { createAgentMetrics, type AgentMetrics } from './metrics.ts';
import { Prober, statfsMountCheck, type MountCheck, type ProberClock, type Scheduler, type VolumeTarget } from './prober.ts';
import { startServer, type AgentServer, type Probe } from './server.ts';
import { createStatfs, type Statfs } from './statfs.ts';
import { ChangeStream } from './stream.ts';

/** What feeds the prober its volumes. */
export interface DiscoverySource {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): Pick<DiscoveryStatus, 'synced'> & Partial<DiscoveryStatus>;
}

export interface AgentDeps {
  /** The API server (kube/client.ts). Needed unless both `discovery` and `authorizer` are given. The caller closes it. */
  kube?: KubeClient;
  logger: Logger;
  statfs?: Statfs;
  mountCheck?: MountCheck;
  clock?: ProberClock;
  scheduler?: Scheduler;
  /** Default: KubeDiscovery on the API server. */
  discovery?: (onTargets: (targets: VolumeTarget[]) => void) => DiscoverySource;
  /** Default: TokenReview + SubjectAccessReview on the API server. */
  authorizer?: Pick<RequestAuthorizer, 'check'>;
}

export interface RunningAgent {
  readonly url: string;
  readonly port: number;
  readonly epoch: string;
  readonly prober: Prober;
  readonly metrics: AgentMetrics;
  readonly discovery: DiscoverySource;
  stop(): Promise<void>;
}

function livenessOf(prober: Prober, clock: ProberClock, intervalMs: number): () => Probe {
  const started = clock.wallMs();
  const allowedLagMs = 5 * intervalMs + 5000;
  return () => {
    const last = prober.lastPassAt ?? started;
    const lag = clock.wallMs() - last;
    return lag <= allowedLagMs ? { ok: true, message: 'ok' } : { ok: false, message: `no probe pass for ${lag} ms` };
  };
}

function readinessOf(prober: Prober, discovery: DiscoverySource): () => Probe {
  return () => {
    if (!discovery.status().synced) return { ok: false, message: 'volume discovery has not listed this node yet' };
    if (prober.lastPassAt === undefined) return { ok: false, message: 'no probe pass yet' };
    return { ok: true, message: 'ok' };
  };
}

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const logger = deps.logger.child({ component: 'agent', node: config.nodeName });
  const statfs = deps.statfs ?? await createStatfs(config.statfs);
  const clock = deps.clock ?? { wallMs: () => Date.now(), monoMs: () => performance.now() };
  const epoch = randomUUID();
  const metrics = createAgentMetrics({
    readings: () => prober.readings(),
    get lastPassAt() { return prober.lastPassAt; },
    streamClients: () => stream.size,
  }, { processMetrics: config.processMetrics });
  const prober = new Prober({
    node: config.nodeName, epoch, intervalMs: config.probeIntervalMs, statfs, logger, clock,
    ...(deps.mountCheck ? { mountCheck: deps.mountCheck } : statfsMountCheck(statfs)),
    ...(deps.scheduler ? { scheduler: deps.scheduler } : {}),
    onPass: (stats) => { metrics.observePass(stats); },
    onProbeError: (code) => { metrics.countProbeError(code); },
  });
  const stream = new ChangeStream({
    prober, node: config.nodeName, epoch, heartbeatMs: config.heartbeatMs, logger, clock,
    ...(deps.scheduler ? { scheduler: deps.scheduler } : {}),
  });
  const onTargets = (targets: VolumeTarget[]): void => { prober.setTargets(targets); };
  const kube = (): KubeClient => {
    if (deps.kube) return deps.kube;
    throw new Error('startAgent: deps.kube is required unless both discovery and authorizer are given');
  };
  const discovery = deps.discovery?.(onTargets) ?? new KubeDiscovery({
    kube: kube(), node: config.nodeName, kubeletRoot: config.kubeletRoot, logger, onTargets,
  });
  const authorizer = deps.authorizer ?? new RequestAuthorizer({
    tokens: kubeTokenReviewer(kube(), config.tokenAudiences), access: kubeAccessReviewer(kube()), cacheTtlMs: config.authCacheTtlMs,
  });
  const tls = config.tls
    ? { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile), certFile: config.tls.certFile, keyFile: config.tls.keyFile, reloadMs: config.tls.reloadMs }
    : undefined;

  stream.start();
  prober.start();
  let server: AgentServer | undefined;
  try {
    server = await startServer({
      host: config.listenHost, port: config.listenPort, ...(tls ? { tls } : {}), authorizer, prober, stream, metrics, logger,
      liveness: livenessOf(prober, clock, config.probeIntervalMs), readiness: readinessOf(prober, discovery),
    });
    await discovery.start();
  } catch (err) {
    prober.stop();
    stream.close();
    await server?.close();
    await discovery.stop();
    throw err;
  }
  const running = server;
  logger.info('agent started', { url: running.url, statfs: statfs.implementation, probeIntervalMs: config.probeIntervalMs, epoch });

  let stopping: Promise<void> | undefined;
  return {
    url: running.url, port: running.port, epoch, prober, metrics, discovery,
    stop(): Promise<void> {
      stopping ??= (async () => {
        await discovery.stop();
        prober.stop();
        await running.close();
        logger.info('agent stopped');
      })();
      return stopping;
    },
  };
}

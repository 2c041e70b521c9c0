/**
 * The controller as the benchmark runs it: its own process, production settings (30 s resync, readings at most every
 * 5 s, two workers, leader election), agents reached through one URL per node on the simulated agents' server.
 * Argument: a JSON object (see ChildOptions). Compiled to JavaScript first, as the image runs it (bench/fleet/run.ts).
 */
import v8 from 'node:v8';
import * as k8s from '@kubernetes/client-node';
import { startController } from '../../controller/controller.ts';
import { createLogger } from '../../shared/log.ts';

interface ChildOptions {
  kubeconfig: string;
  agentsUrl: string;
  agentNamespace: string;
  agentLabelSelector: string;
  metricsPort: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
const kubeConfig = new k8s.KubeConfig();
kubeConfig.loadFromFile(options.kubeconfig);
const log = createLogger({ component: 'controller' }, { level: 'warn' });
const controller = await startController(kubeConfig, {
  identity: `bench-${process.pid}`,
  leaderElection: { enabled: true, namespace: options.agentNamespace, name: 'cnpg-dynamic-storage-controller', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
  watchNamespace: '', workers: 2, resyncMs: 30_000, busyRequeueMs: 2_000, readingIntervalMs: 5_000,
  agents: {
    namespace: options.agentNamespace, labelSelector: options.agentLabelSelector, port: 0, scheme: 'http', token: () => 'bench',
    urlFor: (pod) => `${options.agentsUrl}/nodes/${pod.spec?.nodeName ?? ''}`,
  },
  listen: { host: '127.0.0.1', port: options.metricsPort },
}, log);
process.send?.({ ready: true });
// The bench asks where the memory is: V8's heap (after a full GC when exposed) against the RSS.
process.on('message', (message: { memory?: boolean; heapSnapshot?: string }) => {
  if (message.heapSnapshot) {
    process.send?.({ heapSnapshot: v8.writeHeapSnapshot(message.heapSnapshot) });
    return;
  }
  if (!message.memory) return;
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  process.send?.({ memory: { rss: usage.rss, heapTotal: usage.heapTotal, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers } });
});
const stop = (): void => { controller.stop().then(() => process.exit(0), () => process.exit(1)); };
process.on('SIGTERM', stop);
process.on('disconnect', stop);

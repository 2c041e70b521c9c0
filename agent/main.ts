/**
 * The node agent's entry point: reads the configuration once, starts the agent, stops it cleanly on SIGTERM/SIGINT.
 */
import os from 'node:os';
import { errorCode, errorMessage } from '../shared/errors.ts';
import { createLogger } from '../shared/log.ts';
import { startAgent } from './agent.ts';
import { agentConfigFromEnv } from './config.ts';
import { createKubeClient } from './kube/client.ts';
import { kubeSourceFromEnv, loadConnection } from './kube/connection.ts';

async function main(): Promise<void> {
  const bootLogger = createLogger({ component: 'agent' });
  let config;
  try {
    config = agentConfigFromEnv(process.env);
  } catch (err) {
    bootLogger.error('invalid configuration', { err });
    process.exit(2);
  }
  const logger = createLogger({}, { level: config.logLevel });
  // KUBECONFIG, else the in-cluster ServiceAccount, else ~/.kube/config.
  const kube = createKubeClient(await loadConnection(kubeSourceFromEnv(process.env, os.homedir())));
  const agent = await startAgent(config, { kube, logger });

  let signals = 0;
  const shutdown = (signal: string): void => {
    signals++;
    if (signals > 1) {
      logger.warn('second signal; exiting now', { signal });
      process.exit(1);
    }
    logger.info('shutting down', { signal });
    agent.stop().then(() => { process.exit(0); }, (err: unknown) => {
      logger.error('shutdown failed', { err });
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => { shutdown('SIGTERM'); });
  process.on('SIGINT', () => { shutdown('SIGINT'); });
}

main().catch((err: unknown) => {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'error', msg: 'agent failed to start', err: { code: errorCode(err), message: errorMessage(err) } }) + '\n');
  process.exit(1);
});

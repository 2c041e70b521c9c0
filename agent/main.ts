/**
 * The node agent's entry point: reads the configuration once, starts the agent, stops it cleanly on SIGTERM/SIGINT.
 */
import os from 'node:os';
import { createLogger } from '../shared/log.ts';
import { runMain, stopOnSignals } from '../shared/main.ts';
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
  stopOnSignals(logger, () => agent.stop());
}

runMain('agent', main);

/**
 * The controller's entry point: reads the configuration once, starts the controller, exits when leadership is lost
 * (a successor takes over) and stops cleanly on SIGTERM/SIGINT.
 */
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../shared/log.ts';
import { runMain, stopOnSignals } from '../shared/main.ts';
import { controllerConfigFromEnv } from './config.ts';
import { startController } from './controller.ts';

async function main(): Promise<void> {
  const config = controllerConfigFromEnv(process.env);
  const log = createLogger({ component: 'controller' }, { level: config.logLevel });
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromDefault(); // in-cluster ServiceAccount, or KUBECONFIG outside a cluster
  const controller = await startController(kubeConfig, config, log);
  log.info('controller started', { identity: config.identity, listen: controller.address });

  void controller.lost.then(() => {
    log.error('leadership lost; exiting so that only one leader acts');
    process.exit(1);
  });
  stopOnSignals(log, () => controller.stop());
}

runMain('controller', main);

/**
 * The controller's entry point: reads the configuration once, starts the controller, exits when leadership is lost
 * (a successor takes over) and stops cleanly on SIGTERM/SIGINT.
 */
import * as k8s from '@kubernetes/client-node';
import { errorCode, errorMessage } from '../shared/errors.ts';
import { createLogger } from '../shared/log.ts';
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
  let signals = 0;
  const shutdown = (signal: string): void => {
    signals += 1;
    if (signals > 1) process.exit(1);
    log.info('shutting down', { signal });
    controller.stop().then(() => process.exit(0), (err: unknown) => {
      log.error('shutdown failed', { err });
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => { shutdown('SIGTERM'); });
  process.on('SIGINT', () => { shutdown('SIGINT'); });
}

main().catch((err: unknown) => {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'error', msg: 'controller failed to start', err: { code: errorCode(err), message: errorMessage(err) } }) + '\n');
  process.exit(1);
});

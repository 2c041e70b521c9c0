/**
 * The controller's configuration, from environment variables read once in main.ts. Every problem is reported at once.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../shared/errors.ts';
import type { LogLevel } from '../shared/log.ts';
import type { ControllerConfig } from './controller.ts';
import { agentAudience } from './agent-token.ts';
import { DEFAULT_LEADER_TIMING, defaultIdentity } from './kube/leader.ts';

export type Environment = Record<string, string | undefined>;

export const controllerDefaults = {
  namespace: 'cnpg-system',
  leaseName: 'cnpg-dynamic-storage-controller',
  agentSelector: 'app.kubernetes.io/name=cnpg-dynamic-storage-agent',
  agentPort: 9100,
  serviceAccount: 'cnpg-dynamic-storage-controller',
  agentDaemonSet: 'cnpg-dynamic-storage-agent',
  agentServiceAccount: 'cnpg-dynamic-storage-agent',
  agentTlsSecret: 'cnpg-dynamic-storage-agent-tls',
  listen: '0.0.0.0:8080',
  webhookListen: '0.0.0.0:9443',
  // Off unless asked for (the shipped Deployment sets 0.0.0.0:9090): local runs start several controllers on one host.
  pluginListen: 'off',
  pluginService: 'cnpg-dynamic-storage-plugin',
  pluginServerSecret: 'cnpg-dynamic-storage-plugin-server',
  pluginClientSecret: 'cnpg-dynamic-storage-plugin-client',
  webhookService: 'cnpg-dynamic-storage-webhook',
  webhookSecret: 'cnpg-dynamic-storage-webhook-server',
  webhookConfiguration: 'cnpg-dynamic-storage',
  workers: 2,
  resyncMs: 30_000,
  busyRequeueMs: 2_000,
  readingIntervalMs: 5_000,
} as const;

function integer(problems: string[], env: Environment, name: string, fallback: number, [min, max]: [number, number]): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name}: ${JSON.stringify(text)} must be a whole number from ${min} to ${max}`);
    return fallback;
  }
  return value;
}

function flag(problems: string[], env: Environment, name: string, fallback: boolean): boolean {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (text !== 'true' && text !== 'false') problems.push(`${name}: ${JSON.stringify(text)} must be true or false`);
  return text === 'true';
}

function listenAddress(problems: string[], text: string, variable = 'LISTEN_ADDRESS'): { host: string; port: number } | undefined {
  if (text === 'off') return undefined;
  const match = /^(.*):(\d+)$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    problems.push(`${variable}: ${JSON.stringify(text)} must be host:port, or off`);
    return undefined;
  }
  return { host: match[1] || '0.0.0.0', port };
}

/**
 * Where the admission webhooks' certificate comes from (WEBHOOK_CERT_SOURCE):
 * - `secret` (what the shipped Deployment sets): the controller makes and renews its own, keeps it in the Secret WEBHOOK_SECRET and sets the
 *   caBundle of the configurations WEBHOOK_MUTATING_CONFIGURATION and WEBHOOK_VALIDATING_CONFIGURATION
 *   (controller/webhook-tls.ts);
 * - `files`: tls.crt and tls.key in WEBHOOK_CERT_DIR (cert-manager's Secret, mounted; re-read when renewed). The
 *   webhooks are served when both are there (the Secret is mounted optionally). The default when only WEBHOOK_CERT_DIR
 *   is set, as before WEBHOOK_CERT_SOURCE existed;
 * - `off`: no webhooks; the default when neither WEBHOOK_CERT_SOURCE nor WEBHOOK_CERT_DIR is set.
 */
function webhookConfig(problems: string[], env: Environment, namespace: string): ControllerConfig['webhook'] {
  const dir = env.WEBHOOK_CERT_DIR ?? '';
  // Off unless asked for (the shipped Deployment sets `secret`): local runs start several controllers on one host.
  const source = env.WEBHOOK_CERT_SOURCE || (dir === '' ? 'off' : 'files');
  if (!['secret', 'files', 'off'].includes(source)) {
    problems.push(`WEBHOOK_CERT_SOURCE: ${JSON.stringify(source)} must be secret, files or off`);
    return undefined;
  }
  if (source === 'off') return undefined;
  const address = listenAddress(problems, env.WEBHOOK_ADDRESS || controllerDefaults.webhookListen, 'WEBHOOK_ADDRESS');
  if (!address) return undefined;
  if (source === 'secret') {
    const configuration = env.WEBHOOK_CONFIGURATION || controllerDefaults.webhookConfiguration;
    return {
      ...address,
      managed: {
        namespace,
        secret: env.WEBHOOK_SECRET || controllerDefaults.webhookSecret,
        serviceName: env.WEBHOOK_SERVICE || controllerDefaults.webhookService,
        mutatingConfiguration: env.WEBHOOK_MUTATING_CONFIGURATION || configuration,
        validatingConfiguration: env.WEBHOOK_VALIDATING_CONFIGURATION || configuration,
      },
    };
  }
  if (dir === '') {
    problems.push('WEBHOOK_CERT_DIR: must name the directory of tls.crt and tls.key when WEBHOOK_CERT_SOURCE is files');
    return undefined;
  }
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  return { ...address, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

/**
 * The CNPG-I plugin (status on Clusters that opt in): served on PLUGIN_ADDRESS by every replica, with the certificates
 * the controller keeps in the Secrets that the plugin Service names (controller/cnpgi/tls.ts); off when unset or `off`.
 */
function pluginConfig(problems: string[], env: Environment, namespace: string): ControllerConfig['plugin'] {
  const address = listenAddress(problems, env.PLUGIN_ADDRESS || controllerDefaults.pluginListen, 'PLUGIN_ADDRESS');
  if (!address) return undefined;
  return {
    ...address,
    secrets: {
      namespace,
      serviceName: env.PLUGIN_SERVICE || controllerDefaults.pluginService,
      serverSecret: env.PLUGIN_SERVER_SECRET || controllerDefaults.pluginServerSecret,
      clientSecret: env.PLUGIN_CLIENT_SECRET || controllerDefaults.pluginClientSecret,
    },
  };
}

/** How the controller proves itself to the agents, and how it knows an agent when it sees one. */
function agentIdentity(env: Environment, namespace: string): Pick<ControllerConfig['agents'], 'token' | 'tokenRequest' | 'daemonSet'> {
  const tokenFile = env.AGENT_TOKEN_FILE;
  return {
    // By default an audience-bound token requested for the purpose (never the ServiceAccount's own token); a token
    // file given explicitly (e.g. a projected token with the agents' audience) is read on every request.
    token: tokenFile ? () => readFileSync(tokenFile, 'utf8').trim() : undefined,
    tokenRequest: tokenFile ? undefined : {
      namespace, serviceAccount: env.SERVICE_ACCOUNT_NAME || controllerDefaults.serviceAccount, audience: env.AGENT_TOKEN_AUDIENCE || undefined,
    },
    daemonSet: {
      name: env.AGENT_DAEMONSET || controllerDefaults.agentDaemonSet,
      serviceAccount: env.AGENT_SERVICE_ACCOUNT || controllerDefaults.agentServiceAccount,
    },
  };
}

/**
 * The audiences a token for /metrics must be for: by default the agents' (Prometheus presents the same projected token
 * to the agents and to the controller); `*` accepts the API server's own, i.e. ordinary ServiceAccount tokens.
 */
function tokenAudiences(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [agentAudience];
  if (text.trim() === '*') return [];
  return text.split(',').map((a) => a.trim()).filter(Boolean);
}

/**
 * How the agents' certificates are checked: by default against the CA the controller keeps in a Secret (made at start,
 * controller/agent-tls.ts) and the agents' Service name; with AGENT_CA_FILE, against that CA (certificates made
 * elsewhere), and the name AGENT_TLS_SERVER_NAME or else the pod IP.
 */
function agentTls(env: Environment, namespace: string): Pick<ControllerConfig['agents'], 'ca' | 'tlsServerName' | 'tlsSecret'> {
  const caFile = env.AGENT_CA_FILE;
  if (caFile) return { ca: readFileSync(caFile, 'utf8'), tlsServerName: env.AGENT_TLS_SERVER_NAME || undefined };
  const serverName = env.AGENT_TLS_SERVER_NAME || agentServerName(env.AGENT_NAMESPACE ?? namespace);
  return { tlsServerName: serverName, tlsSecret: { namespace, name: env.AGENT_TLS_SECRET || controllerDefaults.agentTlsSecret, serverName } };
}

/** The name in the agents' certificate: their Service's DNS name (daemonset/service.yaml). */
function agentServerName(agentNamespace: string): string {
  return `cnpg-dynamic-storage-agent.${agentNamespace || controllerDefaults.namespace}.svc`;
}

export function controllerConfigFromEnv(env: Environment): ControllerConfig & { logLevel: LogLevel } {
  const problems: string[] = [];
  const namespace = env.POD_NAMESPACE || controllerDefaults.namespace;
  // HTTPS by default, with the certificate the controller keeps in a Secret for the agents (controller/agent-tls.ts);
  // AGENT_CA_FILE for certificates made elsewhere; AGENT_SCHEME=http for agents without one.
  const scheme = env.AGENT_SCHEME || 'https';
  if (scheme !== 'http' && scheme !== 'https') problems.push(`AGENT_SCHEME: ${JSON.stringify(scheme)} must be http or https`);
  const logLevel = env.LOG_LEVEL || 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) problems.push(`LOG_LEVEL: ${JSON.stringify(logLevel)} must be debug, info, warn or error`);
  const config: ControllerConfig & { logLevel: LogLevel } = {
    identity: env.POD_NAME ? `${env.POD_NAME}_${defaultIdentity().split('_').pop() ?? ''}` : defaultIdentity(),
    leaderElection: {
      enabled: flag(problems, env, 'LEADER_ELECT', true),
      namespace,
      name: env.LEASE_NAME || controllerDefaults.leaseName,
      ...DEFAULT_LEADER_TIMING,
    },
    watchNamespace: env.WATCH_NAMESPACE ?? '',
    workers: integer(problems, env, 'WORKERS', controllerDefaults.workers, [1, 64]),
    resyncMs: integer(problems, env, 'RESYNC_SECONDS', controllerDefaults.resyncMs / 1000, [1, 3600]) * 1000,
    busyRequeueMs: controllerDefaults.busyRequeueMs,
    readingIntervalMs: integer(problems, env, 'READING_INTERVAL_SECONDS', controllerDefaults.readingIntervalMs / 1000, [0, 3600]) * 1000,
    agents: {
      namespace: env.AGENT_NAMESPACE ?? namespace,
      labelSelector: env.AGENT_SELECTOR || controllerDefaults.agentSelector,
      port: integer(problems, env, 'AGENT_PORT', controllerDefaults.agentPort, [1, 65535]),
      scheme: scheme === 'https' ? 'https' : 'http',
      ...agentIdentity(env, namespace),
      ...agentTls(env, namespace),
      insecureSkipVerify: flag(problems, env, 'AGENT_INSECURE_SKIP_VERIFY', false),
    },
    listen: listenAddress(problems, env.LISTEN_ADDRESS || controllerDefaults.listen),
    metricsAuth: flag(problems, env, 'METRICS_AUTH', true) ? { tokenAudiences: tokenAudiences(env.METRICS_TOKEN_AUDIENCES) } : undefined,
    webhook: webhookConfig(problems, env, namespace),
    plugin: pluginConfig(problems, env, namespace),
    // Without the plugin, the summary goes on every managed Cluster: a condition and an annotation (docs/controller.md).
    clusterStatus: { condition: flag(problems, env, 'CLUSTER_CONDITION', true), annotation: flag(problems, env, 'CLUSTER_ANNOTATION', true) },
    logLevel: logLevel as LogLevel,
  };
  if (problems.length > 0) throw new InvalidInputError('InvalidControllerConfig', 'environment', problems.join('; '));
  return config;
}

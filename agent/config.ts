/**
 * The agent's configuration, read once by main.ts from the environment (the DaemonSet sets it) and validated up front:
 * every problem is reported at once.
 */
import { InvalidInputError } from '../shared/errors.ts';
import type { LogLevel } from '../shared/log.ts';
import type { StatfsImplementation } from './statfs.ts';

export interface AgentConfig {
  /** This node (downward API `spec.nodeName`). */
  nodeName: string;
  /** kubelet's root directory as mounted in the agent (read-only). */
  kubeletRoot: string;
  probeIntervalMs: number;
  listenHost: string;
  listenPort: number;
  /** Serve HTTPS with these PEM files; plain HTTP without. */
  tls?: { certFile: string; keyFile: string; reloadMs?: number | undefined };
  /** Longest silence on a change stream before a HEARTBEAT. */
  heartbeatMs: number;
  /** How long TokenReview and SubjectAccessReview answers are reused. */
  authCacheTtlMs: number;
  /**
   * Audiences a caller's token must carry (default `cnpg-dynamic-storage-agent`: tokens requested for the agents, useless
   * against the API server; `*` accepts the API server's own audiences, i.e. ordinary ServiceAccount tokens).
   */
  tokenAudiences: string[];
  statfs: StatfsImplementation;
  /** Node's process metrics (prom-client's default metrics); off by default: they cost CPU on every node for little. */
  processMetrics: boolean;
  logLevel: LogLevel;
}

export const configDefaults = {
  kubeletRoot: '/var/lib/kubelet',
  probeIntervalMs: 1000,
  listenHost: '0.0.0.0',
  listenPort: 9100,
  heartbeatMs: 5000,
  authCacheTtlMs: 10_000,
  tokenAudience: 'cnpg-dynamic-storage-agent',
  statfs: 'koffi',
  logLevel: 'info',
} as const;

export type Environment = Record<string, string | undefined>;

/** Milliseconds from `250ms`, `1s`, `2m` or a bare number of milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ?? 'ms';
  return Math.round(value * { ms: 1, s: 1000, m: 60_000 }[unit as 'ms' | 's' | 'm']);
}

class Collector {
  readonly problems: string[] = [];

  duration(env: Environment, name: string, fallback: number, min: number): number {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const ms = parseDurationMs(raw);
    if (ms === undefined || ms < min) {
      this.problems.push(`${name}: ${JSON.stringify(raw)} is not a duration of at least ${min}ms (e.g. 500ms, 1s)`);
      return fallback;
    }
    return ms;
  }

  oneOf<T extends string>(env: Environment, name: string, allowed: readonly T[], fallback: T): T {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name}: ${JSON.stringify(raw)} is not one of ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  }
}

/** The audiences the agent accepts; `*` turns the check off (the API server's own audiences). */
function tokenAudiences(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [configDefaults.tokenAudience];
  if (text.trim() === '*') return [];
  return text.split(',').map((a) => a.trim()).filter(Boolean);
}

/** Builds the configuration from environment variables. Throws InvalidInputError (code InvalidAgentConfig) listing every problem. */
export function agentConfigFromEnv(env: Environment): AgentConfig {
  const c = new Collector();
  const nodeName = env.NODE_NAME ?? '';
  if (!nodeName) c.problems.push('NODE_NAME: required (set it from the downward API: spec.nodeName)');
  const port = env.LISTEN_PORT === undefined || env.LISTEN_PORT === '' ? configDefaults.listenPort : Number(env.LISTEN_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) c.problems.push(`LISTEN_PORT: ${JSON.stringify(env.LISTEN_PORT)} is not a port number`);
  const certFile = env.TLS_CERT_FILE ?? '';
  const keyFile = env.TLS_KEY_FILE ?? '';
  if ((certFile === '') !== (keyFile === '')) c.problems.push('TLS_CERT_FILE, TLS_KEY_FILE: set both or neither');
  const config: AgentConfig = {
    nodeName,
    kubeletRoot: env.KUBELET_ROOT || configDefaults.kubeletRoot,
    probeIntervalMs: c.duration(env, 'PROBE_INTERVAL', configDefaults.probeIntervalMs, 50),
    listenHost: env.LISTEN_HOST || configDefaults.listenHost,
    listenPort: port,
    heartbeatMs: c.duration(env, 'HEARTBEAT_INTERVAL', configDefaults.heartbeatMs, 100),
    authCacheTtlMs: c.duration(env, 'AUTH_CACHE_TTL', configDefaults.authCacheTtlMs, 0),
    tokenAudiences: tokenAudiences(env.TOKEN_AUDIENCES),
    statfs: c.oneOf(env, 'STATFS', ['koffi', 'node'], configDefaults.statfs),
    processMetrics: c.oneOf(env, 'PROCESS_METRICS', ['true', 'false'], 'false') === 'true',
    logLevel: c.oneOf(env, 'LOG_LEVEL', ['debug', 'info', 'warn', 'error'], configDefaults.logLevel),
  };
  if (certFile && keyFile) config.tls = { certFile, keyFile };
  if (c.problems.length > 0) throw new InvalidInputError('InvalidAgentConfig', 'environment', c.problems.join('; '));
  return config;
}

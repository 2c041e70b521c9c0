/**
 * The controller's CNPG-I plugin: CloudNativePG's operator finds it through a Service in its namespace (see
 * daemonset/plugin.yaml), connects with mutual TLS, and calls it on every reconcile of a Cluster that lists it under
 * `spec.plugins`. It serves the Identity service (metadata, capabilities, probe) and, of the Operator service, its
 * capabilities and SetStatusInCluster, whose JSON answer the operator stores in the Cluster's
 * `status.pluginStatus[<plugin name>].status`.
 *
 * Every controller replica serves it, leader or not: the answer is read from the DynamicStorage status on the API server
 * (`statusFor`), never from the leader's memory. A failure to read it answers "no change" (an empty status) rather than
 * an error: the operator stops reconciling a Cluster whose plugin fails, and the last block it stored stays correct
 * enough until the next call.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { errorMessage } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { PluginStatusBlock } from '../cluster-status.ts';
import { cnpgiPluginName } from '../../shared/cnpg.ts';

/** The plugin's name: the Service's `cnpg.io/pluginName` label and what a Cluster lists under `spec.plugins`. */
export const pluginName = cnpgiPluginName;

export const protoFiles = [
  fileURLToPath(new URL('./identity.proto', import.meta.url)),
  fileURLToPath(new URL('./operator.proto', import.meta.url)),
];

/** Field names as in the .proto files (snake_case), enums as their names. */
export const protoLoaderOptions: protoLoader.Options = { keepCase: true, enums: String, longs: String, defaults: true, oneofs: true };

export interface CnpgiServices {
  identity: grpc.ServiceDefinition;
  operator: grpc.ServiceDefinition;
}

export function loadCnpgiServices(): CnpgiServices {
  const definition = protoLoader.loadSync(protoFiles, protoLoaderOptions);
  const service = (name: string): grpc.ServiceDefinition => {
    const found = definition[name];
    if (!found || 'format' in found) throw new Error(`${name} is not a service in ${protoFiles.join(', ')}`);
    return found;
  };
  return { identity: service('cnpgi.identity.v1.Identity'), operator: service('cnpgi.operator.v1.Operator') };
}

export interface ClusterKey {
  namespace: string;
  name: string;
}

export interface PluginServerOptions {
  host: string;
  port: number;
  /** The serving certificate (chain) and key, and the CA that the operator's client certificate must be signed by. */
  tls: { certPem: string; keyPem: string; clientCaPem: string };
  /** The status block for a Cluster; undefined: no change. */
  statusFor: (cluster: ClusterKey) => Promise<PluginStatusBlock | undefined>;
  /** The product version reported in the plugin's metadata. */
  version: string;
  log: Logger;
  /** How long to wait for `statusFor` before answering "no change" (default 5 s; the operator waits 30 s). */
  statusTimeoutMs?: number;
}

export interface PluginServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The Cluster's namespace and name from SetStatusInCluster's `cluster` (the Cluster as JSON). */
export function clusterKeyOf(json: Buffer | Uint8Array | undefined): ClusterKey | undefined {
  try {
    const cluster = JSON.parse(Buffer.from(json ?? []).toString('utf8')) as { metadata?: { namespace?: unknown; name?: unknown } };
    const { namespace, name } = cluster.metadata ?? {};
    return typeof namespace === 'string' && typeof name === 'string' && namespace && name ? { namespace, name } : undefined;
  } catch {
    return undefined;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof timedOut>((resolve) => { timer = setTimeout(() => { resolve(timedOut); }, ms); });
  return Promise.race([promise, timeout]).finally(() => { clearTimeout(timer); });
}
const timedOut = Symbol('timedOut');

type Unary = grpc.handleUnaryCall<Record<string, unknown>, Record<string, unknown>>;

function identityHandlers(version: string): Record<string, Unary> {
  return {
    GetPluginMetadata: (_call, callback) => {
      callback(null, {
        name: pluginName, version, display_name: 'Dynamic storage',
        description: 'Storage sizing status (data, WAL, tablespaces) of the DynamicStorage that manages the Cluster',
        license: 'Apache-2.0', maturity: 'alpha', vendor: 'cnpg-dynamic-storage',
      });
    },
    GetPluginCapabilities: (_call, callback) => { callback(null, { capabilities: [{ service: { type: 'TYPE_OPERATOR_SERVICE' } }] }); },
    Probe: (_call, callback) => { callback(null, { ready: true }); },
  };
}

function operatorHandlers(options: PluginServerOptions): Record<string, Unary> {
  const { log, statusFor } = options;
  const timeoutMs = options.statusTimeoutMs ?? 5_000;
  const noChange = { json_status: Buffer.alloc(0) };
  return {
    GetCapabilities: (_call, callback) => { callback(null, { capabilities: [{ rpc: { type: 'TYPE_SET_STATUS_IN_CLUSTER' } }] }); },
    SetStatusInCluster: (call, callback) => {
      const key = clusterKeyOf(call.request.cluster as Buffer | undefined);
      if (!key) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: 'cluster: not a Cluster with a namespace and a name' });
        return;
      }
      withTimeout(statusFor(key), timeoutMs).then((block) => {
        if (block === timedOut) {
          log.warn('storage sizing status not read in time; answering no change', { namespace: key.namespace, cluster: key.name, timeoutMs });
          callback(null, noChange);
          return;
        }
        log.debug('SetStatusInCluster', { namespace: key.namespace, cluster: key.name, found: block !== undefined });
        callback(null, block === undefined ? noChange : { json_status: Buffer.from(JSON.stringify(block)) });
      }, (err: unknown) => {
        log.warn('could not read the storage sizing status; answering no change', { namespace: key.namespace, cluster: key.name, err: errorMessage(err) });
        callback(null, noChange);
      });
    },
  };
}

/** Serves the plugin over mutual TLS: a client without a certificate signed by `tls.clientCaPem` is refused. */
export async function startPluginServer(options: PluginServerOptions): Promise<PluginServer> {
  const services = loadCnpgiServices();
  const server = new grpc.Server();
  server.addService(services.identity, identityHandlers(options.version));
  server.addService(services.operator, operatorHandlers(options));
  const credentials = grpc.ServerCredentials.createSsl(
    Buffer.from(options.tls.clientCaPem),
    [{ cert_chain: Buffer.from(options.tls.certPem), private_key: Buffer.from(options.tls.keyPem) }],
    true,
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, credentials, (err, bound) => {
      if (err) reject(err); else resolve(bound);
    });
  });
  options.log.info('CNPG-I plugin serving', { plugin: pluginName, port });
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      // In-flight calls get a second to finish; then the connections are closed.
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, 1_000);
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    }),
  };
}

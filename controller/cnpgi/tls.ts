/**
 * The CNPG-I plugin's certificates, made by the controller the way it makes the agents' (controller/agent-tls.ts): a CA
 * of its own, a serving certificate for the plugin's Service name and a client certificate for the operator, kept in two
 * Secrets of its namespace that the plugin Service names (`cnpg.io/pluginServerSecret`, `cnpg.io/pluginClientSecret`).
 *
 * The operator trusts what the server Secret's `tls.crt` holds (the serving certificate followed by the CA) and presents
 * the client Secret's `tls.crt`/`tls.key`; the plugin accepts only client certificates signed by the CA (`ca.crt`).
 * Secrets that are missing, do not match or are within 30 days of expiry are replaced by a new set. Several replicas
 * starting at once: writes are guarded (create, or replace at the resourceVersion read), and a replica that loses a race
 * reads again what the winner wrote.
 */
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { DynamicStorageError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { issueCertificate } from '../../shared/x509.ts';

export interface PluginTlsSecrets {
  namespace: string;
  /** Secret with the serving certificate (tls.crt = certificate + CA, tls.key, ca.crt). */
  serverSecret: string;
  /** Secret with the operator's client certificate (tls.crt, tls.key, ca.crt). */
  clientSecret: string;
  /** The plugin Service's name: the operator checks it in the serving certificate unless `cnpg.io/pluginServerName` says otherwise. */
  serviceName: string;
}

export interface PluginTls {
  /** The serving certificate followed by the CA. */
  certPem: string;
  keyPem: string;
  /** The CA client certificates must be signed by. */
  clientCaPem: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const validityMs = 5 * 365 * DAY_MS;
const renewBeforeMs = 30 * DAY_MS;
const caName = 'cnpg-dynamic-storage-plugin-ca';

/** The names in the serving certificate: the Service's short name (what the operator checks) and its DNS names. */
export function pluginDnsNames(serviceName: string, namespace: string): string[] {
  return [serviceName, `${serviceName}.${namespace}`, `${serviceName}.${namespace}.svc`, `${serviceName}.${namespace}.svc.cluster.local`];
}

type Data = Record<string, string> | undefined;
const decode = (data: Data, key: string): string | undefined => (data?.[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8'));
const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** Pure: whether the two Secrets hold a matching set (same CA, names, usable well past `now`); the TLS material if so. */
export function usablePluginTls(server: Data, client: Data, serviceName: string, now: Date): PluginTls | undefined {
  const caPem = decode(server, 'ca.crt');
  const certPem = decode(server, 'tls.crt');
  const keyPem = decode(server, 'tls.key');
  const clientPem = decode(client, 'tls.crt');
  if (!caPem || !certPem || !keyPem || !clientPem || !decode(client, 'tls.key') || decode(client, 'ca.crt') !== caPem) return undefined;
  try {
    const ca = new X509Certificate(caPem);
    const serving = new X509Certificate(certPem);
    const operator = new X509Certificate(clientPem);
    const horizon = now.getTime() + renewBeforeMs;
    const signed = (cert: X509Certificate): boolean => cert.checkIssued(ca) && cert.verify(ca.publicKey) && Date.parse(cert.validTo) > horizon;
    if (!signed(serving) || !signed(operator) || Date.parse(ca.validTo) <= horizon) return undefined;
    if (serving.checkHost(serviceName) !== serviceName) return undefined;
    return { certPem, keyPem, clientCaPem: caPem };
  } catch {
    return undefined;
  }
}

/** Pure but for the keys it generates: a new CA, serving and client certificate, as the two Secrets' data. */
export function newPluginTlsData(serviceName: string, namespace: string, now: Date): { server: Record<string, string>; client: Record<string, string> } {
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime() + validityMs);
  const ca = { ...issueCertificate({ commonName: caName, notBefore, notAfter }), commonName: caName };
  const serving = issueCertificate({ commonName: serviceName, dnsNames: pluginDnsNames(serviceName, namespace), notBefore, notAfter, issuer: ca });
  const operator = issueCertificate({ commonName: 'cnpg-operator', notBefore, notAfter, issuer: ca, usage: 'client' });
  return {
    server: { 'ca.crt': b64(ca.certPem), 'tls.crt': b64(serving.certPem + ca.certPem), 'tls.key': b64(serving.keyPem) },
    client: { 'ca.crt': b64(ca.certPem), 'tls.crt': b64(operator.certPem), 'tls.key': b64(operator.keyPem) },
  };
}

function isCode(err: unknown, ...codes: number[]): boolean {
  return err instanceof k8s.ApiException && codes.includes(err.code);
}

async function readSecret(core: k8s.CoreV1Api, namespace: string, name: string): Promise<k8s.V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (isCode(err, 404)) return undefined;
    throw err;
  }
}

/** Creates the Secret, or replaces it at the resourceVersion read; false when another writer came first. */
async function writeSecret(core: k8s.CoreV1Api, namespace: string, existing: k8s.V1Secret | undefined, name: string, data: Record<string, string>): Promise<boolean> {
  const metadata = { name, namespace, labels: { 'app.kubernetes.io/part-of': 'cnpg-dynamic-storage' } };
  try {
    if (existing) await core.replaceNamespacedSecret({ name, namespace, body: { apiVersion: 'v1', kind: 'Secret', metadata: existing.metadata, type: existing.type ?? 'kubernetes.io/tls', data } });
    else await core.createNamespacedSecret({ namespace, body: { metadata, type: 'kubernetes.io/tls', data } });
    return true;
  } catch (err) {
    if (isCode(err, 409)) return false;
    throw err;
  }
}

/** Makes sure both Secrets hold a usable, matching set and returns what the plugin serves with. */
export async function ensurePluginTls(kubeConfig: k8s.KubeConfig, secrets: PluginTlsSecrets, now: Date, log: Logger, attempts = 5): Promise<PluginTls> {
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const { namespace, serverSecret, clientSecret, serviceName } = secrets;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    // A replica that lost a race waits for the winner to write the second Secret.
    if (attempt > 0) await sleep(500 * attempt);
    const server = await readSecret(core, namespace, serverSecret);
    const client = await readSecret(core, namespace, clientSecret);
    const usable = usablePluginTls(server?.data, client?.data, serviceName, now);
    if (usable) return usable;
    if (attempt === 0 && (server === undefined) !== (client === undefined)) continue;
    const data = newPluginTlsData(serviceName, namespace, now);
    if (!await writeSecret(core, namespace, server, serverSecret, data.server)) continue;
    if (!await writeSecret(core, namespace, client, clientSecret, data.client)) continue;
    log.info('wrote the CNPG-I plugin\'s certificates', { serverSecret, clientSecret, serviceName });
    return { certPem: Buffer.from(data.server['tls.crt'] ?? '', 'base64').toString('utf8'), keyPem: Buffer.from(data.server['tls.key'] ?? '', 'base64').toString('utf8'), clientCaPem: Buffer.from(data.server['ca.crt'] ?? '', 'base64').toString('utf8') };
  }
  throw new DynamicStorageError('PluginCertificatesUnavailable', `the Secrets ${namespace}/${serverSecret} and ${clientSecret} did not settle on one certificate set after ${attempts} attempts`);
}

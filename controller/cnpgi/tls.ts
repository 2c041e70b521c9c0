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
import * as k8s from '@kubernetes/client-node';
import { DynamicStorageError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { sleep } from '../../shared/sleep.ts';
import { issueCertificate } from '../../shared/x509.ts';
import { base64, DAY_MS, decodeKey, newCertificateAuthority, readSecret, serviceDnsNames, signedAndFresh, writeSecret, type SecretData } from '../tls-secret.ts';

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

const validityMs = 5 * 365 * DAY_MS;
const renewBeforeMs = 30 * DAY_MS;
const caName = 'cnpg-dynamic-storage-plugin-ca';

/** Pure: whether the two Secrets hold a matching set (same CA, names, usable well past `now`); the TLS material if so. */
export function usablePluginTls(server: SecretData, client: SecretData, serviceName: string, now: Date): PluginTls | undefined {
  const caPem = decodeKey(server, 'ca.crt');
  const certPem = decodeKey(server, 'tls.crt');
  const keyPem = decodeKey(server, 'tls.key');
  const clientPem = decodeKey(client, 'tls.crt');
  if (!caPem || !certPem || !keyPem || !clientPem || !decodeKey(client, 'tls.key') || decodeKey(client, 'ca.crt') !== caPem) return undefined;
  const horizon = now.getTime() + renewBeforeMs;
  if (!signedAndFresh(certPem, caPem, horizon, serviceName) || !signedAndFresh(clientPem, caPem, horizon)) return undefined;
  return { certPem, keyPem, clientCaPem: caPem };
}

/** Pure but for the keys it generates: a new CA, serving and client certificate, as the two Secrets' data. */
export function newPluginTlsData(serviceName: string, namespace: string, now: Date): { server: Record<string, string>; client: Record<string, string> } {
  const ca = newCertificateAuthority(caName, now, validityMs);
  const { notBefore, notAfter } = ca;
  const serving = issueCertificate({ commonName: serviceName, dnsNames: serviceDnsNames(serviceName, namespace), notBefore, notAfter, issuer: ca });
  const operator = issueCertificate({ commonName: 'cnpg-operator', notBefore, notAfter, issuer: ca, usage: 'client' });
  return {
    server: { 'ca.crt': base64(ca.certPem), 'tls.crt': base64(serving.certPem + ca.certPem), 'tls.key': base64(serving.keyPem) },
    client: { 'ca.crt': base64(ca.certPem), 'tls.crt': base64(operator.certPem), 'tls.key': base64(operator.keyPem) },
  };
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

/**
 * Traffic to the agents is encrypted without a manual step: the controller keeps a CA and a serving certificate for the
 * agents in a Secret of its own namespace (type kubernetes.io/tls, with ca.crt), which the agent DaemonSet mounts. The
 * agents serve HTTPS with it; the controller connects to each agent pod's IP, checks the certificate against that CA and
 * the name in it (the agents' Service DNS name), so a pod that only pretends to be an agent cannot answer.
 *
 * A Secret that is missing, incomplete, unreadable or within 30 days of expiry is replaced by a new pair (a new CA too:
 * nothing else trusts it). Several replicas starting at once: the first create wins, the others read what it wrote.
 */
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../shared/log.ts';
import { issueCertificate } from '../shared/x509.ts';

export interface AgentTlsSecret {
  namespace: string;
  /** The Secret's name (default cnpg-dynamic-storage-agent-tls). */
  name: string;
  /** The DNS name in the agents' certificate, which the controller checks (the agents' Service name). */
  serverName: string;
}

export interface AgentTrust {
  caPem: string;
  serverName: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates are made for 5 years and replaced when fewer than 30 days are left. */
const validityMs = 5 * 365 * DAY_MS;
const renewBeforeMs = 30 * DAY_MS;

/** Pure: whether the Secret's data holds a CA and a certificate it signed for `serverName`, valid well past `now`. */
export function usableAgentTls(data: Record<string, string> | undefined, serverName: string, now: Date): boolean {
  const decode = (key: string): string | undefined => (data?.[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8'));
  const caPem = decode('ca.crt');
  const certPem = decode('tls.crt');
  if (!caPem || !certPem || !decode('tls.key')) return false;
  try {
    const ca = new X509Certificate(caPem);
    const cert = new X509Certificate(certPem);
    const horizon = now.getTime() + renewBeforeMs;
    return cert.checkIssued(ca) && cert.verify(ca.publicKey) && cert.checkHost(serverName) === serverName
      && Date.parse(cert.validTo) > horizon && Date.parse(ca.validTo) > horizon;
  } catch {
    return false;
  }
}

/** Pure but for the keys it generates: a new CA and serving certificate for `serverName`, as Secret data. */
export function newAgentTlsData(serverName: string, now: Date): Record<string, string> {
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime() + validityMs);
  const ca = { ...issueCertificate({ commonName: 'cnpg-dynamic-storage-agent-ca', notBefore, notAfter }), commonName: 'cnpg-dynamic-storage-agent-ca' };
  const serving = issueCertificate({ commonName: serverName, dnsNames: [serverName], notBefore, notAfter, issuer: ca });
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  return { 'ca.crt': b64(ca.certPem), 'tls.crt': b64(serving.certPem), 'tls.key': b64(serving.keyPem) };
}

function isCode(err: unknown, code: number): boolean {
  return err instanceof k8s.ApiException && err.code === code;
}

/** Makes sure the Secret holds a usable pair and returns the CA to trust. Never writes a Secret that is usable. */
export async function ensureAgentTls(kubeConfig: k8s.KubeConfig, secret: AgentTlsSecret, now: Date, log: Logger): Promise<AgentTrust> {
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const { namespace, name, serverName } = secret;
  const trust = (data: Record<string, string> | undefined): AgentTrust => ({ caPem: Buffer.from(data?.['ca.crt'] ?? '', 'base64').toString('utf8'), serverName });
  let existing: k8s.V1Secret | undefined;
  try {
    existing = await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (!isCode(err, 404)) throw err;
  }
  if (existing && usableAgentTls(existing.data, serverName, now)) return trust(existing.data);
  const data = newAgentTlsData(serverName, now);
  const metadata = { name, namespace, labels: { 'app.kubernetes.io/part-of': 'cnpg-dynamic-storage' } };
  if (existing) {
    existing.data = data;
    await core.replaceNamespacedSecret({ name, namespace, body: existing });
    log.info('replaced the agents\' TLS certificate', { secret: name, serverName });
    return trust(data);
  }
  try {
    await core.createNamespacedSecret({ namespace, body: { metadata, type: 'kubernetes.io/tls', data } });
    log.info('created the agents\' TLS certificate', { secret: name, serverName });
    return trust(data);
  } catch (err) {
    // Another replica created it first: use theirs.
    if (!isCode(err, 409)) throw err;
    return trust((await core.readNamespacedSecret({ name, namespace })).data);
  }
}

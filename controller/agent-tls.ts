/**
 * Traffic to the agents is encrypted without a manual step: the controller keeps a CA and a serving certificate for the
 * agents in a Secret of its own namespace (type kubernetes.io/tls, with ca.crt), which the agent DaemonSet mounts. The
 * agents serve HTTPS with it; the controller connects to each agent pod's IP, checks the certificate against that CA and
 * the name in it (the agents' Service DNS name), so a pod that only pretends to be an agent cannot answer.
 *
 * A Secret that is missing, incomplete, unreadable or within 30 days of expiry is replaced by a new pair (a new CA too:
 * nothing else trusts it). Several replicas starting at once: the first create wins, the others read what it wrote.
 */
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../shared/log.ts';
import { issueCertificate } from '../shared/x509.ts';
import { base64, DAY_MS, decodeKey, newCertificateAuthority, readSecret, signedAndFresh, writeSecret, type SecretData } from './tls-secret.ts';

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

/** Certificates are made for 5 years and replaced when fewer than 30 days are left. */
const validityMs = 5 * 365 * DAY_MS;
const renewBeforeMs = 30 * DAY_MS;

/** Pure: whether the Secret's data holds a CA and a certificate it signed for `serverName`, valid well past `now`. */
export function usableAgentTls(data: SecretData, serverName: string, now: Date): boolean {
  const caPem = decodeKey(data, 'ca.crt');
  const certPem = decodeKey(data, 'tls.crt');
  if (!caPem || !certPem || !decodeKey(data, 'tls.key')) return false;
  return signedAndFresh(certPem, caPem, now.getTime() + renewBeforeMs, serverName);
}

/** Pure but for the keys it generates: a new CA and serving certificate for `serverName`, as Secret data. */
export function newAgentTlsData(serverName: string, now: Date): Record<string, string> {
  const ca = newCertificateAuthority('cnpg-dynamic-storage-agent-ca', now, validityMs);
  const serving = issueCertificate({ commonName: serverName, dnsNames: [serverName], notBefore: ca.notBefore, notAfter: ca.notAfter, issuer: ca });
  return { 'ca.crt': base64(ca.certPem), 'tls.crt': base64(serving.certPem), 'tls.key': base64(serving.keyPem) };
}

/** Makes sure the Secret holds a usable pair and returns the CA to trust. Never writes a Secret that is usable. */
export async function ensureAgentTls(kubeConfig: k8s.KubeConfig, secret: AgentTlsSecret, now: Date, log: Logger): Promise<AgentTrust> {
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const { namespace, name, serverName } = secret;
  const trust = (data: SecretData): AgentTrust => ({ caPem: decodeKey(data, 'ca.crt') ?? '', serverName });
  const existing = await readSecret(core, namespace, name);
  if (existing && usableAgentTls(existing.data, serverName, now)) return trust(existing.data);
  const data = newAgentTlsData(serverName, now);
  if (await writeSecret(core, namespace, existing, name, data)) {
    log.info(existing ? 'replaced the agents\' TLS certificate' : 'created the agents\' TLS certificate', { secret: name, serverName });
    return trust(data);
  }
  // Another replica wrote it first: use theirs.
  return trust((await core.readNamespacedSecret({ name, namespace })).data);
}

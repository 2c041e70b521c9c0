/**
 * What the controller's three certificate Secrets have in common (the agents', controller/agent-tls.ts; the CNPG-I
 * plugin's, controller/cnpgi/tls.ts; the admission webhooks', controller/webhook-tls.ts): reading their base64 data,
 * checking that a certificate was signed by a CA and stays valid past a horizon, and writing a Secret guarded against a
 * concurrent writer (create, or replace at the resourceVersion read), so that replicas starting at once settle on one set.
 */
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { isApiCode } from '../shared/errors.ts';
import { issueCertificate, type IssuedCertificate } from '../shared/x509.ts';

export type SecretData = Record<string, string> | undefined;

export const DAY_MS = 24 * 60 * 60 * 1000;

/** The labels every Secret the controller makes carries. */
export const secretLabels = { 'app.kubernetes.io/part-of': 'cnpg-dynamic-storage' } as const;

/** A key of a Secret's data, decoded; undefined when absent. */
/** A Service's names, from the short one (what CloudNativePG checks for a plugin) to the cluster-local DNS name. */
export function serviceDnsNames(serviceName: string, namespace: string): string[] {
  return [serviceName, `${serviceName}.${namespace}`, `${serviceName}.${namespace}.svc`, `${serviceName}.${namespace}.svc.cluster.local`];
}

export function decodeKey(data: SecretData, key: string): string | undefined {
  return data?.[key] === undefined ? undefined : Buffer.from(data[key], 'base64').toString('utf8');
}

export function base64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** The PEM blocks of a bundle (a CA file may hold several certificates), in order. */
export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((b) => (b.endsWith('\n') ? b : `${b}\n`)) ?? [];
}

/**
 * Pure: whether `cert` was signed by `ca`, and both stay valid past `horizon` (ms since the epoch); with `name`, whether
 * the certificate is for that name too. Anything that does not parse is not usable.
 */
export function signedAndFresh(certPem: string, caPem: string, horizon: number, name?: string): boolean {
  try {
    const ca = new X509Certificate(caPem);
    const cert = new X509Certificate(certPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (Date.parse(cert.validTo) <= horizon || Date.parse(ca.validTo) <= horizon) return false;
    return name === undefined || cert.checkHost(name) === name;
  } catch {
    return false;
  }
}

/** A new self-signed CA valid from an hour before `now` for `validityMs`, with the name certificates it signs need. */
export function newCertificateAuthority(commonName: string, now: Date, validityMs: number): IssuedCertificate & { commonName: string; notBefore: Date; notAfter: Date } {
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime() + validityMs);
  return { ...issueCertificate({ commonName, notBefore, notAfter }), commonName, notBefore, notAfter };
}

/** The Secret, or undefined when there is none. */
export async function readSecret(core: k8s.CoreV1Api, namespace: string, name: string): Promise<k8s.V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (isApiCode(err, 404)) return undefined;
    throw err;
  }
}

/** Creates the Secret, or replaces `existing` at the resourceVersion read; false when another writer came first. */
export async function writeSecret(core: k8s.CoreV1Api, namespace: string, existing: k8s.V1Secret | undefined, name: string, data: Record<string, string>): Promise<boolean> {
  try {
    if (existing) {
      await core.replaceNamespacedSecret({ name, namespace, body: { apiVersion: 'v1', kind: 'Secret', metadata: existing.metadata, type: existing.type ?? 'kubernetes.io/tls', data } });
    } else {
      await core.createNamespacedSecret({ namespace, body: { metadata: { name, namespace, labels: { ...secretLabels } }, type: 'kubernetes.io/tls', data } });
    }
    return true;
  } catch (err) {
    if (isApiCode(err, 409)) return false;
    throw err;
  }
}

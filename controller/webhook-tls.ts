/**
 * The admission webhooks' certificate without cert-manager, as CloudNativePG does for its own webhooks: the controller
 * keeps a CA and a serving certificate for the webhook Service's DNS names in a Secret of its namespace (made at the
 * first start, the same machinery as the agents' and the plugin's: controller/tls-secret.ts), serves the webhooks with
 * it, and keeps `caBundle` of the product's MutatingWebhookConfiguration and ValidatingWebhookConfiguration (named in
 * the configuration) equal to the Secret's CA, putting back a hand-edited one.
 *
 * Every replica serves the webhooks and checks the Secret and both configurations periodically (idempotent: all read the
 * same Secret). A certificate within 30 days of expiry is replaced by a new CA and certificate; the Secret's `ca.crt`
 * keeps the previous CA after the new one until it expires, so a replica still serving the previous certificate until
 * its next check is trusted too. Only webhook entries whose clientConfig names the product's Service get the bundle;
 * nothing else of the configurations is written.
 */
import * as k8s from '@kubernetes/client-node';
import { DynamicStorageError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { issueCertificate } from '../shared/x509.ts';
import { isApiCode } from '../shared/errors.ts';
import { base64, DAY_MS, decodeKey, newCertificateAuthority, pemBlocks, readSecret, serviceDnsNames, signedAndFresh, writeSecret, type SecretData } from './tls-secret.ts';

export interface WebhookTlsOptions {
  namespace: string;
  /** The Secret the controller keeps (default cnpg-dynamic-storage-webhook-server). */
  secret: string;
  /** The webhook Service: its DNS names are in the certificate; entries naming it get the caBundle. */
  serviceName: string;
  /** The product's MutatingWebhookConfiguration and ValidatingWebhookConfiguration, by name. */
  mutatingConfiguration: string;
  validatingConfiguration: string;
}

export interface WebhookTls {
  certPem: string;
  keyPem: string;
  /** What the API server must trust: the current CA, then the previous one while it is valid. */
  caBundlePem: string;
}

/** Certificates are made for a year and replaced when fewer than 30 days are left. */
export const webhookCertValidityMs = 365 * DAY_MS;
export const webhookCertRenewBeforeMs = 30 * DAY_MS;
const caName = 'cnpg-dynamic-storage-webhook-ca';

/** Pure: the Secret's pair when it is usable well past `now` for the Service's `.svc` name. */
export function usableWebhookTls(data: SecretData, serviceName: string, namespace: string, now: Date): WebhookTls | undefined {
  const caBundlePem = decodeKey(data, 'ca.crt');
  const certPem = decodeKey(data, 'tls.crt');
  const keyPem = decodeKey(data, 'tls.key');
  const [caPem] = pemBlocks(caBundlePem ?? '');
  if (!caBundlePem || !caPem || !certPem || !keyPem) return undefined;
  if (!signedAndFresh(certPem, caPem, now.getTime() + webhookCertRenewBeforeMs, `${serviceName}.${namespace}.svc`)) return undefined;
  return { certPem, keyPem, caBundlePem };
}

/** Pure: the CAs of a bundle still valid at `now` (the previous CA kept through a renewal). */
function stillValid(bundlePem: string | undefined, now: Date): string[] {
  return pemBlocks(bundlePem ?? '').filter((pem) => signedAndFresh(pem, pem, now.getTime()));
}

/** Pure but for the keys it generates: a new CA and serving certificate; `ca.crt` keeps the previous CA while valid. */
export function newWebhookTlsData(serviceName: string, namespace: string, now: Date, previousBundlePem?: string): Record<string, string> {
  const ca = newCertificateAuthority(caName, now, webhookCertValidityMs);
  const serving = issueCertificate({
    commonName: `${serviceName}.${namespace}.svc`, dnsNames: serviceDnsNames(serviceName, namespace), notBefore: ca.notBefore, notAfter: ca.notAfter, issuer: ca,
  });
  const [previous] = stillValid(previousBundlePem, now);
  return { 'ca.crt': base64(ca.certPem + (previous ?? '')), 'tls.crt': base64(serving.certPem), 'tls.key': base64(serving.keyPem) };
}

/** Makes sure the Secret holds a usable pair and returns it. Never writes a Secret that is usable. */
export async function ensureWebhookTls(kubeConfig: k8s.KubeConfig, options: WebhookTlsOptions, now: Date, log: Logger, attempts = 3): Promise<WebhookTls> {
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const { namespace, secret, serviceName } = options;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const existing = await readSecret(core, namespace, secret);
    const usable = usableWebhookTls(existing?.data, serviceName, namespace, now);
    if (usable) return usable;
    const data = newWebhookTlsData(serviceName, namespace, now, decodeKey(existing?.data, 'ca.crt'));
    // Lost to another replica: read what it wrote.
    if (!await writeSecret(core, namespace, existing, secret, data)) continue;
    log.info(existing ? 'renewed the webhook certificate' : 'created the webhook certificate', { secret, serviceName });
    return { certPem: decodeKey(data, 'tls.crt') ?? '', keyPem: decodeKey(data, 'tls.key') ?? '', caBundlePem: decodeKey(data, 'ca.crt') ?? '' };
  }
  throw new DynamicStorageError('WebhookCertificateUnavailable', `the Secret ${namespace}/${secret} did not settle on one certificate after ${attempts} attempts`);
}

export type CaBundlePatchOperation = { op: 'test'; path: string; value: string } | { op: 'add'; path: string; value: string };

interface WebhookEntry {
  name: string;
  clientConfig?: { caBundle?: string; service?: { name: string; namespace: string } };
}

/**
 * Pure: the JSON patch that sets `caBundle` on the entries of a webhook configuration that call the product's Service,
 * each guarded by a test of the entry's name (an entry added or removed meanwhile makes the patch fail rather than
 * write elsewhere); undefined when they all hold it already.
 */
export function caBundlePatch(webhooks: readonly WebhookEntry[] | undefined, service: { name: string; namespace: string }, caBundlePem: string): CaBundlePatchOperation[] | undefined {
  const value = base64(caBundlePem);
  const ops: CaBundlePatchOperation[] = [];
  (webhooks ?? []).forEach((hook, i) => {
    const target = hook.clientConfig?.service;
    if (target?.name !== service.name || target.namespace !== service.namespace || hook.clientConfig?.caBundle === value) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: hook.name }, { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value });
  });
  return ops.length > 0 ? ops : undefined;
}

type Kind = 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration';

async function readConfiguration(api: k8s.AdmissionregistrationV1Api, kind: Kind, name: string): Promise<{ webhooks?: WebhookEntry[] } | undefined> {
  try {
    return kind === 'MutatingWebhookConfiguration' ? await api.readMutatingWebhookConfiguration({ name }) : await api.readValidatingWebhookConfiguration({ name });
  } catch (err) {
    if (isApiCode(err, 404)) return undefined;
    throw err;
  }
}

/**
 * Puts the bundle on both configurations where it is missing or differs. A configuration that does not exist is
 * skipped (an install without the webhooks). Returns the kinds patched.
 */
export async function syncCaBundles(kubeConfig: k8s.KubeConfig, options: WebhookTlsOptions, caBundlePem: string, log: Logger): Promise<Kind[]> {
  const api = kubeConfig.makeApiClient(k8s.AdmissionregistrationV1Api);
  const service = { name: options.serviceName, namespace: options.namespace };
  const patched: Kind[] = [];
  const targets: [Kind, string][] = [['MutatingWebhookConfiguration', options.mutatingConfiguration], ['ValidatingWebhookConfiguration', options.validatingConfiguration]];
  for (const [kind, name] of targets) {
    const current = await readConfiguration(api, kind, name);
    const ops = current && caBundlePatch(current.webhooks, service, caBundlePem);
    if (!ops) continue;
    const header = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);
    if (kind === 'MutatingWebhookConfiguration') await api.patchMutatingWebhookConfiguration({ name, body: ops }, header);
    else await api.patchValidatingWebhookConfiguration({ name, body: ops }, header);
    log.info('set the webhook configuration\'s caBundle', { kind, name, webhooks: ops.length / 2 });
    patched.push(kind);
  }
  return patched;
}

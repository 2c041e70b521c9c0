import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { pemBlocks, serviceDnsNames } from '../../../controller/tls-secret.ts';
import {
  caBundlePatch, newWebhookTlsData, usableWebhookTls, webhookCertRenewBeforeMs, webhookCertValidityMs,
} from '../../../controller/webhook-tls.ts';

const now = new Date('2026-03-01T00:00:00Z');
const decode = (data: Record<string, string>, key: string): string => Buffer.from(data[key] ?? '', 'base64').toString('utf8');
const service = { name: 'cnpg-dynamic-storage-webhook', namespace: 'cnpg-system' };

describe('webhook certificate (controller-kept)', () => {
  const data = newWebhookTlsData(service.name, service.namespace, now);

  it('makes a CA and a serving certificate for the Service DNS names, usable until 30 days before expiry', () => {
    const cert = new X509Certificate(decode(data, 'tls.crt'));
    for (const name of serviceDnsNames(service.name, service.namespace)) assert.equal(cert.checkHost(name), name);
    assert.equal(cert.checkHost('elsewhere.cnpg-system.svc'), undefined);
    const tls = usableWebhookTls(data, service.name, service.namespace, now);
    assert.ok(tls);
    assert.equal(pemBlocks(tls.caBundlePem).length, 1);
    const expiry = now.getTime() + webhookCertValidityMs;
    assert.ok(usableWebhookTls(data, service.name, service.namespace, new Date(expiry - webhookCertRenewBeforeMs - 60_000)));
    assert.equal(usableWebhookTls(data, service.name, service.namespace, new Date(expiry - webhookCertRenewBeforeMs + 60_000)), undefined, 'renewed before expiry');
  });

  it('refuses a Secret that is incomplete, for another Service, or whose certificate another CA signed', () => {
    assert.equal(usableWebhookTls(undefined, service.name, service.namespace, now), undefined);
    assert.equal(usableWebhookTls({ ...data, 'tls.key': '' }, service.name, service.namespace, now), undefined);
    assert.equal(usableWebhookTls(data, 'other', service.namespace, now), undefined);
    const other = newWebhookTlsData(service.name, service.namespace, now);
    assert.equal(usableWebhookTls({ ...data, 'ca.crt': other['ca.crt'] ?? '' }, service.name, service.namespace, now), undefined);
  });

  it('keeps the previous CA after the new one through a renewal, and drops it once expired', () => {
    const later = new Date(now.getTime() + webhookCertValidityMs - webhookCertRenewBeforeMs + 1);
    const renewed = newWebhookTlsData(service.name, service.namespace, later, decode(data, 'ca.crt'));
    const [current, previous, extra] = pemBlocks(decode(renewed, 'ca.crt'));
    assert.equal(extra, undefined);
    assert.equal(previous, decode(data, 'ca.crt'));
    assert.ok(new X509Certificate(decode(renewed, 'tls.crt')).checkIssued(new X509Certificate(current ?? '')));
    assert.ok(usableWebhookTls(renewed, service.name, service.namespace, later));
    const muchLater = new Date(now.getTime() + webhookCertValidityMs + 1);
    assert.equal(pemBlocks(decode(newWebhookTlsData(service.name, service.namespace, muchLater, decode(renewed, 'ca.crt')), 'ca.crt')).length, 2,
      'the expired CA is gone; the one before keeps its place while valid');
  });

  it('patches caBundle only on the entries that call the product\'s Service, guarded by their names', () => {
    const bundle = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    const value = Buffer.from(bundle).toString('base64');
    const webhooks = [
      { name: 'other.example.com', clientConfig: { service: { name: 'other', namespace: 'cnpg-system' }, caBundle: 'eA==' } },
      { name: 'url.example.com', clientConfig: { caBundle: 'eA==' } },
      { name: 'pvc.dynamicstorage.cnpg.io', clientConfig: { service, caBundle: 'aGFuZC1lZGl0ZWQ=' } },
      { name: 'dynamicstorage.dynamicstorage.cnpg.io', clientConfig: { service: { ...service, namespace: 'elsewhere' } } },
    ];
    assert.deepEqual(caBundlePatch(webhooks, service, bundle), [
      { op: 'test', path: '/webhooks/2/name', value: 'pvc.dynamicstorage.cnpg.io' },
      { op: 'add', path: '/webhooks/2/clientConfig/caBundle', value },
    ]);
    assert.equal(caBundlePatch([{ name: 'pvc.dynamicstorage.cnpg.io', clientConfig: { service, caBundle: value } }], service, bundle), undefined, 'nothing to do');
    assert.equal(caBundlePatch(undefined, service, bundle), undefined);
  });
});

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { issueCertificate } from '../../../shared/x509.ts';
import { newAgentTlsData, usableAgentTls } from '../../../controller/agent-tls.ts';

describe('shared/x509: a CA and serving certificates without openssl', () => {
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 365 * 24 * 3600_000);
  const ca = { ...issueCertificate({ commonName: 'test-ca', notBefore, notAfter }), commonName: 'test-ca' };
  const serving = issueCertificate({ commonName: 'agent', dnsNames: ['agent.cnpg-system.svc'], notBefore, notAfter, issuer: ca });

  it('issues a CA and a serving certificate that Node parses and verifies', () => {
    const caCert = new X509Certificate(ca.certPem);
    const leaf = new X509Certificate(serving.certPem);
    assert.equal(caCert.ca, true);
    assert.equal(leaf.ca, false);
    assert.ok(caCert.verify(caCert.publicKey), 'self-signed');
    assert.ok(leaf.verify(caCert.publicKey), 'signed by the CA');
    assert.ok(leaf.checkIssued(caCert));
    assert.equal(leaf.checkHost('agent.cnpg-system.svc'), 'agent.cnpg-system.svc');
    assert.equal(leaf.checkHost('other.example'), undefined);
    assert.equal(leaf.subjectAltName, 'DNS:agent.cnpg-system.svc');
    assert.equal(leaf.issuer, 'CN=test-ca');
  });

  it('serves TLS that a client trusting only the CA accepts for the name, and refuses for another name', async () => {
    const server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) => { res.end('ok'); });
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
    const { port } = server.address() as AddressInfo;
    const get = (servername: string): Promise<string> => new Promise((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, ca: ca.certPem, servername, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => { body += chunk.toString(); });
        res.on('end', () => { resolve(body); });
      }).on('error', reject);
    });
    try {
      assert.equal(await get('agent.cnpg-system.svc'), 'ok');
      await assert.rejects(get('other.example'), /Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID/);
    } finally {
      server.close();
    }
  });
});

describe('controller/agent-tls: when the agents\' Secret needs a new pair', () => {
  const serverName = 'cnpg-dynamic-storage-agent.cnpg-system.svc';
  const now = new Date('2026-03-01T00:00:00Z');
  const data = newAgentTlsData(serverName, now);

  it('keeps a pair that is complete, signed by its CA, for the name, and valid for more than 30 days', () => {
    assert.equal(usableAgentTls(data, serverName, now), true);
    assert.equal(usableAgentTls(data, serverName, new Date(now.getTime() + 4 * 365 * 24 * 3600_000)), true);
  });

  it('replaces one near expiry, for another name, incomplete, or whose certificate another CA signed', () => {
    assert.equal(usableAgentTls(data, serverName, new Date(now.getTime() + (5 * 365 - 29) * 24 * 3600_000)), false, 'within 30 days of expiry');
    assert.equal(usableAgentTls(data, 'other.cnpg-system.svc', now), false);
    assert.equal(usableAgentTls({ ...data, 'tls.key': '' }, serverName, now), false);
    assert.equal(usableAgentTls({ ...data, 'ca.crt': newAgentTlsData(serverName, now)['ca.crt'] ?? '' }, serverName, now), false);
    assert.equal(usableAgentTls({ ...data, 'tls.crt': Buffer.from('garbage').toString('base64') }, serverName, now), false);
    assert.equal(usableAgentTls(undefined, serverName, now), false);
  });
});

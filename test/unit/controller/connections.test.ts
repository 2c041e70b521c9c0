import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { optionsKey, reuseConnections } from '../../../controller/kube/connections.ts';
import { issueCertificate } from '../../../shared/x509.ts';

/** An HTTPS server answering every request with an empty namespace list, counting the TLS connections made to it. */
async function fakeApiServer(): Promise<{ url: string; caPem: string; connections: () => number; close: () => Promise<void> }> {
  const now = Date.now();
  const ca = issueCertificate({ commonName: 'test-ca', notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
  const serving = issueCertificate({
    commonName: 'localhost', dnsNames: ['localhost'], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000),
    issuer: { ...ca, commonName: 'test-ca' },
  });
  let connections = 0;
  const server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ apiVersion: 'v1', kind: 'NamespaceList', metadata: {}, items: [] }));
  });
  server.on('secureConnection', () => { connections += 1; });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://localhost:${port}`, caPem: ca.certPem, connections: () => connections,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
}

function kubeConfigFor(url: string, caPem: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false }],
    users: [{ name: 'u', token: 'secret' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('reuseConnections', () => {
  it('sends sequential API requests over a pool of connections (client-node alone opens one per request)', async () => {
    const server = await fakeApiServer();
    try {
      const plain = kubeConfigFor(server.url, server.caPem).makeApiClient(k8s.CoreV1Api);
      for (let i = 0; i < 5; i += 1) await plain.listNamespace();
      const withoutReuse = server.connections();

      const kc = kubeConfigFor(server.url, server.caPem);
      assert.equal(reuseConnections(kc), true);
      assert.equal(reuseConnections(kc), true, 'idempotent');
      const core = kc.makeApiClient(k8s.CoreV1Api);
      for (let i = 0; i < 20; i += 1) await core.listNamespace();
      // One pool: a second connection may open while the first is still being released, never one per request.
      assert.ok(server.connections() - withoutReuse <= 2, `${server.connections() - withoutReuse} connections for 20 requests`);
      assert.ok(withoutReuse >= 5, `client-node's own behavior changed: ${withoutReuse} connections for 5 requests`);
    } finally {
      await server.close();
    }
  });

  it('keys the pool on the server and the TLS material', () => {
    const cluster = { server: 'https://a', proxyUrl: undefined, skipTLSVerify: false };
    assert.equal(optionsKey(cluster, { ca: Buffer.from('x') }), optionsKey(cluster, { ca: Buffer.from('x') }));
    assert.notEqual(optionsKey(cluster, { ca: Buffer.from('x') }), optionsKey(cluster, { ca: Buffer.from('y') }));
    assert.notEqual(optionsKey(cluster, {}), optionsKey({ ...cluster, server: 'https://b' }, {}));
  });
});

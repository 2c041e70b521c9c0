/**
 * cert-manager renews the webhook's certificate in place (the Secret's files change under the running controller): the
 * webhook serves the new one without a restart.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { startWebhookServer, type WebhookServer } from '../../../controller/webhook.ts';
import { silentLogger } from '../../harness/log.ts';
import { startControlPlane, type ControlPlane, type TlsMaterial } from '../../harness/controlplane.ts';
import { eventually } from '../../harness/eventually.ts';

function servedSerial(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber ?? '';
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

describe('webhook certificate renewal', function () {
  let plane: ControlPlane;
  let dir: string;
  let server: WebhookServer | undefined;

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    dir = await mkdtemp(path.join(os.tmpdir(), 'webhook-cert-'));
  });

  after(async function () {
    this.timeout(60_000);
    await server?.close();
    await rm(dir, { recursive: true, force: true });
    await plane.stop();
  });

  it('serves a renewed certificate without a restart', async () => {
    const first: TlsMaterial = await plane.servingCertificate('webhook-first');
    const renewed: TlsMaterial = await plane.servingCertificate('webhook-renewed');
    const certFile = path.join(dir, 'tls.crt');
    const keyFile = path.join(dir, 'tls.key');
    await writeFile(certFile, first.certPem);
    await writeFile(keyFile, first.keyPem);
    server = await startWebhookServer({
      host: '127.0.0.1', port: 0, certPem: first.certPem, keyPem: first.keyPem, certFile, keyFile, reloadMs: 100,
      listDynamicStorages: () => Promise.resolve([]), log: silentLogger,
    });
    const port = server.port;
    assert.equal(await servedSerial(port, first.caPem), new X509Certificate(first.certPem).serialNumber);
    await writeFile(keyFile, renewed.keyPem);
    await writeFile(certFile, renewed.certPem);
    await eventually(async () => {
      assert.equal(await servedSerial(port, renewed.caPem), new X509Certificate(renewed.certPem).serialNumber);
    }, { timeoutMs: 5_000 });
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { controllerConfigFromEnv } from '../../../controller/config.ts';
import { InvalidInputError } from '../../../shared/errors.ts';

describe('controllerConfigFromEnv', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-config-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('has working defaults', () => {
    const config = controllerConfigFromEnv({ POD_NAME: 'controller-abc' });
    assert.match(config.identity, /^controller-abc_[0-9a-f-]{36}$/);
    assert.deepEqual(config.leaderElection, {
      enabled: true, namespace: 'cnpg-system', name: 'cnpg-dynamic-storage-controller', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000,
    });
    assert.equal(config.agents.namespace, 'cnpg-system');
    assert.equal(config.agents.scheme, 'https', 'traffic to the agents is encrypted by default');
    assert.deepEqual(config.agents.tlsSecret, { namespace: 'cnpg-system', name: 'cnpg-dynamic-storage-agent-tls', serverName: 'cnpg-dynamic-storage-agent.cnpg-system.svc' });
    assert.equal(config.agents.tlsServerName, 'cnpg-dynamic-storage-agent.cnpg-system.svc');
    assert.equal(config.agents.port, 9100);
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(config.metricsAuth, { tokenAudiences: ['cnpg-dynamic-storage-agent'] }, '/metrics is authenticated by default');
    assert.equal(config.webhook, undefined, 'no webhooks unless asked for: local runs start several controllers on one host');
    assert.deepEqual(controllerConfigFromEnv({ WEBHOOK_CERT_SOURCE: 'secret' }).webhook, {
      host: '0.0.0.0', port: 9443,
      managed: {
        namespace: 'cnpg-system', secret: 'cnpg-dynamic-storage-webhook-server', serviceName: 'cnpg-dynamic-storage-webhook',
        mutatingConfiguration: 'cnpg-dynamic-storage', validatingConfiguration: 'cnpg-dynamic-storage',
      },
    }, 'the webhooks served with the certificate the controller keeps, without cert-manager (as the shipped Deployment asks)');
    assert.equal(config.workers, 2);
    assert.equal(config.resyncMs, 30_000);
    assert.equal(config.readingIntervalMs, 5_000);
  });

  it('lets /metrics accept ordinary ServiceAccount tokens, or turns its authentication off', () => {
    assert.deepEqual(controllerConfigFromEnv({ METRICS_TOKEN_AUDIENCES: '*' }).metricsAuth, { tokenAudiences: [] });
    assert.deepEqual(controllerConfigFromEnv({ METRICS_TOKEN_AUDIENCES: 'a, b' }).metricsAuth, { tokenAudiences: ['a', 'b'] });
    assert.equal(controllerConfigFromEnv({ METRICS_AUTH: 'false' }).metricsAuth, undefined);
  });

  it('reports every problem at once', () => {
    assert.throws(() => controllerConfigFromEnv({ LEADER_ELECT: 'yes', WORKERS: '0', AGENT_SCHEME: 'ftp', LISTEN_ADDRESS: 'nowhere', LOG_LEVEL: 'loud' }), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.equal(err.code, 'InvalidControllerConfig');
      assert.equal(err.message, 'environment: AGENT_SCHEME: "ftp" must be http or https; LOG_LEVEL: "loud" must be debug, info, warn or error; '
        + 'LEADER_ELECT: "yes" must be true or false; WORKERS: "0" must be a whole number from 1 to 64; LISTEN_ADDRESS: "nowhere" must be host:port, or off');
      return true;
    });
  });

  it('takes the webhooks\' certificate from the controller, from files (cert-manager), or serves none', () => {
    const named = controllerConfigFromEnv({ WEBHOOK_CERT_SOURCE: 'secret', POD_NAMESPACE: 'ops', WEBHOOK_SECRET: 's', WEBHOOK_SERVICE: 'svc', WEBHOOK_CONFIGURATION: 'c', WEBHOOK_VALIDATING_CONFIGURATION: 'v' });
    assert.deepEqual(named.webhook?.managed, { namespace: 'ops', secret: 's', serviceName: 'svc', mutatingConfiguration: 'c', validatingConfiguration: 'v' });
    assert.equal(controllerConfigFromEnv({ WEBHOOK_CERT_SOURCE: 'off' }).webhook, undefined);
    assert.equal(controllerConfigFromEnv({ WEBHOOK_CERT_SOURCE: 'files', WEBHOOK_CERT_DIR: dir }).webhook, undefined, 'files not there yet: no webhooks');
    assert.throws(() => controllerConfigFromEnv({ WEBHOOK_CERT_SOURCE: 'cert-manager' }), /WEBHOOK_CERT_SOURCE: "cert-manager" must be secret, files or off/);
    assert.throws(() => controllerConfigFromEnv({ WEBHOOK_CERT_SOURCE: 'files' }), /WEBHOOK_CERT_DIR: must name the directory/);
  });

  it('serves the webhook only when the certificate directory holds a certificate and key', async () => {
    assert.equal(controllerConfigFromEnv({ WEBHOOK_CERT_DIR: dir }).webhook, undefined);
    await writeFile(path.join(dir, 'tls.crt'), 'CERT');
    await writeFile(path.join(dir, 'tls.key'), 'KEY');
    assert.deepEqual(controllerConfigFromEnv({ WEBHOOK_CERT_DIR: dir, WEBHOOK_ADDRESS: '127.0.0.1:9443' }).webhook,
      { host: '127.0.0.1', port: 9443, certPem: 'CERT', keyPem: 'KEY', certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') });
  });
});

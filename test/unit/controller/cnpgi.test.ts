import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createLogger } from '../../../shared/log.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';
import { clusterKeyOf, loadCnpgiServices, pluginName, protoFiles, protoLoaderOptions, startPluginServer, type PluginServer } from '../../../controller/cnpgi/server.ts';
import { blockForCluster } from '../../../controller/cnpgi/status-source.ts';
import { newPluginTlsData, usablePluginTls } from '../../../controller/cnpgi/tls.ts';
import { serviceDnsNames } from '../../../controller/tls-secret.ts';
import type { PluginStatusBlock } from '../../../controller/cluster-status.ts';

const quiet = createLogger({ component: 'test' }, { level: 'error', sink: () => undefined });

describe('CNPG-I: the protocol subset', () => {
  const services = loadCnpgiServices();

  it('has the method paths the operator calls', () => {
    assert.deepEqual(Object.values(services.identity).map((m) => m.path).sort(), [
      '/cnpgi.identity.v1.Identity/GetPluginCapabilities', '/cnpgi.identity.v1.Identity/GetPluginMetadata', '/cnpgi.identity.v1.Identity/Probe',
    ]);
    assert.deepEqual(Object.values(services.operator).map((m) => m.path).sort(), [
      '/cnpgi.operator.v1.Operator/GetCapabilities', '/cnpgi.operator.v1.Operator/SetStatusInCluster',
    ]);
  });

  it('encodes the answers with the protocol\'s field numbers and enum values (exact bytes)', () => {
    const op = services.operator;
    const id = services.identity;
    // OperatorCapabilitiesResult{capabilities: [OperatorCapability{rpc: RPC{type: TYPE_SET_STATUS_IN_CLUSTER = 5}}]}
    assert.deepEqual([...op.GetCapabilities?.responseSerialize({ capabilities: [{ rpc: { type: 'TYPE_SET_STATUS_IN_CLUSTER' } }] }) ?? []], [0x0a, 0x04, 0x0a, 0x02, 0x08, 0x05]);
    // GetPluginCapabilitiesResponse{capabilities: [PluginCapability{service: Service{type: TYPE_OPERATOR_SERVICE = 1}}]}
    assert.deepEqual([...id.GetPluginCapabilities?.responseSerialize({ capabilities: [{ service: { type: 'TYPE_OPERATOR_SERVICE' } }] }) ?? []], [0x0a, 0x04, 0x0a, 0x02, 0x08, 0x01]);
    // SetStatusInClusterResponse{json_status = 1 (bytes)}; ProbeResponse{ready = 1 (bool)}
    assert.deepEqual([...op.SetStatusInCluster?.responseSerialize({ json_status: Buffer.from('{}') }) ?? []], [0x0a, 0x02, 0x7b, 0x7d]);
    assert.deepEqual([...id.Probe?.responseSerialize({ ready: true }) ?? []], [0x08, 0x01]);
    // GetPluginMetadataResponse: name = 1, version = 2, vendor = 10
    assert.deepEqual([...id.GetPluginMetadata?.responseSerialize({ name: 'a', version: 'b', vendor: 'c' }) ?? []], [0x0a, 0x01, 0x61, 0x12, 0x01, 0x62, 0x52, 0x01, 0x63]);
  });

  it('round-trips SetStatusInCluster: the Cluster in, the status JSON out', () => {
    const method = services.operator.SetStatusInCluster;
    assert.ok(method);
    const cluster = Buffer.from(JSON.stringify({ metadata: { namespace: 'db', name: 'pg' } }));
    const request = method.requestDeserialize(method.requestSerialize({ cluster })) as { cluster: Buffer };
    assert.deepEqual(clusterKeyOf(request.cluster), { namespace: 'db', name: 'pg' });
    const block: PluginStatusBlock = { dynamicStorage: 'pg', storageSizing: { data: { state: 'Balanced', effectiveSize: '10Gi' } } };
    const response = method.responseDeserialize(method.responseSerialize({ json_status: Buffer.from(JSON.stringify(block)) })) as { json_status: Buffer };
    assert.deepEqual(JSON.parse(response.json_status.toString('utf8')), block);
    assert.equal(clusterKeyOf(Buffer.from('not json')), undefined);
    assert.equal(clusterKeyOf(Buffer.from('{"metadata":{"name":"pg"}}')), undefined);
  });
});

describe('CNPG-I: the answer for a Cluster', () => {
  const ds = (name: string, cluster: string): DynamicStorage => ({
    metadata: { name, namespace: 'db' }, spec: { cluster: { name: cluster } },
    status: { storageSizing: { data: { state: 'Balanced', effectiveSize: '10Gi', instances: { 'pg-1': { used: '1Gi' } } } } },
  });

  it('comes from the DynamicStorage that names the Cluster, compact', () => {
    assert.deepEqual(blockForCluster([ds('other', 'other'), ds('pg', 'pg')], { namespace: 'db', name: 'pg' }), {
      dynamicStorage: 'pg', storageSizing: { data: { state: 'Balanced', effectiveSize: '10Gi' } },
    });
    assert.deepEqual(blockForCluster([ds('other', 'other')], { namespace: 'db', name: 'pg' }), {
      storageSizing: {}, message: 'no DynamicStorage in namespace db names Cluster pg',
    });
  });
});

describe('CNPG-I: the plugin\'s certificates', () => {
  const now = new Date();

  it('are a CA, a serving certificate for the Service name (followed by the CA) and a client certificate', () => {
    const data = newPluginTlsData('cnpg-dynamic-storage-plugin', 'cnpg-system', now);
    const tls = usablePluginTls(data.server, data.client, 'cnpg-dynamic-storage-plugin', now);
    assert.ok(tls);
    assert.equal((tls.certPem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'serving certificate then CA: the operator trusts what tls.crt holds');
    const client = new X509Certificate(Buffer.from(data.client['tls.crt'] ?? '', 'base64'));
    assert.ok(client.checkIssued(new X509Certificate(tls.clientCaPem)));
    assert.equal(usablePluginTls(data.server, data.client, 'another-service', now), undefined, 'another name');
    const other = newPluginTlsData('cnpg-dynamic-storage-plugin', 'cnpg-system', now);
    assert.equal(usablePluginTls(data.server, other.client, 'cnpg-dynamic-storage-plugin', now), undefined, 'two CAs');
    assert.equal(usablePluginTls(data.server, data.client, 'cnpg-dynamic-storage-plugin', new Date(now.getTime() + 5 * 365 * 86_400_000)), undefined, 'about to expire');
    assert.deepEqual(serviceDnsNames('p', 'ns'), ['p', 'p.ns', 'p.ns.svc', 'p.ns.svc.cluster.local']);
  });
});

describe('CNPG-I: the plugin server over mutual TLS', () => {
  const data = newPluginTlsData('cnpg-dynamic-storage-plugin', 'cnpg-system', new Date());
  const tls = usablePluginTls(data.server, data.client, 'cnpg-dynamic-storage-plugin', new Date());
  const pem = (key: string): Buffer => Buffer.from(data.client[key] ?? '', 'base64');
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFiles, protoLoaderOptions)) as unknown as {
    cnpgi: { identity: { v1: { Identity: grpc.ServiceClientConstructor } }; operator: { v1: { Operator: grpc.ServiceClientConstructor } } };
  };
  const channelOptions = { 'grpc.ssl_target_name_override': 'cnpg-dynamic-storage-plugin', 'grpc.default_authority': 'cnpg-dynamic-storage-plugin' };
  let server: PluginServer;
  const answers = new Map<string, PluginStatusBlock | Error | 'slow'>();
  const clients: grpc.Client[] = [];

  before(async () => {
    assert.ok(tls);
    server = await startPluginServer({
      host: '127.0.0.1', port: 0, tls, version: '0.1.0', log: quiet, statusTimeoutMs: 200,
      statusFor: async (key) => {
        const answer = answers.get(`${key.namespace}/${key.name}`);
        if (answer === 'slow') {
          await new Promise<void>((resolve) => { setTimeout(resolve, 1_000); });
          return undefined;
        }
        if (answer instanceof Error) throw answer;
        return answer;
      },
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.close();
  });

  function call<T>(client: grpc.Client, method: string, request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      (client as unknown as Record<string, (r: object, o: object, cb: (err: grpc.ServiceError | null, res: T) => void) => void>)[method]?.(request, { deadline: Date.now() + 5_000 }, (err, res) => {
        if (err) reject(err); else resolve(res);
      });
    });
  }
  function clients2(credentials: grpc.ChannelCredentials): { identity: grpc.Client; operator: grpc.Client } {
    const target = `127.0.0.1:${server.port}`;
    const identity = new pkg.cnpgi.identity.v1.Identity(target, credentials, channelOptions);
    const operator = new pkg.cnpgi.operator.v1.Operator(target, credentials, channelOptions);
    clients.push(identity, operator);
    return { identity, operator };
  }

  it('answers the operator\'s calls with the client certificate', async () => {
    const { identity, operator } = clients2(grpc.credentials.createSsl(Buffer.from(tls?.clientCaPem ?? ''), pem('tls.key'), pem('tls.crt')));
    const metadata = await call<{ name: string; version: string }>(identity, 'GetPluginMetadata', {});
    assert.equal(metadata.name, pluginName);
    assert.equal(metadata.version, '0.1.0');
    assert.deepEqual(await call(identity, 'GetPluginCapabilities', {}), { capabilities: [{ service: { type: 'TYPE_OPERATOR_SERVICE' }, type: 'service' }] });
    assert.deepEqual(await call(identity, 'Probe', {}), { ready: true });
    assert.deepEqual(await call(operator, 'GetCapabilities', {}), { capabilities: [{ rpc: { type: 'TYPE_SET_STATUS_IN_CLUSTER' }, type: 'rpc' }] });

    const block: PluginStatusBlock = { dynamicStorage: 'pg', storageSizing: { data: { state: 'Emergency' } } };
    answers.set('db/pg', block);
    const cluster = (name: string): Buffer => Buffer.from(JSON.stringify({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { namespace: 'db', name } }));
    const answer = await call<{ json_status: Buffer }>(operator, 'SetStatusInCluster', { cluster: cluster('pg') });
    assert.deepEqual(JSON.parse(answer.json_status.toString('utf8')), block);

    answers.set('db/broken', new Error('the API server is away'));
    answers.set('db/slow', 'slow');
    for (const name of ['broken', 'slow', 'unknown']) {
      const empty = await call<{ json_status: Buffer }>(operator, 'SetStatusInCluster', { cluster: cluster(name) });
      assert.equal(empty.json_status.length, 0, `${name}: no change, never an error (an error stops the operator's reconcile)`);
    }
    await assert.rejects(call(operator, 'SetStatusInCluster', { cluster: Buffer.from('[]') }), (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT);
  });

  it('refuses a client without a certificate, or with one of another CA', async () => {
    const anonymous = clients2(grpc.credentials.createSsl(Buffer.from(tls?.clientCaPem ?? '')));
    await assert.rejects(call(anonymous.identity, 'Probe', {}), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    const other = newPluginTlsData('cnpg-dynamic-storage-plugin', 'cnpg-system', new Date());
    const stranger = clients2(grpc.credentials.createSsl(Buffer.from(tls?.clientCaPem ?? ''), Buffer.from(other.client['tls.key'] ?? '', 'base64'), Buffer.from(other.client['tls.crt'] ?? '', 'base64')));
    await assert.rejects(call(stranger.identity, 'Probe', {}), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  });
});

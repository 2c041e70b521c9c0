import assert from 'node:assert/strict';
import { agentConfigFromEnv, parseDurationMs } from '../../../agent/config.ts';
import { InvalidInputError } from '../../../shared/errors.ts';

describe('agent config', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(agentConfigFromEnv({ NODE_NAME: 'node-a' }), {
      nodeName: 'node-a', kubeletRoot: '/var/lib/kubelet', probeIntervalMs: 1000, listenHost: '0.0.0.0', listenPort: 9100,
      heartbeatMs: 5000, authCacheTtlMs: 10_000, tokenAudiences: ['cnpg-dynamic-storage-agent'], statfs: 'koffi', processMetrics: false, logLevel: 'info',
    });
  });

  it('reads every setting', () => {
    const config = agentConfigFromEnv({
      NODE_NAME: 'n', KUBELET_ROOT: '/host/kubelet', PROBE_INTERVAL: '250ms', LISTEN_HOST: '::', LISTEN_PORT: '0',
      TLS_CERT_FILE: '/tls/tls.crt', TLS_KEY_FILE: '/tls/tls.key', HEARTBEAT_INTERVAL: '2s', AUTH_CACHE_TTL: '0',
      TOKEN_AUDIENCES: 'a, b', STATFS: 'node', PROCESS_METRICS: 'true', LOG_LEVEL: 'debug',
    });
    assert.deepEqual(config, {
      nodeName: 'n', kubeletRoot: '/host/kubelet', probeIntervalMs: 250, listenHost: '::', listenPort: 0,
      tls: { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' }, heartbeatMs: 2000, authCacheTtlMs: 0, tokenAudiences: ['a', 'b'],
      statfs: 'node', processMetrics: true, logLevel: 'debug',
    });
  });

  it('reports every problem at once', () => {
    assert.throws(() => agentConfigFromEnv({ PROBE_INTERVAL: '10ms', LISTEN_PORT: 'x', TLS_CERT_FILE: '/c', STATFS: 'fast', LOG_LEVEL: 'loud' }), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.equal(err.code, 'InvalidAgentConfig');
      assert.equal(err.message, 'environment: NODE_NAME: required (set it from the downward API: spec.nodeName); ' +
        'LISTEN_PORT: "x" is not a port number; TLS_CERT_FILE, TLS_KEY_FILE: set both or neither; ' +
        'PROBE_INTERVAL: "10ms" is not a duration of at least 50ms (e.g. 500ms, 1s); STATFS: "fast" is not one of koffi, node; ' +
        'LOG_LEVEL: "loud" is not one of debug, info, warn, error');
      return true;
    });
  });

  for (const [text, ms] of [['1s', 1000], ['1.5s', 1500], ['200ms', 200], ['200', 200], ['2m', 120_000], ['x', undefined], ['-1s', undefined]] as const) {
    it(`parses duration ${text}`, () => { assert.equal(parseDurationMs(text), ms); });
  }
});

/**
 * Two controller processes (controller/main.ts, as the Deployment runs them) against a real API server: one leads, the
 * other waits; the leader hands over on SIGTERM; a leader that loses its Lease exits instead of acting as a second one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { applyCrds } from '../../harness/crds.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { freePort } from '../../harness/ports.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const leaseName = 'cnpg-dynamic-storage-controller';

interface Replica {
  name: string;
  child: ChildProcess;
  port: number;
  exit: Promise<number | null>;
  output: () => string;
}

describe('controller replicas and leader election', function () {
  let plane: ControlPlane;
  const replicas: Replica[] = [];

  before(async function () {
    this.timeout(180_000);
    plane = await startControlPlane({ controllerManager: false });
    await applyCrds(plane, ['crds/dynamicstorage.cnpg.io_dynamicstorages.yaml', 'test/sim/cnpg-crd.yaml'].map((f) => path.join(repoRoot, f)));
  });

  after(async function () {
    this.timeout(60_000);
    for (const replica of replicas) replica.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exit));
    await plane.stop();
  });

  async function startReplica(name: string): Promise<Replica> {
    const port = await freePort();
    const child = spawn(process.execPath, [path.join(repoRoot, 'controller/main.ts')], {
      env: {
        PATH: process.env.PATH, KUBECONFIG: plane.kubeconfigPath, POD_NAME: name, POD_NAMESPACE: 'default',
        LISTEN_ADDRESS: `127.0.0.1:${port}`, AGENT_SCHEME: 'http', AGENT_SELECTOR: 'app=none', LOG_LEVEL: 'info',
        // Leader election is under test here; /metrics authentication is tested in security/controller-metrics.test.ts.
        METRICS_AUTH: 'false',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code); }));
    const replica = { name, child, port, exit, output: () => output };
    replicas.push(replica);
    return replica;
  }

  async function readyz(replica: Replica): Promise<number> {
    return (await fetch(`http://127.0.0.1:${replica.port}/readyz`)).status;
  }

  async function leading(replica: Replica): Promise<boolean> {
    const text = await (await fetch(`http://127.0.0.1:${replica.port}/metrics`)).text();
    const value = /^cnpg_dynamic_storage_controller_leader (\d)$/m.exec(text)?.[1];
    assert.ok(value !== undefined, 'the leader metric is exposed');
    return value === '1';
  }

  async function holder(): Promise<string | undefined> {
    const lease = await plane.kubeConfig.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: leaseName, namespace: 'default' });
    return lease.spec?.holderIdentity;
  }

  it('leads with one replica, hands over on SIGTERM, and exits when the Lease is taken away', async function () {
    this.timeout(120_000);
    const first = await startReplica('controller-a');
    await eventually(async () => { assert.equal(await leading(first), true); }, { timeoutMs: 30_000 });
    assert.match((await holder()) ?? '', /^controller-a_/);

    // A replica that does not lead is still ready: it serves the PVC webhook.
    const second = await startReplica('controller-b');
    await eventually(async () => { assert.equal(await readyz(second), 200); }, { timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(await leading(second), false);

    first.child.kill('SIGTERM');
    assert.equal(await first.exit, 0, `SIGTERM exits cleanly:\n${first.output()}`);
    const handedOverAt = Date.now();
    await eventually(async () => { assert.equal(await leading(second), true); }, { timeoutMs: 20_000 });
    assert.match((await holder()) ?? '', /^controller-b_/);
    assert.ok(Date.now() - handedOverAt < 10_000, 'the released Lease is taken without waiting for it to expire');

    // Someone else takes the Lease: the leader cannot renew it and must exit rather than carry on.
    const api = plane.kubeConfig.makeApiClient(k8s.CoordinationV1Api);
    const usurp = setInterval(() => {
      void api.readNamespacedLease({ name: leaseName, namespace: 'default' }).then((lease) => {
        lease.spec = { holderIdentity: 'someone-else', renewTime: new k8s.V1MicroTime(), acquireTime: new k8s.V1MicroTime(), leaseDurationSeconds: 60 };
        return api.replaceNamespacedLease({ name: leaseName, namespace: 'default', body: lease });
      }).catch(() => undefined);
    }, 200);
    try {
      assert.equal(await second.exit, 1, `a replica that lost its Lease exits with 1:\n${second.output()}`);
    } finally {
      clearInterval(usurp);
    }
    assert.match(second.output(), /leadership lost; exiting so that only one leader acts/);
  });
});

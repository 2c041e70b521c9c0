import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startControlPlane } from '../../harness/controlplane.ts';
import { simulationMountPoints, startSimulation } from '../../sim/index.ts';
import { createPod, createPvc, waitForRunning } from './helpers.ts';

describe('simulation: teardown when the control plane is already gone', function () {
  it('still unmounts everything and removes its directory, quickly', async function () {
    this.timeout(180_000);
    const controlPlane = await startControlPlane();
    const sim = await startSimulation({ controlPlane, nodes: 1 });
    try {
      const ns = await sim.createNamespace('gone');
      await createPvc(sim, ns, 'data', '64Mi');
      await createPod(sim, ns, 'app', ['data']);
      await waitForRunning(sim, ns, 'app');
      assert.ok(simulationMountPoints().filter((p) => p.startsWith(sim.dir)).length >= 2);
    } finally {
      await controlPlane.stop();
      const started = Date.now();
      await sim.stop();
      assert.ok(Date.now() - started < 15_000, `stop took ${Date.now() - started} ms`);
    }
    assert.deepEqual(simulationMountPoints().filter((p) => p.startsWith(sim.dir)), []);
    assert.equal(existsSync(sim.dir), false);
  });
});

/**
 * Faults of the test CSI driver on the real stack (hack/csi/README.md, "Fault injection"): a file the driver reads on
 * every call, written atomically. Used to hold a resize in flight while the test fails over, switches over or rolls the
 * Cluster, as a slow cloud disk would.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RealStack } from './stack.ts';

export interface CsiFault {
  id?: string;
  kind: 'controllerInfeasible' | 'transientControllerError' | 'stuck' | 'nodeInfeasible' | 'transientNodeError' | 'stuckNode' | 'growthBoundary';
  pvc?: string;
  pvcRegexp?: string;
  volume?: string;
  times?: number;
  size?: string;
  delay?: string;
  message?: string;
  code?: string;
}

function faultsFile(stack: RealStack): string {
  return path.join(stack.settings.STACK_DIR, 'csi', 'volumes', 'faults.json');
}

/** Replaces the driver's faults (an empty list clears them). */
export async function setCsiFaults(stack: RealStack, faults: CsiFault[]): Promise<void> {
  const file = faultsFile(stack);
  const partial = `${file}.${process.pid}.tmp`;
  await writeFile(partial, JSON.stringify({ faults }));
  await rename(partial, file);
}

export async function clearCsiFaults(stack: RealStack): Promise<void> {
  await rm(faultsFile(stack), { force: true });
}

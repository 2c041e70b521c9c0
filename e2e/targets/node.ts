/**
 * The real node as an end-to-end target (`E2E_TARGET=node`): the stack of `hack/node/stack.sh` (a control plane, kubelet,
 * containerd, the test CSI driver on tmpfs with the upstream provisioner and resizer, the real CloudNativePG operator and
 * PostgreSQL), brought up when it is not up, with the product installed from its manifests for the run and removed again.
 *
 * It shares the AKS driver's way of working (the API, kubectl, psql in the instances: e2e/targets/aks.ts). What differs:
 * - MiB-scale volumes (one scenario unit is 1Mi, as on the stand-in) on a class of the test CSI driver with a 1Mi
 *   allocation unit; PostgreSQL fits them with 1 MiB WAL segments and a small WAL budget;
 * - faults go through the test CSI driver's faults file (hack/csi/README.md): a held ControllerExpandVolume for latency,
 *   infeasible expansions, an Azure-like growth boundary of attached disks;
 * - the filesystems are tmpfs (used + available = total) and the timeouts are the node's: kubelet grows a mounted
 *   filesystem on its own pod sync, up to about a minute and a half after the resizer finished.
 */
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { MiB } from '../../shared/quantity.ts';
import { clearCsiFaults, setCsiFaults, type CsiFault } from '../../test/node/csi-faults.ts';
import { removeTestStorageClass, testClassName, testStorageClass } from '../../test/node/fixtures.ts';
import { installProduct, waitForProduct } from '../../test/node/product.ts';
import { startRealStack } from '../../test/node/stack.ts';
import { createRealClusterDriver, runCommand, type RealTargetProfile } from './aks.ts';
import { supported, unsupported, type TargetDriver, type TargetSettings, type TargetSizes, type TargetTimeouts, type Undo } from './index.ts';

/** The test CSI driver's `--filesystem-overhead` default (hack/csi/cmd/csi-tmpfs), and tmpfs's page size. */
const testDriverOverhead = 0.03;
const pageBytes = 4096;

export const nodeSizes: TargetSizes = { unit: MiB, storageClass: testClassName, allocationUnit: MiB, boundaryStorageClass: unsupported(
    "the product knows Azure's 4 TiB boundary from a StorageClass of disk.csi.azure.com; the node's test CSI driver is another provisioner (its growthBoundary fault covers a provider's refusal)",
  ) };

export const nodeTimeouts: TargetTimeouts = {
  clusterReadyMs: 10 * 60_000, resizeMs: 5 * 60_000, stateMs: 2 * 60_000, emergencyGrowMs: 3 * 60_000, podMs: 5 * 60_000, quietMs: 10_000,
  windowLeadMs: 2 * 60_000,
};

/**
 * The faults in force, by the scenario that set them: the driver reads one file, so several faults are written together
 * and each undo removes its own.
 */
class FaultSet {
  private readonly active = new Map<number, CsiFault>();
  private next = 0;
  private readonly write: (faults: CsiFault[]) => Promise<void>;
  constructor(write: (faults: CsiFault[]) => Promise<void>) {
    this.write = write;
  }

  async add(fault: CsiFault): Promise<Undo> {
    const key = this.next;
    this.next += 1;
    this.active.set(key, { id: `e2e-${key}`, ...fault });
    await this.write([...this.active.values()]);
    return async () => {
      if (this.active.delete(key)) await this.write([...this.active.values()]);
    };
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function nodeProfile(faults: FaultSet, onStop: () => Promise<void>): RealTargetProfile {
  return {
    name: 'node',
    sizes: nodeSizes,
    timeouts: nodeTimeouts,
    // Every ControllerExpandVolume is held for `ms`, then carried out; past the resizer's 10 s deadline it is held until
    // the undo, and the resizer's retry then passes.
    latency: supported(async (ms: number): Promise<Undo> => {
      if (ms < 9_000) return faults.add({ kind: 'stuck', delay: `${ms}ms` });
      const undo = await faults.add({ kind: 'stuck' });
      const timer = setTimeout(() => { void undo(); }, ms);
      return async () => { clearTimeout(timer); await undo(); };
    }),
    infeasible: supported((namespace: string) => faults.add({ kind: 'controllerInfeasible', pvcRegexp: `^${escapeRegExp(namespace)}/` })),
    growthBoundary: supported((bytes: number) => faults.add({ kind: 'growthBoundary', size: `${Math.floor(bytes / MiB)}Mi` })),
    tuning: {
      walSegmentSizeMiB: 1,
      walVolume: true,
      // A whole-volume bulk load fits the WAL of an unmanaged WAL volume, so fills can be one step (aks.ts nextFillMiB).
      walVolumeSizeFactor: 4,
      parameters: { min_wal_size: '4MB', max_wal_size: '16MB', wal_keep_size: '0', shared_buffers: '16MB', max_connections: '40' },
    },
    filesystemWithoutReserve: true,
    // The test CSI driver makes each tmpfs 3% smaller than its disk (as ext4's metadata and journal would), in pages.
    filesystemRange: (diskBytes: number) => ({ min: Math.floor((diskBytes * (1 - testDriverOverhead)) / pageBytes) * pageBytes, max: diskBytes }),
    onStop,
  };
}

/**
 * Brings the real stack up (when it is not), installs the product, and returns the driver; stopping removes the product
 * and leaves the stack up for the next file (`make e2e-node` takes it down at the end).
 */
export async function startNodeTarget(settings: TargetSettings): Promise<TargetDriver> {
  const stack = await startRealStack();
  const product = await installProduct(stack);
  await testStorageClass(stack);
  await waitForProduct(stack);
  const faults = new FaultSet((list) => setCsiFaults(stack, list));
  await clearCsiFaults(stack);
  const kubectlDir = path.dirname(stack.kubectlBinary);
  const env = { ...settings.commandEnv, KUBECONFIG: stack.settings.KUBECONFIG_PATH, PATH: `${kubectlDir}:${settings.commandEnv.PATH ?? ''}` };
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(stack.settings.KUBECONFIG_PATH);
  const onStop = async (): Promise<void> => {
    await clearCsiFaults(stack);
    await removeTestStorageClass(stack);
    await product.remove();
  };
  return createRealClusterDriver(kc, { ...settings, kubeconfig: stack.settings.KUBECONFIG_PATH, commandEnv: env }, runCommand(env), nodeProfile(faults, onStop));
}

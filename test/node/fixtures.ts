/**
 * Names the real-node tests share: our images as hack/images/build.sh tags them, and a StorageClass of the test CSI
 * driver (hack/csi/) made for these tests (MiB allocation unit, expansion allowed), removed again afterwards.
 */
import * as k8s from '@kubernetes/client-node';
import type { RealStack } from './stack.ts';

export const images = {
  /** A shell and coreutils, for pods that mount volumes (CNPG instance stand-ins, probes). */
  workload: 'localhost/cnpg-dynamic-storage/workload:test',
} as const;

export const csiDriver = 'tmpfs.csi.test.cnpg.io';
export const testClassName = 'cnpg-ds-node-test-mib';

/** The test StorageClass (created when missing); its name. */
export async function testStorageClass(stack: RealStack): Promise<string> {
  const storage = stack.kubeConfig.makeApiClient(k8s.StorageV1Api);
  try {
    await storage.createStorageClass({
      body: {
        metadata: { name: testClassName, annotations: { 'dynamicstorage.cnpg.io/allocation-unit': '1Mi' } },
        provisioner: csiDriver,
        allowVolumeExpansion: true,
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'WaitForFirstConsumer',
      },
    });
  } catch (err) {
    if (!(err instanceof k8s.ApiException) || err.code !== 409) throw err;
  }
  return testClassName;
}

export async function removeTestStorageClass(stack: RealStack): Promise<void> {
  const storage = stack.kubeConfig.makeApiClient(k8s.StorageV1Api);
  await storage.deleteStorageClass({ name: testClassName }).catch((err: unknown) => {
    if (!(err instanceof k8s.ApiException) || err.code !== 404) throw err;
  });
}

/**
 * What CloudNativePG would create for a one-instance Cluster, on the real node: the Cluster object, the data PVC with
 * CNPG's labels and annotations, and the instance Pod with CNPG's labels and volume name, running our small workload
 * image (a shell and coreutils) instead of PostgreSQL. The real operator runs on the stack too (hack/cnpg/): these
 * Clusters carry its `cnpg.io/reconciliationLoop: disabled` annotation, so it leaves them to the test.
 */
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { repoRoot, waitForPodReady, type RealStack } from './stack.ts';

export const cnpgCrd = path.join(repoRoot, 'test/sim/cnpg-crd.yaml');
export const dataMountPath = '/var/lib/postgresql/data';

export interface InstanceOptions {
  namespace: string;
  cluster: string;
  /** Size of the data PVC, e.g. '64Mi'. */
  size: string;
  storageClass: string;
  image: string;
}

export interface Instance {
  name: string;
  pvc: string;
  pod: k8s.V1Pod;
}

/** CloudNativePG owns what it creates for a Cluster: a controller reference, which is what makes a PVC a member. */
export function clusterOwner(cluster: string, uid: string): k8s.V1OwnerReference {
  return { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: cluster, uid, controller: true, blockOwnerDeletion: true };
}

/** The Cluster CRD: CloudNativePG's own when the operator is installed (the stack's default), else the stand-in's. */
export async function installCnpgCrd(stack: RealStack): Promise<void> {
  const installed = await stack.kubectl(['get', 'crd', 'clusters.postgresql.cnpg.io', '--ignore-not-found', '-o', 'name']);
  if (installed.trim() === '') await stack.kubectl(['apply', '-f', cnpgCrd]);
  await stack.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/clusters.postgresql.cnpg.io']);
}

/** The Cluster, its first instance's data PVC and Pod; resolves once the Pod is Ready (the volume is mounted). */
export async function createInstance(stack: RealStack, options: InstanceOptions): Promise<Instance> {
  const { namespace, cluster, size, storageClass, image } = options;
  const instance = `${cluster}-1`;
  const custom = stack.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const created = await custom.createNamespacedCustomObject({
    group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', namespace,
    body: {
      apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster',
      metadata: { name: cluster, annotations: { 'cnpg.io/reconciliationLoop': 'disabled' } },
      spec: { instances: 1, storage: { size, storageClass } },
    },
  }) as k8s.KubernetesObject;
  const labels = { 'cnpg.io/cluster': cluster, 'cnpg.io/instanceName': instance };
  const ownerReferences = [clusterOwner(cluster, created.metadata?.uid ?? '')];
  await stack.core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: {
        name: instance,
        labels: { ...labels, 'cnpg.io/pvcRole': 'PG_DATA' },
        annotations: { 'cnpg.io/nodeSerial': '1', 'cnpg.io/pvcStatus': 'ready' },
        ownerReferences,
      },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, resources: { requests: { storage: size } } },
    },
  });
  await stack.core.createNamespacedPod({
    namespace,
    body: {
      metadata: {
        name: instance,
        labels: { ...labels, 'cnpg.io/podRole': 'instance', 'cnpg.io/instanceRole': 'primary', role: 'primary' },
        ownerReferences,
      },
      spec: {
        // CNPG runs PostgreSQL as uid 26 with fsGroup 26.
        securityContext: { runAsUser: 26, runAsGroup: 26, fsGroup: 26, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: 'postgres',
          image,
          imagePullPolicy: 'IfNotPresent',
          command: ['sleep', 'infinity'],
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          volumeMounts: [{ name: 'pgdata', mountPath: dataMountPath }],
        }],
        volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: instance } }],
      },
    },
  });
  const pod = await waitForPodReady(stack, namespace, instance, 180_000);
  return { name: instance, pvc: instance, pod };
}

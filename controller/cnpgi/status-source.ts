/**
 * Where the plugin's answer comes from: the DynamicStorage that names the Cluster, read from the API server on each call,
 * so that every replica (leader or not) answers the same. Reads only; the leader's reconcile writes that status.
 */
import * as k8s from '@kubernetes/client-node';
import { dynamicStorageGroup, dynamicStoragePlural, dynamicStorageVersion, type DynamicStorage } from '../../shared/api/dynamicstorage.generated.ts';
import { storageSizingBlock, type PluginStatusBlock } from '../cluster-status.ts';
import type { ClusterKey } from './server.ts';

/** Pure: the block for the Cluster from the DynamicStorage objects of its namespace (the first by name that names it). */
export function blockForCluster(items: readonly DynamicStorage[], cluster: ClusterKey): PluginStatusBlock {
  const managing = items
    .filter((ds) => ds.spec.cluster.name === cluster.name && !ds.metadata?.deletionTimestamp)
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const first = managing[0];
  if (!first) return { storageSizing: {}, message: `no DynamicStorage in namespace ${cluster.namespace} names Cluster ${cluster.name}` };
  return storageSizingBlock(first.metadata?.name ?? '', first.status?.storageSizing);
}

export function dynamicStorageStatusSource(kubeConfig: k8s.KubeConfig): (cluster: ClusterKey) => Promise<PluginStatusBlock> {
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  return async (cluster) => {
    const list = await custom.listNamespacedCustomObject({
      group: dynamicStorageGroup, version: dynamicStorageVersion, plural: dynamicStoragePlural, namespace: cluster.namespace,
    }) as { items: DynamicStorage[] };
    return blockForCluster(list.items, cluster);
  };
}

/** CloudNativePG's names, labels and annotations that this product reads (see CNPG's pkg/utils). */
export const cnpgGroup = 'postgresql.cnpg.io';
export const cnpgVersion = 'v1';
export const cnpgClusterPlural = 'clusters';
export const cnpgClusterKind = 'Cluster';

export const cnpgLabels = {
  cluster: 'cnpg.io/cluster',
  instanceName: 'cnpg.io/instanceName',
  pvcRole: 'cnpg.io/pvcRole',
  tablespaceName: 'cnpg.io/tablespaceName',
} as const;

export const cnpgAnnotations = {
  pvcStatus: 'cnpg.io/pvcStatus',
} as const;

export const pvcRoles = { data: 'PG_DATA', wal: 'PG_WAL', tablespace: 'PG_TABLESPACE' } as const;

/** This product's CNPG-I plugin: the plugin Service's `cnpg.io/pluginName` label and what a Cluster lists under `spec.plugins`. */
export const cnpgiPluginName = 'dynamicstorage.cnpg.io';

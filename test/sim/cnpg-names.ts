/**
 * CloudNativePG's object names, labels and annotations, as stock CNPG writes them (pkg/specs/volumes.go,
 * pkg/reconciler/persistentvolumeclaim/calculator.go, pkg/utils/labels_annotations.go). Pure functions, no client.
 */

export const cnpgGroup = 'postgresql.cnpg.io';
export const cnpgVersion = 'v1';
export const cnpgApiVersion = `${cnpgGroup}/${cnpgVersion}`;

export const labels = {
  cluster: 'cnpg.io/cluster',
  instanceName: 'cnpg.io/instanceName',
  podRole: 'cnpg.io/podRole',
  instanceRole: 'cnpg.io/instanceRole',
  /** Deprecated twin of cnpg.io/instanceRole, still written by CNPG. */
  legacyRole: 'role',
  pvcRole: 'cnpg.io/pvcRole',
  tablespaceName: 'cnpg.io/tablespaceName',
  appName: 'app.kubernetes.io/name',
  appInstance: 'app.kubernetes.io/instance',
  appVersion: 'app.kubernetes.io/version',
  appComponent: 'app.kubernetes.io/component',
  appManagedBy: 'app.kubernetes.io/managed-by',
} as const;

export const annotations = {
  nodeSerial: 'cnpg.io/nodeSerial',
  pvcStatus: 'cnpg.io/pvcStatus',
  operatorVersion: 'cnpg.io/operatorVersion',
  reconciliationLoop: 'cnpg.io/reconciliationLoop',
} as const;

export const pvcRoles = { data: 'PG_DATA', wal: 'PG_WAL', tablespace: 'PG_TABLESPACE' } as const;
export type PvcRole = (typeof pvcRoles)[keyof typeof pvcRoles];

export const pvcStatuses = { initializing: 'initializing', ready: 'ready', detached: 'detached' } as const;

export const managerName = 'cloudnative-pg';
export const appName = 'postgresql';
export const databaseComponent = 'database';

/** Which volume of an instance: its data (PGDATA), its WAL, or one of its tablespaces (by PostgreSQL name). */
export type VolumeRef = 'data' | 'wal' | { tablespace: string };

export function instanceName(cluster: string, serial: number): string {
  return `${cluster}-${serial}`;
}

/** The serial of an instance name (`pg-12` -> 12), or undefined when the name is not `<cluster>-<n>`. */
export function instanceSerial(cluster: string, instance: string): number | undefined {
  if (!instance.startsWith(`${cluster}-`)) return undefined;
  const rest = instance.slice(cluster.length + 1);
  return /^[1-9]\d*$/.test(rest) ? Number(rest) : undefined;
}

/**
 * CNPG's conversion of a PostgreSQL identifier to a Kubernetes name: a leading `_` becomes `1`, `$` becomes `-`, then
 * `_` becomes `-` and everything is lowercased (lossy: `Tbs_A` and `tbs-a` collide). Read the raw name from the
 * `cnpg.io/tablespaceName` label, never from the PVC name.
 */
export function tablespaceK8sName(tablespace: string): string {
  let name = tablespace.startsWith('_') ? `1${tablespace.slice(1)}` : tablespace;
  name = name.replaceAll('$', '-');
  return name.replaceAll('_', '-').toLowerCase();
}

export function pvcName(instance: string, volume: VolumeRef): string {
  if (volume === 'data') return instance;
  if (volume === 'wal') return `${instance}-wal`;
  return `${instance}-tbs-${tablespaceK8sName(volume.tablespace)}`;
}

export function podVolumeName(volume: VolumeRef): string {
  if (volume === 'data') return 'pgdata';
  if (volume === 'wal') return 'pg-wal';
  return `tbs-${tablespaceK8sName(volume.tablespace)}`;
}

export function mountPathInPod(volume: VolumeRef): string {
  if (volume === 'data') return '/var/lib/postgresql/data';
  if (volume === 'wal') return '/var/lib/postgresql/wal';
  return `/var/lib/postgresql/tablespaces/${volume.tablespace}`;
}

export function pvcRoleOf(volume: VolumeRef): PvcRole {
  if (volume === 'data') return pvcRoles.data;
  if (volume === 'wal') return pvcRoles.wal;
  return pvcRoles.tablespace;
}

/** Labels CNPG puts on a PVC it creates (besides inherited metadata). */
export function pvcLabels(cluster: string, instance: string, volume: VolumeRef): Record<string, string> {
  const result: Record<string, string> = {
    [labels.cluster]: cluster,
    [labels.instanceName]: instance,
    [labels.pvcRole]: pvcRoleOf(volume),
    [labels.appManagedBy]: managerName,
    [labels.appName]: appName,
    [labels.appComponent]: databaseComponent,
  };
  if (typeof volume === 'object') result[labels.tablespaceName] = volume.tablespace;
  return result;
}

/** The volume a PVC holds, read from its labels (the tablespace name from its label, never from the PVC name). */
export function volumeOfPvc(pvcLabelMap: Record<string, string> | undefined): VolumeRef | undefined {
  switch (pvcLabelMap?.[labels.pvcRole]) {
    case pvcRoles.data: return 'data';
    case pvcRoles.wal: return 'wal';
    case pvcRoles.tablespace: {
      const tablespace = pvcLabelMap[labels.tablespaceName];
      return tablespace === undefined ? undefined : { tablespace };
    }
    default: return undefined;
  }
}

export function sameVolume(a: VolumeRef, b: VolumeRef): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.tablespace === b.tablespace;
}

export function describeVolume(volume: VolumeRef): string {
  return typeof volume === 'string' ? volume : `tablespace ${volume.tablespace}`;
}

/**
 * Checks of a DynamicStorage against the CNPG Cluster it names: the Cluster exists, has the WAL storage and tablespaces
 * the policy manages, and its own sizes (which CNPG creates new volumes at) lie within [request, limit].
 */
import { compareQuantities, isQuantity } from './quantity-exact.ts';
import { omitValue, problem, ValidationCodes, type ValidationProblem } from './problems.ts';
import type { PolicyLocation } from './validate.ts';
import { isObject } from '../../shared/objects.ts';

type Json = Record<string, unknown>;

/** The parts of a CNPG Cluster (postgresql.cnpg.io/v1) these checks read. */
export interface CnpgStorageConfiguration {
  size?: string;
  pvcTemplate?: { resources?: { requests?: { storage?: string } } };
}

export interface CnpgCluster {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: {
    storage?: CnpgStorageConfiguration;
    walStorage?: CnpgStorageConfiguration;
    tablespaces?: { name: string; storage?: CnpgStorageConfiguration }[];
  };
}

/** The size CNPG creates new volumes at: `size`, else the PVC template's storage request. */
export function clusterVolumeSize(storage: CnpgStorageConfiguration | undefined): string | undefined {
  return storage?.size ?? storage?.pvcTemplate?.resources?.requests?.storage;
}

function clusterStorageFor(cluster: CnpgCluster, location: PolicyLocation): { storage: CnpgStorageConfiguration | undefined; field: string } {
  if (location.path === 'spec.storage') return { storage: cluster.spec?.storage, field: 'spec.storage.size' };
  if (location.path === 'spec.walStorage') return { storage: cluster.spec?.walStorage, field: 'spec.walStorage.size' };
  const tablespaces = cluster.spec?.tablespaces ?? [];
  const index = tablespaces.findIndex((t) => t.name === location.tablespaceName);
  return { storage: tablespaces[index]?.storage, field: `spec.tablespaces[${index}].storage.size` };
}

function checkSizeWithinBounds(cluster: CnpgCluster, location: PolicyLocation): ValidationProblem[] {
  const { storage, field } = clusterStorageFor(cluster, location);
  const size = clusterVolumeSize(storage);
  const { request, limit } = location.policy;
  if (size === undefined || !isQuantity(size)) return [];
  const problems: ValidationProblem[] = [];
  if (typeof request === 'string' && isQuantity(request) && compareQuantities(size, request) < 0) {
    problems.push(problem(`${location.path}.request`, ValidationCodes.ClusterSizeBelowRequest, 'Invalid value', omitValue,
      `the Cluster's ${field} (${size}) is below request (${request}); CNPG creates new volumes at that size`));
  }
  if (typeof limit === 'string' && isQuantity(limit) && compareQuantities(size, limit) > 0) {
    problems.push(problem(`${location.path}.limit`, ValidationCodes.ClusterSizeAboveLimit, 'Invalid value', omitValue,
      `the Cluster's ${field} (${size}) is above limit (${limit})`));
  }
  return problems;
}

function checkRoleExists(cluster: CnpgCluster, clusterName: string, location: PolicyLocation): ValidationProblem | undefined {
  if (location.path === 'spec.walStorage' && cluster.spec?.walStorage === undefined) {
    return problem('spec.walStorage', ValidationCodes.WalStorageNotConfigured, 'Invalid value', omitValue,
      `the Cluster "${clusterName}" has no spec.walStorage, so there are no WAL volumes to manage`);
  }
  if (location.tablespaceName !== undefined && !(cluster.spec?.tablespaces ?? []).some((t) => t.name === location.tablespaceName)) {
    return problem(`spec.tablespaces[${location.tablespaceIndex ?? 0}].name`, ValidationCodes.TablespaceNotFound, 'Not found', location.tablespaceName,
      `the Cluster "${clusterName}" has no tablespace "${location.tablespaceName}" in spec.tablespaces`);
  }
  return undefined;
}

/** Problems of `spec` (defaulted) against `cluster`; `null` means the Cluster does not exist. */
export function checkAgainstCluster(spec: Json, locations: readonly PolicyLocation[], cluster: CnpgCluster | null, namespace: string): ValidationProblem[] {
  const clusterName = isObject(spec.cluster) && typeof spec.cluster.name === 'string' ? spec.cluster.name : '';
  if (cluster === null) {
    return [problem('spec.cluster.name', ValidationCodes.ClusterNotFound, 'Not found', clusterName,
      `no CNPG Cluster "${clusterName}" in namespace "${namespace}"`)];
  }
  const problems: ValidationProblem[] = [];
  for (const location of locations) {
    const missing = checkRoleExists(cluster, clusterName, location);
    if (missing) problems.push(missing);
    else problems.push(...checkSizeWithinBounds(cluster, location));
  }
  return problems;
}

/** The identity of a DynamicStorage as far as "who manages this Cluster first" is concerned. */
export interface ManagerIdentity {
  name: string;
  cluster: string;
  creationTimestamp: string;
}

/** What a DynamicStorage (or anything shaped like one) says about which Cluster it manages, and since when. */
export function managerIdentity(object: { metadata?: { name?: string; creationTimestamp?: string }; spec: { cluster: { name: string } } }): ManagerIdentity {
  return { name: object.metadata?.name ?? '', cluster: object.spec.cluster.name, creationTimestamp: object.metadata?.creationTimestamp ?? '' };
}

/** The order in which DynamicStorages claim a Cluster: the oldest first, then by name. */
export function compareManagers(a: ManagerIdentity, b: ManagerIdentity): number {
  return a.creationTimestamp.localeCompare(b.creationTimestamp) || a.name.localeCompare(b.name);
}

/** The objects that name `cluster`, the one that manages it first (the controller, webhook and plugin agree on it). */
export function managersOf<T extends { metadata?: { name?: string; creationTimestamp?: string }; spec: { cluster: { name: string } } }>(
  objects: readonly T[], cluster: string,
): T[] {
  return objects.filter((o) => o.spec.cluster.name === cluster).sort((a, b) => compareManagers(managerIdentity(a), managerIdentity(b)));
}

/**
 * One DynamicStorage per Cluster: two policies for the same volumes would fight. The oldest one (by creation time, then
 * name) keeps the Cluster; every later one is invalid until it is deleted or pointed elsewhere.
 */
export function checkSingleManager(self: ManagerIdentity, siblings: readonly ManagerIdentity[]): ValidationProblem[] {
  const first = siblings
    .filter((s) => s.name !== self.name && s.cluster === self.cluster && compareManagers(s, self) < 0)
    .sort(compareManagers)[0];
  if (first === undefined) return [];
  return [problem('spec.cluster.name', ValidationCodes.ClusterAlreadyManaged, 'Duplicate value', self.cluster,
    `the Cluster is already managed by DynamicStorage "${first.name}"; only one DynamicStorage may manage a Cluster`)];
}

/**
 * CloudNativePG's vocabulary as this product reads it (names, labels and annotations; see CNPG's pkg/utils), and the
 * volume slots of a DynamicStorage: which of the Cluster's volumes each policy sizes, where the policy and its status
 * sit, and which PVCs belong to it. Pure; shared by the controller, the webhook, the plugin and the agent, so that the
 * walk over data, WAL and tablespaces is written once.
 */
import type {
  DynamicStorageSpec,
  StorageSizingStatus,
  VolumePolicy,
  VolumeSizingStatus,
} from './api/dynamicstorage.generated.ts';
import { isObject } from './objects.ts';

export { maintenanceWindowDefaults } from './api/dynamicstorage.generated.ts';

export const cnpgGroup = 'postgresql.cnpg.io';
export const cnpgVersion = 'v1';
export const cnpgClusterPlural = 'clusters';
export const cnpgClusterKind = 'Cluster';

export const cnpgLabels = {
  cluster: 'cnpg.io/cluster',
  instanceName: 'cnpg.io/instanceName',
  pvcRole: 'cnpg.io/pvcRole',
  tablespaceName: 'cnpg.io/tablespaceName',
  podRole: 'cnpg.io/podRole',
} as const;

/** The instance a PVC belongs to: CNPG's `cnpg.io/instanceName` label, else the PVC's name (CNPG names it after the instance). */
export function instanceOfPvc(pvc: { metadata?: { name?: string | undefined; labels?: Record<string, string> | undefined } | undefined }): string {
  return pvc.metadata?.labels?.[cnpgLabels.instanceName] ?? pvc.metadata?.name ?? '';
}

export const cnpgAnnotations = {
  pvcStatus: 'cnpg.io/pvcStatus',
} as const;

/** This product's CNPG-I plugin: the plugin Service's `cnpg.io/pluginName` label and what a Cluster lists under `spec.plugins`. */
export const cnpgiPluginName = 'dynamicstorage.cnpg.io';

/** What a volume holds, from CNPG's `cnpg.io/pvcRole` label. */
export type VolumeRole = 'data' | 'wal' | 'tablespace';
export const volumeRoles: readonly VolumeRole[] = ['data', 'wal', 'tablespace'];

/** The `cnpg.io/pvcRole` label of each role. */
export const pvcRoles = { data: 'PG_DATA', wal: 'PG_WAL', tablespace: 'PG_TABLESPACE' } as const satisfies Record<VolumeRole, string>;

/** The role a `cnpg.io/pvcRole` label names; undefined for any other value. */
export function roleOfPvcRole(label: string | undefined): VolumeRole | undefined {
  return volumeRoles.find((role) => pvcRoles[role] === label);
}

/** One volume of a Cluster: a role, and a tablespace's name. */
export interface VolumeSlotId {
  readonly role: VolumeRole;
  readonly tablespace?: string | undefined;
}

/** `data`, `wal`, `tablespace app`: how messages name a volume. */
export function slotLabel(slot: VolumeSlotId): string {
  return slot.role === 'tablespace' ? `tablespace ${slot.tablespace ?? ''}` : slot.role;
}

/** A key that tells the volumes of one DynamicStorage apart. */
export function slotKey(slot: VolumeSlotId): string {
  return `${slot.role}/${slot.tablespace ?? ''}`;
}

/** The labels that tell a volume's PVCs apart among its Cluster's (with the Cluster's own label: `pvcSelector`). */
export function roleSelector(slot: VolumeSlotId): Readonly<Record<string, string>> {
  const labels: Record<string, string> = { [cnpgLabels.pvcRole]: pvcRoles[slot.role] };
  if (slot.role === 'tablespace' && slot.tablespace !== undefined) labels[cnpgLabels.tablespaceName] = slot.tablespace;
  return labels;
}

/** The label selector of a volume's PVCs in a namespace: CNPG's labels for the Cluster, the role and the tablespace. */
export function pvcSelector(cluster: string, slot: VolumeSlotId): Readonly<Record<string, string>> {
  return { [cnpgLabels.cluster]: cluster, ...roleSelector(slot) };
}

/** True when `labels` hold every label of `selector` with its value. */
export function matchesLabels(labels: Readonly<Record<string, string>> | undefined, selector: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

/** One volume a DynamicStorage sizes: where its policy is, the policy, the status written for it, its PVCs' labels. */
export interface VolumeSlot extends VolumeSlotId {
  /** `data`, `wal`, `tablespace app`: used in messages. */
  readonly label: string;
  /** `spec.storage`, `spec.walStorage`, `spec.tablespaces[0].storage`: used in error messages. */
  readonly field: string;
  readonly policy: VolumePolicy;
  /** The volume's status as last written (`status.storageSizing`). */
  readonly previous: VolumeSizingStatus | undefined;
  /** See `roleSelector`. */
  readonly selector: Readonly<Record<string, string>>;
}

/** Every volume `spec` sizes, in order: data, WAL, then the tablespaces as listed; with its status from `sizing`. */
export function volumeSlots(spec: DynamicStorageSpec, sizing?: StorageSizingStatus): VolumeSlot[] {
  const slot = (id: VolumeSlotId, field: string, policy: VolumePolicy): VolumeSlot => ({
    ...id, label: slotLabel(id), field, policy, previous: readSlot(sizing, id), selector: roleSelector(id),
  });
  const slots: VolumeSlot[] = [];
  if (spec.storage) slots.push(slot({ role: 'data' }, 'spec.storage', spec.storage));
  if (spec.walStorage) slots.push(slot({ role: 'wal' }, 'spec.walStorage', spec.walStorage));
  for (const [index, { name, storage }] of (spec.tablespaces ?? []).entries()) {
    slots.push(slot({ role: 'tablespace', tablespace: name }, `spec.tablespaces[${index}].storage`, storage));
  }
  return slots;
}

type Json = Record<string, unknown>;

/** A volume slot of input that is not known to be a DynamicStorage (what validation and the offline commands read). */
export interface UntypedVolumeSlot {
  readonly role: VolumeRole;
  /** The tablespace's name, when it is a string. */
  readonly tablespace?: string | undefined;
  /** The tablespace's index in `spec.tablespaces`. */
  readonly index?: number | undefined;
  readonly field: string;
  readonly policy: Json;
}

/** `volumeSlots` for unchecked input: only policies that are objects, whatever else the spec holds. */
export function untypedVolumeSlots(spec: unknown): UntypedVolumeSlot[] {
  if (!isObject(spec)) return [];
  const slots: UntypedVolumeSlot[] = [];
  if (isObject(spec.storage)) slots.push({ role: 'data', field: 'spec.storage', policy: spec.storage });
  if (isObject(spec.walStorage)) slots.push({ role: 'wal', field: 'spec.walStorage', policy: spec.walStorage });
  if (Array.isArray(spec.tablespaces)) {
    for (const [index, item] of (spec.tablespaces as unknown[]).entries()) {
      if (!isObject(item) || !isObject(item.storage)) continue;
      const tablespace = typeof item.name === 'string' ? item.name : undefined;
      slots.push({ role: 'tablespace', tablespace, index, field: `spec.tablespaces[${index}].storage`, policy: item.storage });
    }
  }
  return slots;
}

/** The same volume: the role, and for a tablespace its name. */
export function sameSlot(a: VolumeSlotId, b: VolumeSlotId): boolean {
  return a.role === b.role && (a.role !== 'tablespace' || a.tablespace === b.tablespace);
}

/** What `status.storageSizing` and the blocks shaped like it hold: data, WAL, tablespaces by name. */
export interface BySlot<T> {
  data?: T | undefined;
  wal?: T | undefined;
  tablespaces?: Record<string, T> | undefined;
}

/** The value kept for a volume in `sizing` (a volume's status in `status.storageSizing`). */
export function readSlot<T>(sizing: BySlot<T> | undefined, slot: VolumeSlotId): T | undefined {
  if (slot.role === 'data') return sizing?.data;
  if (slot.role === 'wal') return sizing?.wal;
  return sizing?.tablespaces?.[slot.tablespace ?? ''];
}

/** Puts a volume's value in `sizing`. */
export function placeSlot<T>(sizing: BySlot<T>, slot: VolumeSlotId, value: T): void {
  if (slot.role === 'data') sizing.data = value;
  else if (slot.role === 'wal') sizing.wal = value;
  else sizing.tablespaces = { ...sizing.tablespaces, [slot.tablespace ?? '']: value };
}

/** Every volume `sizing` holds a value for: data, WAL, then the tablespaces by name. */
export function slotEntries<T>(sizing: BySlot<T> | undefined): { slot: VolumeSlotId; label: string; value: T }[] {
  const entries: { slot: VolumeSlotId; label: string; value: T }[] = [];
  const add = (slot: VolumeSlotId, value: T | undefined): void => {
    if (value !== undefined) entries.push({ slot, label: slotLabel(slot), value });
  };
  add({ role: 'data' }, sizing?.data);
  add({ role: 'wal' }, sizing?.wal);
  for (const [name, value] of Object.entries(sizing?.tablespaces ?? {}).sort(([a], [b]) => a.localeCompare(b))) add({ role: 'tablespace', tablespace: name }, value);
  return entries;
}

/** The identity of a DynamicStorage as far as "who manages this Cluster first" is concerned. */
export interface ManagerIdentity {
  name: string;
  cluster: string;
  creationTimestamp: string;
}

type ManagerLike = { metadata?: { name?: string; creationTimestamp?: string }; spec: { cluster: { name: string } } };

/** What a DynamicStorage (or anything shaped like one) says about which Cluster it manages, and since when. */
export function managerIdentity(object: ManagerLike): ManagerIdentity {
  return { name: object.metadata?.name ?? '', cluster: object.spec.cluster.name, creationTimestamp: object.metadata?.creationTimestamp ?? '' };
}

/** The order in which DynamicStorages claim a Cluster: the oldest first, then by name. */
export function compareManagers(a: ManagerIdentity, b: ManagerIdentity): number {
  return a.creationTimestamp.localeCompare(b.creationTimestamp) || a.name.localeCompare(b.name);
}

/** The objects that name `cluster`, the one that manages it first (the controller, webhook and plugin agree on it). */
export function managersOf<T extends ManagerLike>(objects: readonly T[], cluster: string): T[] {
  return objects.filter((o) => o.spec.cluster.name === cluster).sort((a, b) => compareManagers(managerIdentity(a), managerIdentity(b)));
}

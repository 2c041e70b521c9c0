/**
 * The node agent's reading contract: what `GET /v1/volumes` returns and what `GET /v1/volumes/watch` streams. The controller
 * and the agent both build on these types, so a change here is an API change: add optional fields only, and bump
 * `agentApiVersion` for anything else.
 *
 * Byte and inode counts are JavaScript numbers (exact up to 8 PiB). Times are RFC 3339 with milliseconds, in UTC.
 */
import { volumeRoles, type VolumeRole } from './cnpg.ts';

import { isObject } from './objects.ts';

export const agentApiVersion = 'agent.dynamicstorage.cnpg.io/v1';

/** Who a volume belongs to and where the agent looks at it. */
export interface VolumeIdentity {
  /** `<namespace>/<pvc>`: unique per node and stable across probes; the key of every event. */
  key: string;
  namespace: string;
  cluster: string;
  /** The CNPG instance name (`<cluster>-<serial>`). */
  instance: string;
  role: VolumeRole;
  /** The raw tablespace name (role `tablespace` only). */
  tablespace?: string;
  pvc: string;
  pv: string;
  podName: string;
  podUid: string;
  node: string;
  /** The mount point probed, as the agent sees it (under its kubelet root). */
  path: string;
}

/**
 * Filesystem usage as `df -B1` and `df -i` report it. The raw statfs numbers (`RawUsage`) are what the controller reads:
 * it computes used and percent itself (`dfUsage`, controller/policy/usage.ts), because raw numbers can be checked
 * against each other (available <= free <= total) and a percentage cannot. The agent still sends the derived fields: its
 * own metrics show them, and controllers of earlier versions require them (agents and controllers are upgraded apart).
 */
export interface FilesystemUsage {
  /** f_blocks x f_frsize. */
  totalBytes: number;
  /** total - free (f_bfree): what is written, including blocks reserved for root. */
  usedBytes: number;
  /** f_bavail x f_frsize: what an unprivileged writer (PostgreSQL) can still use. */
  availableBytes: number;
  /** f_bfree x f_frsize. */
  freeBytes: number;
  /** df's Use%: ceil(used x 100 / (used + available)), an integer 0..100. */
  percentUsed: number;
  inodesTotal: number;
  inodesUsed: number;
  inodesFree: number;
  /** df -i's IUse%: ceil(inodesUsed x 100 / inodesTotal); 0 when the filesystem has no inode limit. */
  inodesPercentUsed: number;
}

/** The statfs numbers a reading carries; the other fields of FilesystemUsage derive from them. */
export type RawUsage = Pick<FilesystemUsage, 'totalBytes' | 'freeBytes' | 'availableBytes' | 'inodesTotal' | 'inodesFree'>;

/** Used bytes and percentages from the raw numbers, as df computes them. */
export function dfUsage(raw: RawUsage): FilesystemUsage {
  const usedBytes = raw.totalBytes - raw.freeBytes;
  const inodesUsed = raw.inodesTotal - raw.inodesFree;
  return {
    totalBytes: raw.totalBytes, usedBytes, availableBytes: raw.availableBytes, freeBytes: raw.freeBytes,
    percentUsed: dfPercent(usedBytes, usedBytes + raw.availableBytes),
    inodesTotal: raw.inodesTotal, inodesUsed, inodesFree: raw.inodesFree,
    inodesPercentUsed: dfPercent(inodesUsed, raw.inodesTotal),
  };
}

export type VolumeStatus = 'ok' | 'error' | 'unsupported';

/** Why a probe failed. `code` is an errno name (ENOENT, EACCES, EIO, ...) or `NotMounted`. */
export interface ProbeError {
  code: string;
  message: string;
}

/** Why a volume is not probed at all. */
export interface UnsupportedReason {
  /** `BlockMode` | `UnsupportedVolumeSource` */
  reason: string;
  message: string;
}

export interface VolumeReading extends VolumeIdentity {
  status: VolumeStatus;
  /** Present when status is `ok`. */
  usage?: FilesystemUsage;
  /** Present when status is `error`. */
  error?: ProbeError;
  /** Present when status is `unsupported`. */
  unsupported?: UnsupportedReason;
  /** When this reading was taken. */
  sampledAt: string;
  /** When the reading last differed from the one before (status, usage, error or identity). */
  changedAt: string;
}

/** `GET /v1/volumes`. */
export interface VolumeList {
  apiVersion: typeof agentApiVersion;
  kind: 'VolumeList';
  node: string;
  /** Identifies this agent process; sequence numbers are only comparable within one epoch. */
  epoch: string;
  /** The sequence number of the last change included. */
  seq: number;
  /** When the last probe pass ended (absent before the first pass). */
  probedAt?: string;
  volumes: VolumeReading[];
}

/** Lines of `GET /v1/volumes/watch` (newline-delimited JSON). The first line is always a SNAPSHOT. */
export type VolumeEvent = SnapshotEvent | UpdatedEvent | RemovedEvent | HeartbeatEvent;

interface EventBase {
  apiVersion: typeof agentApiVersion;
  node: string;
  epoch: string;
  /** Increases by one per change; a SNAPSHOT and a HEARTBEAT carry the latest. */
  seq: number;
}

/** Every volume's latest reading: sent first on every connection, so a reconnecting consumer simply starts over. */
export interface SnapshotEvent extends EventBase {
  type: 'SNAPSHOT';
  volumes: VolumeReading[];
}

/** A volume appeared or its reading changed. */
export interface UpdatedEvent extends EventBase {
  type: 'UPDATED';
  volume: VolumeReading;
}

/** A volume is no longer on this node (its pod went away or moved). */
export interface RemovedEvent extends EventBase {
  type: 'REMOVED';
  key: string;
  identity: VolumeIdentity;
}

/** Sent when nothing else was for a while; lets a consumer tell a quiet stream from a dead one. */
export interface HeartbeatEvent extends EventBase {
  type: 'HEARTBEAT';
  time: string;
}

export class ReadingFormatError extends Error {
  readonly code = 'AgentProtocolError';

  constructor(message: string) {
    super(message);
    this.name = 'ReadingFormatError';
  }
}

function requireString(obj: Record<string, unknown>, field: string, where: string): void {
  if (typeof obj[field] !== 'string') throw new ReadingFormatError(`${where}.${field} must be a string`);
}

function requireNumber(obj: Record<string, unknown>, field: string, where: string): void {
  if (typeof obj[field] !== 'number' || !Number.isFinite(obj[field])) {
    throw new ReadingFormatError(`${where}.${field} must be a finite number`);
  }
}

const identityFields = ['key', 'namespace', 'cluster', 'instance', 'pvc', 'pv', 'podName', 'podUid', 'node', 'path'] as const;
const usageFields = [
  'totalBytes', 'usedBytes', 'availableBytes', 'freeBytes', 'percentUsed',
  'inodesTotal', 'inodesUsed', 'inodesFree', 'inodesPercentUsed',
] as const;
const statuses: readonly string[] = ['ok', 'error', 'unsupported'];

function checkIdentity(value: unknown, where: string): asserts value is VolumeIdentity {
  if (!isObject(value)) throw new ReadingFormatError(`${where} must be an object`);
  for (const field of identityFields) requireString(value, field, where);
  if (!(volumeRoles as readonly unknown[]).includes(value.role)) throw new ReadingFormatError(`${where}.role must be one of ${volumeRoles.join(', ')}`);
  if (value.tablespace !== undefined) requireString(value, 'tablespace', where);
}

function checkReading(value: unknown, where: string): asserts value is VolumeReading {
  checkIdentity(value, where);
  const obj = value as unknown as Record<string, unknown>;
  if (!statuses.includes(obj.status as string)) throw new ReadingFormatError(`${where}.status must be one of ${statuses.join(', ')}`);
  requireString(obj, 'sampledAt', where);
  requireString(obj, 'changedAt', where);
  if (obj.status === 'ok') {
    if (!isObject(obj.usage)) throw new ReadingFormatError(`${where}.usage is required when status is ok`);
    for (const field of usageFields) requireNumber(obj.usage, field, `${where}.usage`);
  } else {
    const detail = obj.status === 'error' ? 'error' : 'unsupported';
    if (!isObject(obj[detail])) throw new ReadingFormatError(`${where}.${detail} is required when status is ${obj.status as string}`);
  }
}

function checkEnvelope(obj: Record<string, unknown>): void {
  if (obj.apiVersion !== agentApiVersion) {
    throw new ReadingFormatError(`apiVersion ${JSON.stringify(obj.apiVersion)} is not ${agentApiVersion}`);
  }
  requireString(obj, 'node', 'event');
  requireString(obj, 'epoch', 'event');
  requireNumber(obj, 'seq', 'event');
}

function checkReadings(value: unknown, where: string): void {
  if (!Array.isArray(value)) throw new ReadingFormatError(`${where} must be an array`);
  value.forEach((reading, i) => { checkReading(reading, `${where}[${i}]`); });
}

/** Validates a decoded `GET /v1/volumes` body. Throws ReadingFormatError. */
export function parseVolumeList(value: unknown): VolumeList {
  if (!isObject(value)) throw new ReadingFormatError('volume list must be an object');
  checkEnvelope(value);
  if (value.kind !== 'VolumeList') throw new ReadingFormatError('kind must be VolumeList');
  checkReadings(value.volumes, 'volumes');
  return value as unknown as VolumeList;
}

/** Validates one decoded line of `GET /v1/volumes/watch`. Throws ReadingFormatError. */
export function parseVolumeEvent(value: unknown): VolumeEvent {
  if (!isObject(value)) throw new ReadingFormatError('event must be an object');
  checkEnvelope(value);
  switch (value.type) {
    case 'SNAPSHOT':
      checkReadings(value.volumes, 'volumes');
      break;
    case 'UPDATED':
      checkReading(value.volume, 'volume');
      break;
    case 'REMOVED':
      requireString(value, 'key', 'event');
      checkIdentity(value.identity, 'identity');
      break;
    case 'HEARTBEAT':
      requireString(value, 'time', 'event');
      break;
    default:
      throw new ReadingFormatError(`unknown event type ${JSON.stringify(value.type)}`);
  }
  return value as unknown as VolumeEvent;
}

/**
 * df's rounding: the smallest integer percentage not below part/whole (0 when whole is 0). Integer arithmetic as gnulib's
 * df does it, so a value just below a whole percentage is never rounded onto it.
 */
export function dfPercent(part: number, whole: number): number {
  if (whole <= 0 || part <= 0) return 0;
  // Not whole numbers (only a broken agent sends those): no exact arithmetic to do.
  if (!Number.isSafeInteger(part) || !Number.isSafeInteger(whole)) return Math.ceil((part * 100) / whole);
  const scaled = BigInt(part) * 100n;
  const total = BigInt(whole);
  return Number(scaled / total) + (scaled % total === 0n ? 0 : 1);
}

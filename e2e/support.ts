/**
 * What every end-to-end scenario needs: one target per test file (the stand-in, a real node or AKS: e2e/targets/), a
 * CNPG Cluster with its DynamicStorage in a namespace of its own, readers for the policy's status, the Cluster's PVCs
 * and events, and metric scrapes. Nothing here knows which target runs: sizes, timeouts, workload, faults and metrics
 * come from the driver.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import type { DynamicStorage, TablespacePolicy, VolumePolicy, VolumeSizingStatus } from '../shared/api/dynamicstorage.generated.ts';
import { parseQuantity } from '../shared/quantity.ts';
import { eventually } from '../test/harness/eventually.ts';
import {
  readTargetSettings, startTarget, unitsQuantity, type Capability, type InstanceVolume, type Role, type StackHints, type TargetDriver, type TargetSettings,
} from './targets/index.ts';
import { roleName, roleSelector } from '../test/node/postgres.ts';

export { sample, scrape } from './targets/metrics.ts';
export type { Role } from './targets/index.ts';

export const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' } as const;

/** The one environment read of the suite: which target, and its kubeconfig. */
let settings: TargetSettings | undefined;
function targetSettings(): TargetSettings {
  settings ??= readTargetSettings(process.env);
  return settings;
}

/** Undone after each test, passed or failed (faults, quotas, clock shifts, recorders). */
const scenarioCleanups: (() => Promise<void>)[] = [];

export function afterScenario(cleanup: () => Promise<void> | void): void {
  scenarioCleanups.push(async () => { await cleanup(); });
}

/** The running target of a test file. */
export type E2E = TargetDriver;

/**
 * Starts the selected target for the test file (mocha `before`) and stops it afterwards (`after`), also when a test
 * failed. The returned function gives the running target inside tests.
 */
export function useTarget(hints: StackHints = {}): () => E2E {
  let e2e: E2E | undefined;
  before(async function () {
    // The real node may have to come up first (built from cold, that takes long; warm, a minute and a half).
    this.timeout(targetSettings().name === 'node' ? 60 * 60_000 : 240_000);
    e2e = await startTarget(targetSettings(), hints);
  });
  afterEach(async function () {
    for (const cleanup of scenarioCleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  after(async function () {
    this.timeout(600_000);
    await e2e?.stop();
  });
  return () => {
    assert.ok(e2e, 'the target is running');
    return e2e;
  };
}

/**
 * What a scenario needs from its target. When the target cannot do it, the reason is printed and the test is skipped
 * (reported as pending, never as passed).
 */
export function need<T>(test: Mocha.Context, e2e: E2E, capability: Capability<T>, what: string): T {
  if (capability.supported) return capability.use;
  console.log(`      skipped on ${e2e.name}: ${what}: ${capability.reason}`);
  return test.skip();
}

/** `n` scenario units as a quantity of the target: `u(e2e, 64)` is 64Mi on the stand-in, 8Gi on AKS. */
export function u(e2e: E2E, n: number): string {
  return unitsQuantity(e2e.sizes, n);
}

/** `n` scenario units in bytes. */
export function ub(e2e: E2E, n: number): number {
  return Math.round(n * e2e.sizes.unit);
}

/** A never-open window: 1 January 03:00 UTC (2 January when today is 1 January). */
export function closedWindow(): { schedule: string; duration: string; timezone: string } {
  const now = new Date();
  return { schedule: now.getUTCMonth() === 0 && now.getUTCDate() === 1 ? '0 3 2 1 *' : '0 3 1 1 *', duration: '1h', timezone: 'UTC' };
}

/**
 * The scenarios' policy, in units of the target: 64-unit volumes, 4 units of critical free space and 8-unit steps
 * (64Mi/4Mi/8Mi on the stand-in, 8Gi/512Mi/1Gi on AKS); `overrides` replace top-level fields.
 */
export function policy(e2e: E2E, overrides: Partial<VolumePolicy> = {}): VolumePolicy {
  return {
    request: u(e2e, 64), limit: u(e2e, 256), targetBuffer: 20,
    ...overrides,
    emergencyGrow: { criticalMinimumFree: u(e2e, 4), ...overrides.emergencyGrow },
    growth: { minimumStep: u(e2e, 8), ...overrides.growth },
  };
}

export interface ScenarioCluster {
  namespace: string;
  /** Cluster and DynamicStorage name. */
  name: string;
}

export interface ClusterOptions {
  name?: string;
  instances?: number;
  /** Size of every volume in the Cluster spec (CNPG creates PVCs at it); 64 units by default. */
  size?: string;
  /** The target's scenario class by default. */
  storageClass?: string;
  walStorage?: boolean;
  tablespaces?: string[];
  storage?: VolumePolicy | undefined;
  wal?: VolumePolicy | undefined;
  tablespacePolicies?: TablespacePolicy[];
}

/** A ready Cluster and its DynamicStorage in a namespace of their own, the data volumes managed by `policy()` by default. */
export async function clusterWithPolicy(e2e: E2E, options: ClusterOptions = {}): Promise<ScenarioCluster> {
  const name = options.name ?? 'pg';
  const namespace = await e2e.createNamespace('e2e');
  await e2e.createCluster(namespace, name, {
    instances: options.instances ?? 1, size: options.size ?? u(e2e, 64), storageClass: options.storageClass ?? e2e.sizes.storageClass,
    walStorage: options.walStorage ?? false, tablespaces: options.tablespaces ?? [],
  });
  const dsSpec: Record<string, unknown> = { cluster: { name } };
  const storage = 'storage' in options ? options.storage : policy(e2e);
  if (storage) dsSpec.storage = storage;
  if (options.wal) dsSpec.walStorage = options.wal;
  if (options.tablespacePolicies) dsSpec.tablespaces = options.tablespacePolicies;
  await e2e.custom.createNamespacedCustomObject({ ...dsApi, namespace, body: {
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name }, spec: dsSpec,
  } });
  return { namespace, name };
}

export async function getDynamicStorage(e2e: E2E, c: ScenarioCluster): Promise<DynamicStorage> {
  return await e2e.custom.getNamespacedCustomObject({ ...dsApi, namespace: c.namespace, name: c.name }) as DynamicStorage;
}

export async function patchPolicy(e2e: E2E, c: ScenarioCluster, spec: Record<string, unknown>): Promise<void> {
  await e2e.custom.patchNamespacedCustomObject({ ...dsApi, namespace: c.namespace, name: c.name, body: { spec } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
}

export function roleStatus(object: DynamicStorage, role: Role): VolumeSizingStatus | undefined {
  const sizing = object.status?.storageSizing;
  if (role === 'data') return sizing?.data;
  if (role === 'wal') return sizing?.wal;
  return sizing?.tablespaces?.[role.tablespace];
}

/** The status of one logical volume (fails when it is not written yet: use inside `eventually`). */
export async function volumeStatus(e2e: E2E, c: ScenarioCluster, role: Role = 'data'): Promise<VolumeSizingStatus> {
  const status = roleStatus(await getDynamicStorage(e2e, c), role);
  assert.ok(status, `status of ${roleName(role)} written`);
  return status;
}

/** Waits for a volume's state (and reason, when given) and returns the status then. */
export async function waitForState(e2e: E2E, c: ScenarioCluster, state: string, options: { role?: Role; reason?: string; timeoutMs?: number } = {}): Promise<VolumeSizingStatus> {
  return eventually(async () => {
    const status = await volumeStatus(e2e, c, options.role ?? 'data');
    assert.equal(status.state, state, `${roleName(options.role ?? 'data')} state (${status.reason ?? ''}: ${status.message ?? ''})`);
    if (options.reason !== undefined) assert.equal(status.reason, options.reason, `${roleName(options.role ?? 'data')} reason (${status.message ?? ''})`);
    return status;
  }, { timeoutMs: options.timeoutMs ?? e2e.timeouts.stateMs, intervalMs: 100 });
}

/** Waits until the volume's `count`-th action (counting every recorded one) has settled, and returns the status. */
export async function waitForActions(e2e: E2E, c: ScenarioCluster, count: number, options: { role?: Role; result?: string; timeoutMs?: number } = {}): Promise<VolumeSizingStatus> {
  return eventually(async () => {
    const status = await volumeStatus(e2e, c, options.role ?? 'data');
    assert.equal(status.recentActions?.length ?? 0, count, `actions of ${roleName(options.role ?? 'data')} (${status.state ?? ''}/${status.reason ?? ''}: ${status.message ?? ''})`);
    assert.notEqual(status.lastAction?.result, 'Pending', 'the last action settled');
    if (options.result !== undefined) assert.equal(status.lastAction?.result, options.result);
    return status;
  }, { timeoutMs: options.timeoutMs ?? e2e.timeouts.resizeMs, intervalMs: 100 });
}

// One definition of a role's name and PVC selector, shared with the node tests.
export { roleName, roleSelector };

export interface PvcSize {
  name: string;
  requested: number;
  capacity: number | undefined;
}

export async function pvcSizes(e2e: E2E, c: ScenarioCluster, role: Role = 'data'): Promise<PvcSize[]> {
  const list = await e2e.core.listNamespacedPersistentVolumeClaim({ namespace: c.namespace, labelSelector: roleSelector(c.name, role) });
  return list.items.map((p) => ({
    name: p.metadata?.name ?? '',
    requested: parseQuantity(p.spec?.resources?.requests?.storage ?? '0'),
    capacity: p.status?.capacity?.storage === undefined ? undefined : parseQuantity(p.status.capacity.storage),
  })).sort((a, b) => a.name.localeCompare(b.name));
}

/** Waits until every PVC of the volume asks for and has more than `size`, and returns their sizes. */
export async function waitForGrowth(e2e: E2E, c: ScenarioCluster, above: number, role: Role = 'data', timeoutMs = e2e.timeouts.resizeMs): Promise<PvcSize[]> {
  return eventually(async () => {
    const sizes = await pvcSizes(e2e, c, role);
    assert.ok(sizes.length > 0 && sizes.every((s) => s.requested > above && s.capacity === s.requested), `every ${roleName(role)} PVC grown past ${above}: ${JSON.stringify(sizes)}`);
    return sizes;
  }, { timeoutMs, intervalMs: 100 });
}

export interface ClusterEvent {
  reason: string;
  type: string;
  message: string;
  count: number;
}

/** Events the controller recorded on the CNPG Cluster. */
export async function clusterEvents(e2e: E2E, c: ScenarioCluster): Promise<ClusterEvent[]> {
  const events = await e2e.core.listNamespacedEvent({ namespace: c.namespace, fieldSelector: `involvedObject.kind=Cluster,involvedObject.name=${c.name}` });
  return events.items
    .filter((e) => e.source?.component === 'cnpg-dynamic-storage' || e.reportingComponent === 'cnpg-dynamic-storage')
    .map((e) => ({ reason: e.reason ?? '', type: e.type ?? '', message: e.message ?? '', count: e.count ?? e.series?.count ?? 1 }));
}

export async function waitForEvent(e2e: E2E, c: ScenarioCluster, reason: string, type?: string): Promise<ClusterEvent> {
  return eventually(async () => {
    const events = await clusterEvents(e2e, c);
    const event = events.find((e) => e.reason === reason && (type === undefined || e.type === type));
    assert.ok(event, `${type ?? ''} event ${reason} on the Cluster (have: ${events.map((e) => `${e.type}/${e.reason}`).join(', ')})`);
    return event;
  }, { timeoutMs: e2e.timeouts.stateMs, intervalMs: 200 });
}

/** One volume of one instance of the Cluster (`instance` is the serial), as a workload target. */
export function instanceTarget(c: ScenarioCluster, instance: number, role: Role = 'data'): InstanceVolume {
  return { namespace: c.namespace, cluster: c.name, instance, role };
}

/** Waits a quiet period of `seconds` on the stand-in, scaled to the target (nothing more should happen meanwhile). */
export function quiet(e2e: E2E, seconds: number): Promise<void> {
  return sleep(seconds * e2e.timeouts.quietMs);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * What every end-to-end scenario needs: one local stack per file, a CNPG Cluster with its DynamicStorage in a namespace
 * of its own, readers for the policy's status, the Cluster's PVCs and events, a PVC size recorder, and metric scrapes.
 */
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { agentAudience } from '../controller/agent-token.ts';
import type { DynamicStorage, TablespacePolicy, VolumePolicy, VolumeSizingStatus } from '../shared/api/dynamicstorage.generated.ts';
import { parseQuantity } from '../shared/quantity.ts';
import { eventually } from '../test/harness/eventually.ts';
import type { ClusterSpec } from '../test/sim/index.ts';
import { startLocalStack, systemNamespace, type LocalStack, type LocalStackOptions } from '../test/stack/index.ts';

export const dsApi = { group: 'dynamicstorage.cnpg.io', version: 'v1alpha1', plural: 'dynamicstorages' } as const;
export const storageClass = 'managed-csi-mib';

/** A logical volume of a Cluster: data, WAL, or one tablespace. */
export type Role = 'data' | 'wal' | { tablespace: string };

/** Undone after each test, passed or failed (faults, quotas, clock shifts, recorders). */
const scenarioCleanups: (() => Promise<void>)[] = [];

export function afterScenario(cleanup: () => Promise<void> | void): void {
  scenarioCleanups.push(async () => { await cleanup(); });
}

export interface E2E {
  readonly stack: LocalStack;
  readonly core: k8s.CoreV1Api;
  readonly custom: k8s.CustomObjectsApi;
}

/**
 * Starts one local stack for the test file (mocha `before`) and stops it afterwards (`after`), also when a test failed.
 * The returned function gives the running stack inside tests.
 */
export function useStack(options: LocalStackOptions = {}): () => E2E {
  let e2e: E2E | undefined;
  before(async function () {
    this.timeout(240_000);
    const stack = await startLocalStack({ nodes: 3, ...options });
    e2e = { stack, core: stack.plane.kubeConfig.makeApiClient(k8s.CoreV1Api), custom: stack.plane.kubeConfig.makeApiClient(k8s.CustomObjectsApi) };
  });
  afterEach(async function () {
    for (const cleanup of scenarioCleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  after(async function () {
    this.timeout(120_000);
    await e2e?.stack.stop();
  });
  return () => {
    assert.ok(e2e, 'the local stack is running');
    return e2e;
  };
}

/** A never-open window: 1 January 03:00 UTC (2 January when today is 1 January). */
export function closedWindow(): { schedule: string; duration: string; timezone: string } {
  const now = new Date();
  return { schedule: now.getUTCMonth() === 0 && now.getUTCDate() === 1 ? '0 3 2 1 *' : '0 3 1 1 *', duration: '1h', timezone: 'UTC' };
}

/** The scenarios' policy: MiB-scale volumes, 4Mi critical free space and 8Mi steps; `overrides` replace top-level fields. */
export function policy(overrides: Partial<VolumePolicy> = {}): VolumePolicy {
  return {
    request: '64Mi', limit: '256Mi', targetBuffer: 20,
    ...overrides,
    emergencyGrow: { criticalMinimumFree: '4Mi', ...overrides.emergencyGrow },
    growth: { minimumStep: '8Mi', ...overrides.growth },
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
  /** Size of every volume in the Cluster spec (CNPG creates PVCs at it). */
  size?: string;
  walStorage?: boolean;
  tablespaces?: string[];
  storage?: VolumePolicy | undefined;
  wal?: VolumePolicy | undefined;
  tablespacePolicies?: TablespacePolicy[];
}

/** A ready Cluster and its DynamicStorage in a namespace of their own, the data volumes managed by `policy()` by default. */
export async function clusterWithPolicy(e2e: E2E, options: ClusterOptions = {}): Promise<ScenarioCluster> {
  const name = options.name ?? 'pg';
  const size = options.size ?? '64Mi';
  const namespace = await e2e.stack.sim.createNamespace('e2e');
  const spec: ClusterSpec = { instances: options.instances ?? 1, storage: { size, storageClass } };
  if (options.walStorage) spec.walStorage = { size, storageClass };
  if (options.tablespaces) spec.tablespaces = options.tablespaces.map((t) => ({ name: t, storage: { size, storageClass } }));
  await e2e.stack.sim.cnpg.createCluster(namespace, name, spec);
  await e2e.stack.sim.cnpg.waitForReady(namespace, name, 120_000);
  const dsSpec: Record<string, unknown> = { cluster: { name } };
  const storage = 'storage' in options ? options.storage : policy();
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
  }, { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 100 });
}

/** Waits until the volume's `count`-th action (counting every recorded one) has settled, and returns the status. */
export async function waitForActions(e2e: E2E, c: ScenarioCluster, count: number, options: { role?: Role; result?: string; timeoutMs?: number } = {}): Promise<VolumeSizingStatus> {
  return eventually(async () => {
    const status = await volumeStatus(e2e, c, options.role ?? 'data');
    assert.equal(status.recentActions?.length ?? 0, count, `actions of ${roleName(options.role ?? 'data')} (${status.state ?? ''}/${status.reason ?? ''}: ${status.message ?? ''})`);
    assert.notEqual(status.lastAction?.result, 'Pending', 'the last action settled');
    if (options.result !== undefined) assert.equal(status.lastAction?.result, options.result);
    return status;
  }, { timeoutMs: options.timeoutMs ?? 60_000, intervalMs: 100 });
}

export function roleName(role: Role): string {
  return typeof role === 'string' ? role : `tablespace ${role.tablespace}`;
}

export function roleSelector(cluster: string, role: Role): string {
  if (role === 'data') return `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_DATA`;
  if (role === 'wal') return `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_WAL`;
  return `cnpg.io/cluster=${cluster},cnpg.io/pvcRole=PG_TABLESPACE,cnpg.io/tablespaceName=${role.tablespace}`;
}

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
export async function waitForGrowth(e2e: E2E, c: ScenarioCluster, above: number, role: Role = 'data', timeoutMs = 60_000): Promise<PvcSize[]> {
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
  }, { timeoutMs: 30_000, intervalMs: 200 });
}

/** The instances of a Cluster's volume, as workload targets. */
export function instanceTarget(c: ScenarioCluster, instance: number, role: Role = 'data'): { namespace: string; instance: string; volume: 'data' | 'wal' | { tablespace: string } } {
  return { namespace: c.namespace, instance: `${c.name}-${instance}`, volume: role };
}

// ---------------------------------------------------------------------------------------------------------------------
// Metrics

/** Fetches a Prometheus text exposition. */
export async function scrape(url: string, token?: string): Promise<string> {
  const response = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, `GET ${url}`);
  return response.text();
}

/** The value of one sample, matched on every label given (other labels may be present). */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    const have = new Map([...body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(line.slice(close + 1).trim());
  }
  return undefined;
}

export async function controllerMetrics(e2e: E2E): Promise<string> {
  const address = e2e.stack.controller.address;
  assert.ok(address, 'the controller serves /metrics');
  return scrape(`http://${address.host}:${address.port}/metrics`, await e2e.stack.metricsToken());
}

/** Every agent's metrics, concatenated (each volume is reported by the agent of its node only). */
export async function agentMetrics(e2e: E2E): Promise<string> {
  const token = await e2e.stack.plane.tokenFor(systemNamespace, 'cnpg-dynamic-storage-controller', 600, [agentAudience]);
  const texts = await Promise.all(e2e.stack.agents.map((a) => scrape(`${a.url}/metrics`, token)));
  return texts.join('\n');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The invariants every scenario ends with (the brief's E2E requirements):
 * - no data loss: every sentinel written before the scenario reads back with the same checksum;
 * - request <= every PVC size <= limit (limit + the documented emergency overshoot with exceedLimitOnEmergency), for
 *   every size a PVC had at any time during the scenario, not only at the end;
 * - all PVCs of a logical volume ask for the same size once settled, and have it;
 * - coherent status: effectiveSize is the largest requested size of the role, the last action settled (not Pending),
 *   budget.actionsLast24h equals the recorded actions of the last 24 h, Rejected ones aside;
 * - no PVC ever shrank (requested size or capacity), as recorded throughout.
 */
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import type { DynamicStorage, VolumePolicy } from '../shared/api/dynamicstorage.generated.ts';
import { MiB, parseQuantity, roundUpTo } from '../shared/quantity.ts';
import { eventually } from '../test/harness/eventually.ts';
import type { Sentinels } from './targets/index.ts';
import type { E2E, Role, ScenarioCluster } from './support.ts';
import { afterScenario, getDynamicStorage, pvcSizes, roleName, roleStatus } from './support.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

interface Observation {
  pvc: string;
  /** The role label, and the tablespace for tablespace PVCs. */
  role: string;
  tablespace: string | undefined;
  maxRequested: number;
  maxCapacity: number;
  /** How many times the requested size changed (each change is one modification of the disk). */
  changes: number;
}

/**
 * Records the size of every PVC in the namespace every `intervalMs`, from the start of a scenario to its end: the
 * largest sizes seen, and every time a PVC asked for or had less than before.
 */
export class SizeRecorder {
  readonly observations = new Map<string, Observation>();
  readonly shrinks: string[] = [];
  private readonly e2e: E2E;
  private readonly namespace: string;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(e2e: E2E, namespace: string) {
    this.e2e = e2e;
    this.namespace = namespace;
  }

  start(intervalMs = 200): this {
    const tick = (): void => {
      this.polling = this.poll().catch(() => undefined).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, intervalMs).unref();
      });
    };
    tick();
    afterScenario(() => this.halt());
    return this;
  }

  /** Stops recording after one last look. */
  async stop(): Promise<void> {
    await this.halt();
    await this.poll();
  }

  async halt(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
  }

  async poll(): Promise<void> {
    const list = await this.e2e.core.listNamespacedPersistentVolumeClaim({ namespace: this.namespace, labelSelector: 'cnpg.io/cluster' });
    for (const pvc of list.items) this.observe(pvc);
  }

  private observe(pvc: k8s.V1PersistentVolumeClaim): void {
    // Keyed by uid: a PVC deleted and created again under the same name is another disk.
    const key = pvc.metadata?.uid ?? '';
    const name = pvc.metadata?.name ?? '';
    const requested = parseQuantity(pvc.spec?.resources?.requests?.storage ?? '0');
    const capacityText = pvc.status?.capacity?.storage;
    const capacity = capacityText === undefined ? 0 : parseQuantity(capacityText);
    const seen = this.observations.get(key);
    if (!seen) {
      const labels = pvc.metadata?.labels ?? {};
      this.observations.set(key, { pvc: name, role: labels['cnpg.io/pvcRole'] ?? '', tablespace: labels['cnpg.io/tablespaceName'], maxRequested: requested, maxCapacity: capacity, changes: 0 });
      return;
    }
    if (requested !== seen.maxRequested) seen.changes += 1;
    if (requested < seen.maxRequested) this.shrinks.push(`${name} asked for ${requested} after ${seen.maxRequested}`);
    if (capacity < seen.maxCapacity) this.shrinks.push(`${name} had ${capacity} after ${seen.maxCapacity}`);
    seen.maxRequested = Math.max(seen.maxRequested, requested);
    seen.maxCapacity = Math.max(seen.maxCapacity, capacity);
  }

  /** How many times each PVC (by name) changed its requested size. */
  changes(): Record<string, number> {
    const result: Record<string, number> = {};
    for (const o of this.observations.values()) result[o.pvc] = (result[o.pvc] ?? 0) + o.changes;
    return result;
  }

  /** The largest size any PVC of the role asked for or had during the scenario. */
  largest(role: Role): number {
    let largest = 0;
    for (const o of this.observations.values()) {
      if (matchesRole(o, role)) largest = Math.max(largest, o.maxRequested, o.maxCapacity);
    }
    return largest;
  }
}

function matchesRole(o: Pick<Observation, 'role' | 'tablespace'>, role: Role): boolean {
  if (role === 'data') return o.role === 'PG_DATA';
  if (role === 'wal') return o.role === 'PG_WAL';
  return o.role === 'PG_TABLESPACE' && o.tablespace === role.tablespace;
}

/** The volumes a DynamicStorage manages, with their policies. */
export function managedRoles(object: DynamicStorage): { role: Role; policy: VolumePolicy }[] {
  const roles: { role: Role; policy: VolumePolicy }[] = [];
  if (object.spec.storage) roles.push({ role: 'data', policy: object.spec.storage });
  if (object.spec.walStorage) roles.push({ role: 'wal', policy: object.spec.walStorage });
  for (const t of object.spec.tablespaces ?? []) roles.push({ role: { tablespace: t.name }, policy: t.storage });
  return roles;
}

/**
 * The largest size a PVC of this policy may ever have: the limit, or with exceedLimitOnEmergency the limit plus the
 * documented overshoot max(10% of limit, min(1Gi, growth.minimumStep)) rounded up to the allocation unit (1Mi on the
 * stand-in's `-mib` classes, 1Gi on Azure's).
 */
export function ceilingOf(policy: VolumePolicy, allocationUnit: number = MiB): number {
  const limit = parseQuantity(policy.limit);
  if (policy.emergencyGrow?.exceedLimitOnEmergency !== true) return limit;
  const minimumStep = parseQuantity(policy.growth?.minimumStep ?? '1Gi');
  return limit + roundUpTo(Math.ceil(Math.max(limit * 0.1, Math.min(1024 * MiB, minimumStep))), allocationUnit);
}

export interface InvariantOptions {
  /** Sentinels written before the scenario (files on the stand-in, rows on a real PostgreSQL); each must read back unchanged. */
  sentinels: Sentinels;
  /** The size recorder started before the scenario. */
  recorder: SizeRecorder;
  /** How long to wait for the volumes to settle. */
  settleTimeoutMs?: number;
}

/** Asserts every invariant of a finished scenario; see the file comment. */
export async function assertInvariants(e2e: E2E, c: ScenarioCluster, options: InvariantOptions): Promise<void> {
  const { recorder } = options;
  const object = await getDynamicStorage(e2e, c);
  const roles = managedRoles(object);

  // Settled: every PVC of each managed volume asks for the same size and has it, and the status says so.
  await eventually(async () => {
    const current = await getDynamicStorage(e2e, c);
    for (const { role } of roles) {
      const name = roleName(role);
      const sizes = await pvcSizes(e2e, c, role);
      assert.ok(sizes.length > 0, `${name} has PVCs`);
      const largest = Math.max(...sizes.map((s) => s.requested));
      assert.ok(sizes.every((s) => s.requested === largest), `every ${name} PVC asks for the same size: ${JSON.stringify(sizes)}`);
      assert.ok(sizes.every((s) => s.capacity === s.requested), `every ${name} PVC has the size it asks for: ${JSON.stringify(sizes)}`);
      const status = roleStatus(current, role);
      assert.ok(status, `${name} status written`);
      assert.equal(parseQuantity(status.effectiveSize ?? '0'), largest, `${name} effectiveSize is the largest requested size`);
      assert.notEqual(status.lastAction?.result, 'Pending', `${name} last action settled`);
      const actions = status.recentActions ?? [];
      const since = Date.now() - DAY_MS;
      // Rejected attempts (the API server refused every patch) are not counted in the budget.
      const lastDay = actions.filter((a) => a.result !== 'Rejected' && new Date(a.timestamp).getTime() > since).length;
      assert.equal(status.budget?.actionsLast24h ?? 0, lastDay, `${name} budget counts the actions of the last 24 h`);
      if (status.lastAction) assert.deepEqual(status.lastAction, actions.at(-1), `${name} lastAction is the latest recorded action`);
    }
  }, { timeoutMs: options.settleTimeoutMs ?? e2e.timeouts.resizeMs, intervalMs: 200 });

  await recorder.stop();
  assert.deepEqual(recorder.shrinks, [], 'no PVC ever shrank');
  for (const { role, policy } of roles) {
    const request = parseQuantity(policy.request);
    const ceiling = ceilingOf(policy, e2e.sizes.allocationUnit);
    for (const o of recorder.observations.values()) {
      if (!matchesRole(o, role)) continue;
      assert.ok(o.maxRequested >= request, `${o.pvc} asks for at least the request ${policy.request}`);
      assert.ok(o.maxRequested <= ceiling && o.maxCapacity <= ceiling, `${o.pvc} never above ${ceiling} bytes (asked ${o.maxRequested}, had ${o.maxCapacity})`);
    }
  }

  assert.deepEqual(await options.sentinels.verify(), [], 'no data lost');
}

/**
 * The start of every scenario: sentinels on every volume of the Cluster and a recorder of PVC sizes. Returns the options
 * `assertInvariants` needs at the end.
 */
export async function beginScenario(e2e: E2E, c: ScenarioCluster): Promise<InvariantOptions> {
  const recorder = new SizeRecorder(e2e, c.namespace);
  await recorder.poll();
  recorder.start();
  const sentinels = await e2e.writeSentinels(c.namespace, c.name);
  return { sentinels, recorder };
}

/**
 * The controller's Prometheus metrics on a private registry: per logical volume, the brief's
 * `cnpg_dynamic_storage_effective_size_bytes` and `cnpg_dynamic_storage_budget_remaining`, plus target size, state
 * and its reason, and actions. Gauges are computed at scrape time from the last status of each volume, so that what they
 * say survives a controller restart (the status holds the actions of the last 24 hours).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { VolumeSizingStatus } from '../shared/api/dynamicstorage.generated.ts';
import { sizingActionKinds, volumeSizingStates } from '../shared/api/dynamicstorage.generated.ts';
import { parseQuantity } from '../shared/quantity.ts';
import { policyProtections } from '../shared/api/dynamicstorage.generated.ts';
import type { PolicyKey, PolicyValidity, VolumeKey } from './reconcile.ts';

const labelNames = ['namespace', 'cluster', 'volume_type', 'tablespace'] as const;
type Labels = Record<(typeof labelNames)[number], string>;

function labelsOf(key: VolumeKey): Labels {
  return { namespace: key.namespace, cluster: key.cluster, volume_type: key.role, tablespace: key.tablespace ?? '' };
}

function keyString(key: VolumeKey): string {
  return [key.namespace, key.cluster, key.role, key.tablespace ?? ''].join('/');
}

export interface ControllerMetrics {
  readonly registry: Registry;
  observeVolume(key: VolumeKey, status: VolumeSizingStatus | undefined): void;
  /** Whether a DynamicStorage's policy is valid, and what the controller does with it. */
  observePolicy(key: PolicyKey, validity: PolicyValidity): void;
  observeReconcile(seconds: number, failed: boolean): void;
  /** Drops every volume of a cluster (its DynamicStorage was deleted). */
  forgetCluster(namespace: string, cluster: string): void;
  setLeader(isLeader: () => boolean): void;
  expose(): Promise<string>;
  readonly contentType: string;
}

/** Milliseconds since the epoch of the latest action of `kind` in the status (lastAction or recentActions). */
export function latestActionAt(status: VolumeSizingStatus, kind: (typeof sizingActionKinds)[number]): number | undefined {
  let latest: number | undefined;
  for (const action of [...(status.recentActions ?? []), ...(status.lastAction ? [status.lastAction] : [])]) {
    const at = Date.parse(action.timestamp);
    if (action.kind === kind && Number.isFinite(at) && (latest === undefined || at > latest)) latest = at;
  }
  return latest;
}

export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  const volumes = new Map<string, { labels: Labels; status: VolumeSizingStatus }>();
  const policies = new Map<string, { labels: Record<'namespace' | 'cluster' | 'dynamicstorage', string>; validity: PolicyValidity }>();
  const sizeGauge = (name: string, help: string, field: 'effectiveSize' | 'targetSize'): void => {
    new Gauge({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        for (const { labels, status } of volumes.values()) {
          const text = status[field];
          if (text !== undefined) this.set(labels, parseQuantity(text));
        }
      },
    });
  };
  sizeGauge('cnpg_dynamic_storage_effective_size_bytes', 'Size new and existing PVCs of the logical volume are kept at, in bytes.', 'effectiveSize');
  sizeGauge('cnpg_dynamic_storage_target_size_bytes', 'Size at which the fullest instance would have the target buffer free, in bytes.', 'targetSize');
  new Gauge({
    name: 'cnpg_dynamic_storage_budget_remaining', help: 'Resize actions left in the rolling 24 h budget, for planned and for emergency growth.',
    labelNames: [...labelNames, 'budget'], registers: [registry],
    collect() {
      this.reset();
      for (const { labels, status } of volumes.values()) {
        this.set({ ...labels, budget: 'planned' }, status.budget?.availableForPlanned ?? 0);
        this.set({ ...labels, budget: 'emergency' }, status.budget?.availableForEmergency ?? 0);
      }
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_actions_last_24h', help: 'Resize actions of the logical volume in the last 24 hours.',
    labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const { labels, status } of volumes.values()) this.set(labels, status.budget?.actionsLast24h ?? 0);
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_state', help: 'Sizing state of the logical volume: 1 for the current state, 0 for the others.',
    labelNames: [...labelNames, 'state'], registers: [registry],
    collect() {
      this.reset();
      for (const { labels, status } of volumes.values()) {
        for (const state of volumeSizingStates) this.set({ ...labels, state }, status.state === state ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_state_reason',
    help: 'Why the logical volume is in its state: 1 for the current state and reason (the status\'s state and reason), one series per volume.',
    labelNames: [...labelNames, 'state', 'reason'], registers: [registry],
    collect() {
      this.reset();
      for (const { labels, status } of volumes.values()) {
        if (status.state !== undefined) this.set({ ...labels, state: status.state, reason: status.reason ?? '' }, 1);
      }
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_last_action_timestamp_seconds',
    help: 'When the latest resize action of each kind (EmergencyGrow, ScheduledGrow) was taken, seconds since the epoch; absent without one in the status.',
    labelNames: [...labelNames, 'kind'], registers: [registry],
    collect() {
      this.reset();
      for (const { labels, status } of volumes.values()) {
        for (const kind of sizingActionKinds) {
          const latest = latestActionAt(status, kind);
          if (latest !== undefined) this.set({ ...labels, kind }, latest / 1000);
        }
      }
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_policy_valid',
    help: '1 when the DynamicStorage passed every check (Valid=True), 0 when it has a problem (see its Valid condition).',
    labelNames: ['namespace', 'cluster', 'dynamicstorage'], registers: [registry],
    collect() {
      this.reset();
      for (const { labels, validity } of policies.values()) this.set(labels, validity.valid ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cnpg_dynamic_storage_policy_protection',
    help: 'What the controller does with the policy: 1 for the current protection (Full, Partial: sized with its valid parts, None: nothing resized), 0 for the others.',
    labelNames: ['namespace', 'cluster', 'dynamicstorage', 'protection'], registers: [registry],
    collect() {
      this.reset();
      for (const { labels, validity } of policies.values()) {
        for (const protection of policyProtections) this.set({ ...labels, protection }, validity.protection === protection ? 1 : 0);
      }
    },
  });
  let leader: () => boolean = () => false;
  new Gauge({
    name: 'cnpg_dynamic_storage_controller_leader', help: '1 when this controller replica holds the leader Lease and reconciles.',
    registers: [registry],
    collect() { this.set(leader() ? 1 : 0); },
  });
  const reconciles = new Counter({ name: 'cnpg_dynamic_storage_reconciles_total', help: 'Reconciles of DynamicStorage objects.', labelNames: ['result'], registers: [registry] });
  const duration = new Histogram({
    name: 'cnpg_dynamic_storage_reconcile_duration_seconds', help: 'Time one reconcile took.', registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });

  return {
    registry,
    observeVolume(key, status) {
      if (status === undefined) volumes.delete(keyString(key));
      else volumes.set(keyString(key), { labels: labelsOf(key), status });
    },
    observePolicy(key, validity) {
      policies.set([key.namespace, key.dynamicStorage].join('/'), {
        labels: { namespace: key.namespace, cluster: key.cluster, dynamicstorage: key.dynamicStorage }, validity,
      });
    },
    forgetCluster(namespace, cluster) {
      for (const [key, { labels }] of volumes) {
        if (labels.namespace === namespace && labels.cluster === cluster) volumes.delete(key);
      }
      for (const [key, { labels }] of policies) {
        if (labels.namespace === namespace && labels.cluster === cluster) policies.delete(key);
      }
    },
    setLeader(isLeader) { leader = isLeader; },
    observeReconcile(seconds, failed) {
      reconciles.inc({ result: failed ? 'error' : 'success' });
      duration.observe(seconds);
    },
    expose: () => registry.metrics(),
    get contentType() { return registry.contentType; },
  };
}

/**
 * The sizers compared: this product's engine (the controller's own `decide`, fed as the controller feeds it) and the
 * published rules of the peers (shared/REFERENCE.md, "What peers do"), each on its own schedule and data delay.
 */
import {
  ActionResults,
  BUDGET_WINDOW_MS,
  DEFAULT_TUNING,
  LONG_TERM_HISTORY,
  NoOp,
  keepSampled,
  decide,
  usageOf,
  type ActionRecord,
  type DiskReading,
  type InstanceVolume,
  type VolumePolicy,
} from '../../controller/policy/index.ts';
import { GiB, type Observation, type Resize, type Sizer } from './world.ts';

const roundUpGiB = (bytes: number): number => Math.ceil(bytes / GiB - 1e-9) * GiB;

function fullestPercent(observation: Observation): number {
  return Math.max(...Object.values(observation.readings).map((reading) => usageOf(reading).percentUsed));
}

interface PeerRule {
  name: string;
  everyMs: number;
  /** How old the data the rule acts on is (kubelet stats through Prometheus lag). */
  delayMs: number;
  grows(percentUsed: number): boolean;
  next(size: number): number;
}

/** A threshold-and-step rule, as the peers implement it: look every `everyMs`, grow by a step when over the threshold. */
export function peer(rule: PeerRule, limit: number): Sizer {
  let nextCheck = Number.NEGATIVE_INFINITY;
  const seen: { at: number; percent: number }[] = [];
  return {
    name: rule.name,
    observe(observation) {
      seen.push({ at: observation.now, percent: fullestPercent(observation) });
      while ((seen[0]?.at ?? Infinity) < observation.now - rule.delayMs - 60_000) seen.shift();
      if (observation.now < nextCheck || observation.resizing) return undefined;
      nextCheck = observation.now + rule.everyMs;
      const visible = [...seen].reverse().find((entry) => entry.at <= observation.now - rule.delayMs);
      if (visible === undefined || !rule.grows(visible.percent) || observation.size >= limit) return undefined;
      return { at: observation.now, to: Math.min(limit, roundUpGiB(rule.next(observation.size))), kind: 'Grow', reason: `${visible.percent.toFixed(1)}% used` };
    },
  };
}

export const peerNames = ['Crunchy PGO', 'topolvm pvc-autoresizer', 'gardener pvc-autoscaler', 'Percona'];

export function peers(limit: number): Sizer[] {
  return [
    peer({ name: 'Crunchy PGO', everyMs: 5_000, delayMs: 0, grows: (p) => p > 75, next: (s) => s * 1.5 }, limit),
    peer({ name: 'topolvm pvc-autoresizer', everyMs: 60_000, delayMs: 60_000, grows: (p) => p > 90, next: (s) => s * 1.1 }, limit),
    peer({ name: 'gardener pvc-autoscaler', everyMs: 300_000, delayMs: 0, grows: (p) => p > 80, next: (s) => s + Math.max(0.1 * s, GiB) }, limit),
    peer({ name: 'Percona', everyMs: 5_000, delayMs: 0, grows: (p) => p >= 80, next: (s) => s + 2 * GiB }, limit),
  ];
}

/**
 * The engine as the controller runs it: readings kept at most every 5 s for the engine's look-back, the action history
 * with each action's completion, a decision on every reading.
 */
export function engine(policy: VolumePolicy, everyMs = 5_000): Sizer {
  const recent = new Map<string, DiskReading[]>();
  const longTerm = new Map<string, DiskReading[]>();
  let history: ActionRecord[] = [];
  let nextDecision = Number.NEGATIVE_INFINITY;
  return {
    name: 'this engine',
    observe(observation): Resize | undefined {
      const { now } = observation;
      history = history
        .filter((action) => action.timestamp.getTime() > now - 2 * BUDGET_WINDOW_MS)
        .map((action) => action.result === ActionResults.Pending && observation.capacity >= action.to
          ? { ...action, result: ActionResults.Success, completedAt: new Date(now) }
          : action);
      const instances: InstanceVolume[] = Object.entries(observation.readings).map(([name, reading]) => {
        const kept = (recent.get(name) ?? []).filter((r) => r.sampledAt.getTime() > now - DEFAULT_TUNING.prediction.lookbackMs - 60_000);
        kept.push(reading);
        recent.set(name, kept);
        const sparse = longTerm.get(name) ?? [];
        keepSampled(sparse, reading, LONG_TERM_HISTORY);
        longTerm.set(name, sparse);
        return {
          instance: name, pvcName: name, requestedSize: observation.size, capacity: observation.capacity, reading,
          recentReadings: kept, longTermReadings: sparse,
        };
      });
      if (now < nextDecision) return undefined;
      nextDecision = now + everyMs;
      const decision = decide({ volume: 'bench', policy, history, instances }, new Date(now));
      if (decision.action === NoOp || decision.newSize === undefined) return undefined;
      history.push({ kind: decision.action, from: observation.size, to: decision.newSize, timestamp: new Date(now), result: ActionResults.Pending });
      return { at: now, to: decision.newSize, kind: decision.action, reason: decision.reason };
    },
  };
}


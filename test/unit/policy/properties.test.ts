import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GiB } from '../../../shared/quantity.ts';
import {
  BUDGET_WINDOW_MS,
  decide,
  overshootBytes,
  replay,
  DEFAULT_PROVIDER,
  DEFAULT_TUNING,
  type ActionRecord,
  type Decision,
  type DecisionInput,
  type InstanceVolume,
  type ProviderFacts,
  type VolumePolicy,
} from '../../../controller/policy/index.ts';
import { MINUTE, alwaysOpenWindow, defaultWindow } from './fixtures.ts';
import { parseMaintenanceWindow } from '../../../controller/policy/window.ts';

const HOUR = 60 * MINUTE;
const windows = [alwaysOpenWindow, defaultWindow, parseMaintenanceWindow({ schedule: '0 22 * * 1-5', timezone: 'Europe/Berlin', duration: '4h' })];
const providers: ProviderFacts[] = [
  DEFAULT_PROVIDER,
  { allocationUnit: GiB, billingTiers: [4, 8, 16, 32, 64, 128, 256, 512].map((g) => g * GiB) },
];

const policyArb: fc.Arbitrary<VolumePolicy> = fc
  .record({
    requestGi: fc.integer({ min: 1, max: 50 }),
    extraGi: fc.integer({ min: 0, max: 200 }),
    targetBuffer: fc.integer({ min: 5, max: 50 }),
    criticalThreshold: fc.integer({ min: 80, max: 99 }),
    minimumFreeMi: fc.integer({ min: 64, max: 4096 }),
    enabled: fc.boolean(),
    exceed: fc.boolean(),
    maxActions: fc.integer({ min: 0, max: 6 }),
    reservedShare: fc.integer({ min: 0, max: 6 }),
    window: fc.constantFrom(...windows),
  })
  .map((p) => ({
    request: p.requestGi * GiB,
    limit: (p.requestGi + p.extraGi) * GiB,
    targetBuffer: p.targetBuffer,
    maintenanceWindow: p.window,
    emergencyGrow: {
      enabled: p.enabled,
      criticalThreshold: p.criticalThreshold,
      criticalMinimumFree: p.minimumFreeMi * 1024 * 1024,
      exceedLimitOnEmergency: p.exceed,
      maxActionsPerDay: p.maxActions,
      reservedActionsForEmergency: Math.min(p.reservedShare, p.maxActions),
    },
  }));

interface Scenario {
  input: DecisionInput;
  now: Date;
  ratios: number[];
}

const nowArb = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2025, 11, 31) }).map((ms) => new Date(ms));

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    policy: policyArb,
    provider: fc.constantFrom(...providers),
    now: nowArb,
    // Size as a fraction between request and limit, usage as a fraction of the usable space, filesystem ratio.
    instances: fc.array(fc.record({ sizeAt: fc.double({ min: 0, max: 1, noNaN: true }), fill: fc.double({ min: 0, max: 1, noNaN: true }), ratio: fc.double({ min: 0.85, max: 1, noNaN: true }) }), { minLength: 1, maxLength: 3 }),
    sameSize: fc.boolean(),
    actionsAgoMinutes: fc.array(fc.integer({ min: 2, max: 48 * 60 }), { maxLength: 7 }),
  })
  .map(({ policy, provider, now, instances, sameSize, actionsAgoMinutes }) => {
    const first = instances[0]?.sizeAt ?? 0;
    const volumes: InstanceVolume[] = instances.map((spec, index) => {
      const fraction = sameSize ? first : spec.sizeAt;
      const size = Math.round((policy.request + fraction * (policy.limit - policy.request)) / GiB) * GiB || policy.request;
      const usable = Math.floor(size * spec.ratio);
      const used = Math.floor(usable * spec.fill);
      const sampledAt = new Date(now.getTime() - 30_000);
      return {
        instance: `pg-${index + 1}`,
        pvcName: `pg-${index + 1}`,
        requestedSize: size,
        capacity: size,
        reading: { sampledAt, totalBytes: usable, freeBytes: usable - used, availableBytes: usable - used },
        recentReadings: [],
      };
    });
    const history: ActionRecord[] = actionsAgoMinutes.map((minutes) => ({
      kind: 'ScheduledGrow',
      from: policy.request,
      to: policy.request,
      timestamp: new Date(now.getTime() - minutes * MINUTE),
      result: 'Success',
    }));
    return { input: { volume: 'data', policy, provider, instances: volumes, history }, now, ratios: instances.map((spec) => spec.ratio) };
  });

/** The volume after applying a decision: every PVC at the new size, filesystems grown by the same ratio, same usage. */
function applied(scenario: Scenario, decision: Decision): Scenario {
  const size = decision.newSize ?? 0;
  const later = new Date(scenario.now.getTime() + MINUTE);
  const instances = scenario.input.instances.map((volume, index) => {
    const ratio = scenario.ratios[index] ?? 1;
    const used = (volume.reading?.totalBytes ?? 0) - (volume.reading?.freeBytes ?? 0);
    const usable = Math.floor(size * ratio);
    return {
      ...volume,
      requestedSize: size,
      capacity: size,
      reading: { sampledAt: new Date(later.getTime() - 10_000), totalBytes: usable, freeBytes: usable - used, availableBytes: usable - used },
    };
  });
  const done: ActionRecord = {
    kind: decision.action === 'EmergencyGrow' ? 'EmergencyGrow' : 'ScheduledGrow',
    from: decision.currentSize,
    to: size,
    timestamp: new Date(scenario.now.getTime()),
    result: 'Success',
    completedAt: new Date(scenario.now.getTime() + 30_000),
  };
  return { ...scenario, now: later, input: { ...scenario.input, instances, history: [...scenario.input.history, done] } };
}

function emergencyCap(policy: VolumePolicy, provider: ProviderFacts): number {
  return policy.emergencyGrow.exceedLimitOnEmergency ? policy.limit + overshootBytes(policy, provider, DEFAULT_TUNING) : policy.limit;
}

describe('policy/decide: properties', () => {
  it('never shrinks, and never exceeds the limit except by the bounded emergency overshoot', () => {
    fc.assert(
      fc.property(scenarioArb, ({ input, now }) => {
        const decision = decide(input, now);
        const provider = input.provider ?? DEFAULT_PROVIDER;
        assert.ok(decision.targetSize >= decision.currentSize);
        for (const patch of decision.patches) assert.ok(patch.to > patch.from && patch.to === decision.newSize);
        if (decision.action === 'NoOp') {
          assert.equal(decision.newSize, undefined);
          return;
        }
        const size = decision.newSize ?? 0;
        assert.ok(size >= decision.currentSize);
        if (decision.action === 'ScheduledGrow') assert.ok(size <= Math.max(input.policy.limit, decision.currentSize));
        else assert.ok(size <= emergencyCap(input.policy, provider));
      }),
      { numRuns: 400 },
    );
  });

  it('is deterministic', () => {
    fc.assert(
      fc.property(scenarioArb, ({ input, now }) => {
        const copy = { ...input, instances: input.instances.map((volume) => ({ ...volume })), history: [...input.history] };
        assert.deepEqual(decide(input, now), decide(copy, new Date(now.getTime())));
      }),
      { numRuns: 100 },
    );
  });

  it('spends planned actions only from the planned budget and emergencies only from the whole budget', () => {
    fc.assert(
      fc.property(scenarioArb, ({ input, now }) => {
        const decision = decide(input, now);
        const counted = input.history.filter((a) => a.timestamp.getTime() > now.getTime() - BUDGET_WINDOW_MS).length;
        const { maxActionsPerDay, reservedActionsForEmergency } = input.policy.emergencyGrow;
        if (decision.action === 'ScheduledGrow') assert.ok(counted < maxActionsPerDay - reservedActionsForEmergency);
        if (decision.action === 'EmergencyGrow') assert.ok(counted < maxActionsPerDay);
        assert.equal(decision.budget.actionsLast24h, counted);
      }),
      { numRuns: 400 },
    );
  });

  it('does not grow again after its own grow, for the same usage', () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const decision = decide(scenario.input, scenario.now);
        fc.pre(decision.action !== 'NoOp');
        const next = decide(applied(scenario, decision).input, new Date(scenario.now.getTime() + MINUTE));
        assert.equal(next.action, 'NoOp', `${decision.message} -> ${next.message}`);
      }),
      { numRuns: 300 },
    );
  });

  it('never yields a smaller target for more usage', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat({ max: 1000 }), fc.nat({ max: 2 }), ({ input, now }, permille, which) => {
        const index = which % input.instances.length;
        const fuller = input.instances.map((volume, i) => {
          const reading = volume.reading;
          if (i !== index || reading === undefined) return volume;
          const extra = Math.floor((reading.availableBytes * permille) / 1000);
          return { ...volume, reading: { ...reading, freeBytes: reading.freeBytes - extra, availableBytes: reading.availableBytes - extra } };
        });
        const before = decide(input, now);
        const after = decide({ ...input, instances: fuller }, now);
        assert.ok(after.targetSize >= before.targetSize);
        assert.ok(after.desiredSize >= before.desiredSize);
      }),
      { numRuns: 300 },
    );
  });
});

describe('policy/replay: properties over usage series', () => {
  const seriesArb = fc.record({
    policy: policyArb,
    start: fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2025, 11, 1) }),
    // Usage as fractions of the limit at 6-hour points over two days; bursts included.
    points: fc.array(fc.double({ min: 0, max: 1.2, noNaN: true }), { minLength: 9, maxLength: 9 }),
    latencyMinutes: fc.integer({ min: 1, max: 40 }),
  });

  it('never exceeds maxActionsPerDay in any 24 h, never lets planned growth eat the reserve, never shrinks', () => {
    fc.assert(
      fc.property(seriesArb, ({ policy, start, points, latencyMinutes }) => {
        const trace = points.map((fraction, index) => ({ at: new Date(start + index * 6 * HOUR), usedBytes: Math.floor(fraction * policy.limit * 0.9) }));
        const report = replay({ policy, trace, initialSize: policy.request, stepMs: 10 * MINUTE, resizeLatencyMs: latencyMinutes * MINUTE });
        const { maxActionsPerDay, reservedActionsForEmergency } = policy.emergencyGrow;
        assert.ok(report.maxActionsIn24h <= maxActionsPerDay);
        for (const resize of report.resizes) {
          const before = report.resizes.filter((r) => r.at.getTime() < resize.at.getTime() && r.at.getTime() > resize.at.getTime() - BUDGET_WINDOW_MS).length;
          if (resize.kind === 'ScheduledGrow') assert.ok(before < maxActionsPerDay - reservedActionsForEmergency);
          assert.ok(resize.to > resize.from);
          assert.ok(resize.to <= emergencyCap(policy, DEFAULT_PROVIDER));
        }
      }),
      { numRuns: 20 },
    );
  });
});

/**
 * A write that stopped must not be an emergency: the shape of the real node's window scenario, replayed by the engine.
 * A 64Mi volume (a tmpfs 3% smaller than its disk, 4Mi critical minimum free, 8Mi minimum step, the window closed) read
 * every second, holding 20-40 MiB for 1-15 minutes, is written to 90% of its filesystem in one to three writes of
 * 0.5-45 s each, then left alone. A write still going on when it could reach the critical minimum within two resize
 * times may rightly be an emergency; one that stopped is planned growth for the window. Prints, per write duration, how
 * many variants took an emergency and when (relative to the end of the last write), and exits 1 when any emergency came
 * after the usage was flat again: from the second reading at the final level on (the first one cannot tell whether the
 * write goes on).
 *
 *   node bench/sizing/short-writes.ts
 */
import { MiB } from '../../shared/quantity.ts';
import { DEFAULT_TUNING, POLICY_DEFAULTS, parseMaintenanceWindow, replay, type UsagePoint } from '../../controller/policy/index.ts';

const filesystem = 64 * MiB * 0.97;
const policy = {
  request: 64 * MiB, limit: 256 * MiB, targetBuffer: 20,
  maintenanceWindow: parseMaintenanceWindow({ schedule: '0 3 * * *', duration: '1h', timezone: 'UTC' }),
  emergencyGrow: { ...POLICY_DEFAULTS.emergencyGrow, criticalMinimumFree: 4 * MiB },
};
const tuning = { ...DEFAULT_TUNING, minimumStepBytes: 8 * MiB };
const pauseBetweenWritesMs = 6_000;
const readEveryMs = 1000;

interface Variant { baseMiB: number; flatSeconds: number; writes: readonly number[]; writeSeconds: number; offsetSeconds: number }

function trace(v: Variant, start: Date): { points: UsagePoint[]; lastWriteEnds: number } {
  const base = v.baseMiB * MiB;
  const target = 0.9 * filesystem;
  let t = start.getTime() + v.flatSeconds * 1000;
  const points: UsagePoint[] = [{ at: start, usedBytes: base }, { at: new Date(t), usedBytes: base }];
  let lastWriteEnds = t;
  for (const share of v.writes) {
    t += v.writeSeconds * 1000;
    lastWriteEnds = t;
    points.push({ at: new Date(t), usedBytes: base + share * (target - base) });
    t += pauseBetweenWritesMs;
    points.push({ at: new Date(t), usedBytes: base + share * (target - base) });
  }
  points.push({ at: new Date(t + 6 * 60_000), usedBytes: target });
  return { points, lastWriteEnds };
}

const byDuration = new Map<number, { runs: number; emergencies: number; afterFlat: number; when: Set<string> }>();
for (const baseMiB of [20, 30, 40]) {
  for (const flatSeconds of [60, 120, 300, 900]) {
    for (const writes of [[1], [0.8, 1], [0.5, 0.9, 1]]) {
      for (const writeSeconds of [0.5, 1.5, 3, 8, 20, 45]) {
        for (const offsetSeconds of [0, 7, 13, 29, 44]) {
          const start = new Date(Date.UTC(2026, 11, 3, 12, 0, offsetSeconds));
          const { points, lastWriteEnds } = trace({ baseMiB, flatSeconds, writes, writeSeconds, offsetSeconds }, start);
          const report = replay({ policy, provider: { allocationUnit: MiB }, tuning, trace: points, initialSize: 64 * MiB, stepMs: readEveryMs, resizeLatencyMs: 30_000, filesystemRatio: 0.97, reservedRatio: 0 });
          const row = byDuration.get(writeSeconds) ?? { runs: 0, emergencies: 0, afterFlat: 0, when: new Set<string>() };
          row.runs += 1;
          const emergency = report.resizes.find((r) => r.kind === 'EmergencyGrow');
          if (emergency) {
            row.emergencies += 1;
            const after = Math.round((emergency.at.getTime() - lastWriteEnds) / 1000);
            const firstAtFinal = start.getTime() + Math.ceil((lastWriteEnds - start.getTime()) / readEveryMs) * readEveryMs;
            if (emergency.at.getTime() >= firstAtFinal + readEveryMs) row.afterFlat += 1;
            row.when.add(`${after >= 0 ? '+' : ''}${after}s`);
          }
          byDuration.set(writeSeconds, row);
        }
      }
    }
  }
}

console.log('| each write lasts | variants | an emergency | of which after the usage was flat again | when (from the end of the last write) |');
console.log('|---|---|---|---|---|');
let afterFlat = 0;
for (const [seconds, row] of [...byDuration.entries()].sort((a, b) => a[0] - b[0])) {
  afterFlat += row.afterFlat;
  console.log(`| ${seconds} s | ${row.runs} | ${row.emergencies} | ${row.afterFlat} | ${[...row.when].slice(0, 8).join(', ')} |`);
}
process.exitCode = afterFlat > 0 ? 1 : 0;

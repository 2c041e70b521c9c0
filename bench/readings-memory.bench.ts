/**
 * The controller's readings history at full length: `ReadingsStore` fed 48 hours of readings for N PVCs, one reading per
 * PVC every `every` seconds (usage changing, so that each is kept as the sampling allows), then the V8 heap after a full
 * GC, against the same store empty. Run: `node --expose-gc bench/readings-memory.bench.ts [pvcs=1000] [every=30]`.
 */
import { ReadingsStore } from '../controller/readings.ts';
import type { VolumeReading } from '../shared/readings.ts';

const GiB = 1024 ** 3;
const pvcs = Number(process.argv[2] ?? 1000);
const everySeconds = Number(process.argv[3] ?? 30);
const hours = 48;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function heapAfterGc(): number {
  gc?.();
  gc?.();
  // Typed arrays keep their bytes outside the V8 heap.
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

const store = new ReadingsStore();
const names = Array.from({ length: pvcs }, (_, i) => `pg-${i}`);
// The store holds the latest raw reading per PVC in any case: measure the history beyond it.
const start = Date.UTC(2026, 0, 1);
const report = (pvc: string, at: number, step: number): VolumeReading => ({
  node: 'node-a', namespace: 'db', pvc, podUid: 'uid', volumeType: 'data', instance: pvc,
  sampledAt: new Date(at).toISOString(), changedAt: new Date(at).toISOString(), status: 'ok',
  usage: {
    totalBytes: 100 * GiB, freeBytes: 60 * GiB - step * 4096, availableBytes: 55 * GiB - step * 4096, usedBytes: 40 * GiB + step * 4096,
    percentUsed: 40, inodesTotal: 6_553_600, inodesUsed: 1000 + step, inodesFree: 6_552_600 - step, inodesPercentUsed: 1,
  },
} as unknown as VolumeReading);
for (const pvc of names) store.update(report(pvc, start, 0));
const base = heapAfterGc();
const steps = (hours * 3600) / everySeconds;
const began = process.hrtime.bigint();
for (let step = 1; step <= steps; step += 1) {
  const at = start + step * everySeconds * 1000;
  for (const pvc of names) store.update(report(pvc, at, step));
}
const fed = Number(process.hrtime.bigint() - began) / 1e6;
const history = heapAfterGc() - base;
const read = process.hrtime.bigint();
let kept = 0;
for (const pvc of names) kept += store.forPvc('db', pvc).recent.length + store.forPvc('db', pvc).longTerm.length;
const readMs = Number(process.hrtime.bigint() - read) / 1e6 / 2;
process.stdout.write(`${JSON.stringify({
  pvcs, everySeconds, hours, keptReadingsPerPvc: kept / pvcs,
  historyMiB: +(history / 2 ** 20).toFixed(1), perPvcKiB: +(history / pvcs / 1024).toFixed(1),
  feedMs: Math.round(fed), forPvcUs: +((readMs * 1000) / pvcs).toFixed(1),
})}\n`);

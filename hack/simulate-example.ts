/**
 * Writes docs/examples/simulate/usage.csv, the history of the `kubectl cnpg storage simulate` example: four days of a CloudNativePG data volume on three instances, sampled every five
 * minutes, with steady growth, a daytime working set and a nightly temp-file hump (the batch reports at 01:00), and
 * replicas that trail the primary by a little. Deterministic (seeded), so the documented output can be reproduced:
 *   node hack/simulate-example.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const GiB = 1024 ** 3;
const start = Date.UTC(2026, 0, 12); // a Monday, 00:00 UTC
const stepMs = 5 * 60_000;
const days = 4;

/** mulberry32: a small seeded generator, so the file is the same on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const noise = random(42);

/** Bytes the primary uses `hours` after the start. */
function primary(hours: number): number {
  const hourOfDay = hours % 24;
  const growth = 26 + 1.6 * (hours / 24); // tables grow 1.6 GiB a day
  const working = 1.2 * Math.max(0, Math.sin(((hourOfDay - 7) / 14) * Math.PI)); // busy from 07:00 to 21:00
  const hump = hourOfDay >= 1 && hourOfDay < 2.5 ? 6 * Math.sin(((hourOfDay - 1) / 1.5) * Math.PI) : 0; // nightly temp files
  return (growth + working + hump) * GiB;
}

const rows = ['timestamp,instance,used_bytes'];
for (let t = start; t <= start + days * 86_400_000; t += stepMs) {
  const hours = (t - start) / 3_600_000;
  const used = primary(hours);
  const at = new Date(t).toISOString().replace(/\.000Z$/, 'Z');
  rows.push(`${at},pg-1,${Math.round(used + noise() * 0.05 * GiB)}`);
  // Replicas replay the primary's changes a little later, and keep no temp files of the primary's reports.
  const replica = primary(hours - 0.05) - (hours % 24 >= 1 && hours % 24 < 2.5 ? 4 * GiB * Math.sin((((hours % 24) - 1) / 1.5) * Math.PI) : 0);
  rows.push(`${at},pg-2,${Math.round(replica + noise() * 0.05 * GiB)}`);
  rows.push(`${at},pg-3,${Math.round(replica + noise() * 0.05 * GiB)}`);
}
const target = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/examples/simulate/usage.csv');
writeFileSync(target, `${rows.join('\n')}\n`);

/**
 * Side by side: this engine and the peers' rules on every usage shape, seed and scale of `shapes.ts`, in the same world.
 * Prints a Markdown table and checks the engine's goal on every run:
 *   0 s out of space; time at or over the critical threshold at most the best peer's plus one resize latency;
 *   at most maxActionsPerDay resizes in any 24 h; provisioned GiB-hours at most Crunchy PGO's.
 * Exit status 1 when any run misses the goal.
 *
 *   node bench/sizing/compare.ts [--shape NAME] [--seed N[,N...]] [--details]
 *
 * `--seed` picks the seeds to run, any of them: the default seeds of `shapes.ts` or others (`--seed 4,5,6,7,8,9`).
 */
import { parseArgs } from 'node:util';
import { POLICY_DEFAULTS, parseMaintenanceWindow, type VolumePolicy } from '../../controller/policy/index.ts';
import { generators, scales, seeds } from './shapes.ts';
import { engine, peerNames, peers } from './sizers.ts';
import { GiB, run, type Outcome, type Shape, type WorldOptions } from './world.ts';

const RESIZE_LATENCY_MS = 60_000;
const world: WorldOptions = { resizeLatencyMs: RESIZE_LATENCY_MS, criticalThreshold: POLICY_DEFAULTS.emergencyGrow.criticalThreshold, targetBuffer: POLICY_DEFAULTS.targetBuffer };

export function policyFor(shape: Shape): VolumePolicy {
  return {
    request: shape.initialSize,
    limit: shape.limit,
    targetBuffer: POLICY_DEFAULTS.targetBuffer,
    maintenanceWindow: parseMaintenanceWindow({}),
    emergencyGrow: { ...POLICY_DEFAULTS.emergencyGrow, criticalMinimumFree: GiB },
  };
}

export interface Comparison {
  shape: Shape;
  ours: Outcome;
  peers: Outcome[];
  misses: string[];
}

export function compare(shape: Shape): Comparison {
  const policy = policyFor(shape);
  const ours = run(shape, engine(policy), world);
  const others = peers(shape.limit).map((sizer) => run(shape, sizer, world));
  const misses: string[] = [];
  const bestCritical = Math.min(...others.map((o) => o.secondsOverCritical));
  const pgo = others.find((o) => o.sizer === 'Crunchy PGO');
  if (ours.secondsOutOfSpace > 0) misses.push(`${ours.secondsOutOfSpace} s out of space`);
  if (ours.secondsOverCritical > bestCritical + RESIZE_LATENCY_MS / 1000) misses.push(`${ours.secondsOverCritical} s over critical (best peer ${bestCritical} s)`);
  if (ours.maxActionsIn24h > policy.emergencyGrow.maxActionsPerDay) misses.push(`${ours.maxActionsIn24h} actions in 24 h`);
  if (pgo !== undefined && ours.provisionedGiBHours > pgo.provisionedGiBHours) {
    misses.push(`${ours.provisionedGiBHours.toFixed(0)} GiB-h, more than PGO's ${pgo.provisionedGiBHours.toFixed(0)}`);
  }
  return { shape, ours, peers: others, misses };
}

function cell(o: Outcome): string {
  return `${o.secondsOutOfSpace} / ${o.secondsOverCritical} / ${o.resizes.length} (${o.maxActionsIn24h}) / ${o.provisionedGiBHours.toFixed(0)}`;
}

function main(): void {
  const { values } = parseArgs({ options: { shape: { type: 'string' }, seed: { type: 'string' }, details: { type: 'boolean' } } });
  const results: Comparison[] = [];
  console.log('Each cell: seconds out of space / seconds at or over 95% / resizes (most in any 24 h) / provisioned GiB-hours.\n');
  console.log(`| shape | seed | start | this engine | ${peerNames.join(' | ')} | goal |`);
  console.log(`|---|---|---|---|${peerNames.map(() => '---').join('|')}|---|`);
  const picked = values.seed === undefined ? seeds : values.seed.split(',').map((seed) => Number.parseInt(seed, 10));
  if (picked.some((seed) => !Number.isSafeInteger(seed))) throw new Error(`--seed takes integers separated by commas, not ${values.seed ?? ''}`);
  for (const generate of generators) {
    for (const scale of scales) {
      for (const seed of picked) {
        const shape = generate(seed, scale);
        if (values.shape !== undefined && !shape.name.includes(values.shape)) continue;
        const r = compare(shape);
        results.push(r);
        const goal = r.misses.length === 0 ? 'met' : `**missed**: ${r.misses.join('; ')}`;
        console.log(`| ${r.shape.name} | ${r.shape.seed} | ${r.shape.initialSize / GiB}Gi | ${[r.ours, ...r.peers].map(cell).join(' | ')} | ${goal} |`);
        if (values.details) {
          for (const resize of r.ours.resizes) console.log(`    ${new Date(resize.at).toISOString()} ${resize.kind} ${resize.reason} -> ${(resize.to / GiB).toFixed(0)}Gi`);
        }
      }
    }
  }
  const missed = results.filter((r) => r.misses.length > 0);
  console.log(`\n${results.length - missed.length} of ${results.length} runs meet the goal.`);
  if (missed.length > 0) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) main();

/**
 * The agent's own cost at scale: 500 volumes (real tmpfs mounts at kubelet's CSI paths, in a `cnpg-ds-` temp dir),
 * probed every second by the real agent (prober, change stream, metrics, HTTP server) in a child process, with one
 * change-stream consumer connected, a writer changing 10 volumes a second and a metrics scrape every 15 s.
 * Reports the child's CPU share of one core (from /proc/<pid>/stat) and its memory (VmRSS, RssAnon, RssFile from
 * /proc/<pid>/status, sampled every second), per run and the median over the runs.
 *
 * Run as root: `node bench/agent-500.bench.ts [seconds=60] [volumes=500] [interval=1000] [runs=1]`; V8 flags for the agent
 * process go in AGENT_NODE_FLAGS (e.g. `--max-semi-space-size=1 --max-old-space-size=48`), its environment in AGENT_ENV
 * (e.g. `MALLOC_ARENA_MAX=1`).
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VolumeTarget } from '../agent/prober.ts';
import { AgentClient } from '../shared/agent-client.ts';
import { identity } from './targets.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Compiles the agent side to JavaScript under .cache/bench (inside the repository, so node_modules resolve). */
function compileChild(): string {
  const outDir = path.join(repoRoot, '.cache', 'bench');
  mkdirSync(outDir, { recursive: true });
  const tsconfig = path.join(outDir, 'tsconfig.json');
  writeFileSync(tsconfig, JSON.stringify({
    extends: '../../tsconfig.json', compilerOptions: { noEmit: false, outDir: '.', rootDir: '../..', types: ['node'] },
    include: [], files: ['../../bench/agent-child.ts'],
  }));
  execFileSync(path.join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', tsconfig], { stdio: 'inherit' });
  return path.join(outDir, 'bench', 'agent-child.js');
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

type MemoryField = 'VmRSS' | 'RssAnon' | 'RssFile';
const memoryFields: readonly MemoryField[] = ['VmRSS', 'RssAnon', 'RssFile'];

function memoryKiB(pid: number): Record<MemoryField, number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const read = (field: MemoryField): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { VmRSS: read('VmRSS'), RssAnon: read('RssAnon'), RssFile: read('RssFile') };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] ?? NaN : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

interface RunResult {
  wallSeconds: number;
  cpuPercent: number;
  /** Per field: the highest and the median of the one-second samples, KiB. */
  max: Record<MemoryField, number>;
  typical: Record<MemoryField, number>;
  eventsPerSecond: number;
  volumes: number;
  volumesOk: number;
}

interface Setup {
  childJs: string;
  targetsFile: string;
  mounts: readonly string[];
  seconds: number;
  intervalMs: number;
  nodeFlags: readonly string[];
  processMetrics: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function stopChild(proc: ReturnType<typeof spawn>): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exit = new Promise<boolean>((resolve) => { proc.once('exit', () => { resolve(true); }); });
  proc.kill('SIGTERM');
  if (!await Promise.race([exit, sleep(5000).then(() => false)])) proc.kill('SIGKILL');
}

async function runOnce(setup: Setup): Promise<RunResult> {
  const agentEnv = Object.fromEntries((process.env.AGENT_ENV ?? '').split(' ').filter(Boolean).map((kv) => [kv.split('=')[0] ?? '', kv.split('=').slice(1).join('=')]));
  const proc = spawn(process.execPath, [...setup.nodeFlags, setup.childJs, setup.targetsFile, String(setup.intervalMs), setup.processMetrics], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...agentEnv },
  });
  try {
    const url = await new Promise<string>((resolve) => { proc.stdout.once('data', (d: Buffer) => { resolve(d.toString().trim()); }); });
    const pid = proc.pid ?? 0;
    const client = new AgentClient({ baseUrl: url, token: () => 'bench' });
    let events = 0;
    const abort = new AbortController();
    const consumer = (async () => { for await (const _ of client.watch({ signal: abort.signal })) events++; })().catch(() => undefined);
    const writer = setInterval(() => {
      for (let k = 0; k < 10; k++) appendFileSync(path.join(setup.mounts[Math.floor(Math.random() * setup.mounts.length)] ?? '', 'wal'), Buffer.alloc(8192));
    }, 1000);
    const scraper = setInterval(() => { void client.metrics().catch(() => undefined); }, 15_000);
    await sleep(5000); // warm-up
    const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
    const t0 = performance.now();
    const c0 = cpuTicks(pid);
    const eventsAtStart = events;
    const samples: Record<MemoryField, number>[] = [];
    while (performance.now() - t0 < setup.seconds * 1000) {
      await sleep(1000);
      samples.push(memoryKiB(pid));
    }
    const cpuSeconds = (cpuTicks(pid) - c0) / ticksPerSecond;
    const wallSeconds = (performance.now() - t0) / 1000;
    clearInterval(writer);
    clearInterval(scraper);
    const snapshot = await client.snapshot();
    abort.abort();
    await consumer;
    await client.close();
    const column = (field: MemoryField): number[] => samples.map((s) => s[field]);
    const per = (pick: (values: number[]) => number): Record<MemoryField, number> =>
      ({ VmRSS: pick(column('VmRSS')), RssAnon: pick(column('RssAnon')), RssFile: pick(column('RssFile')) });
    return {
      wallSeconds, cpuPercent: (cpuSeconds / wallSeconds) * 100, max: per((v) => Math.max(...v)), typical: per(median),
      eventsPerSecond: (events - eventsAtStart) / wallSeconds,
      volumes: snapshot.volumes.length, volumesOk: snapshot.volumes.filter((v) => v.status === 'ok').length,
    };
  } finally {
    await stopChild(proc);
  }
}

const mib = (kib: number): string => (kib / 1024).toFixed(1);

function report(runs: readonly RunResult[]): void {
  const line = (label: string, values: (r: RunResult) => number, format: (n: number) => string): void => {
    const all = runs.map(values);
    console.log(`${label.padEnd(34)}${all.map(format).join('  ').padEnd(50)} median ${format(median(all))}`);
  };
  console.log(`${'per run'.padEnd(34)}${runs.map((_, i) => `#${i + 1}`).join('  ')}`);
  line('agent CPU, % of one core', (r) => r.cpuPercent, (n) => n.toFixed(2));
  for (const field of memoryFields) {
    line(`${field} max, MiB`, (r) => r.max[field], mib);
    line(`${field} median of samples, MiB`, (r) => r.typical[field], mib);
  }
  line('change events per second', (r) => r.eventsPerSecond, (n) => n.toFixed(1));
  line('volumes ok', (r) => r.volumesOk, String);
}

async function main(seconds: number, volumes: number, intervalMs: number, runCount: number): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark mounts one tmpfs per volume');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cnpg-ds-bench-'));
  const mounts: string[] = [];
  try {
    const targets: VolumeTarget[] = [];
    for (let i = 0; i < volumes; i++) {
      const mount = path.join(dir, 'kubelet', 'pods', `uid-${i}`, 'volumes', 'kubernetes.io~csi', `pv-${i}`, 'mount');
      mkdirSync(mount, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,nr_inodes=256', 'tmpfs', mount]);
      mounts.push(mount);
      targets.push({ identity: identity(i, mount), requireMountPoint: true });
    }
    const targetsFile = path.join(dir, 'targets.json');
    writeFileSync(targetsFile, JSON.stringify(targets));
    const setup: Setup = {
      childJs: compileChild(), targetsFile, mounts, seconds, intervalMs,
      nodeFlags: (process.env.AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean), processMetrics: process.env.PROCESS_METRICS ?? 'false',
    };
    console.log(`volumes ${volumes}, probe interval ${intervalMs} ms, ${seconds} s per run, ${runCount} run(s), load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`agent node flags: ${setup.nodeFlags.join(' ') || '(none)'}; environment: ${process.env.AGENT_ENV ?? '(none)'}; process metrics ${setup.processMetrics}`);
    const runs: RunResult[] = [];
    for (let i = 0; i < runCount; i++) runs.push(await runOnce(setup));
    report(runs);
    console.log(`load at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  } finally {
    for (const mount of mounts) {
      try { execFileSync('umount', [mount]); } catch { /* already gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(Number(process.argv[2] ?? 60), Number(process.argv[3] ?? 500), Number(process.argv[4] ?? 1000), Number(process.argv[5] ?? 1));

/**
 * The agent's own cost at scale: 500 volumes (real tmpfs mounts at kubelet's CSI paths, in a `cnpg-ds-` temp dir),
 * probed every second by the real agent (prober, change stream, metrics, HTTP server) in a child process, with one
 * change-stream consumer connected, a writer changing 10 volumes a second and a metrics scrape every 15 s.
 * Reports the child's CPU share of one core (from /proc/<pid>/stat) and its RSS (VmRSS).
 *
 * Run as root: `node bench/agent-500.bench.ts [seconds=60] [volumes=500] [interval=1000]`; V8 flags for the agent process
 * go in AGENT_NODE_FLAGS (e.g. `--max-semi-space-size=1 --max-old-space-size=48`).
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

function statusKiB(pid: number, field: 'VmRSS' | 'RssAnon' | 'RssFile'): number {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

const rssKiB = (pid: number): number => statusKiB(pid, 'VmRSS');

async function parent(seconds: number, volumes: number, intervalMs: number): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark mounts one tmpfs per volume');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cnpg-ds-bench-'));
  const mounts: string[] = [];
  let agentProcess: ReturnType<typeof spawn> | undefined;
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
    const nodeFlags = (process.env.AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const processMetrics = process.env.PROCESS_METRICS ?? 'false';
    const proc = spawn(process.execPath, [...nodeFlags, compileChild(), targetsFile, String(intervalMs), processMetrics], { stdio: ['ignore', 'pipe', 'inherit'] });
    agentProcess = proc;
    const url = await new Promise<string>((resolve) => { proc.stdout.once('data', (d: Buffer) => { resolve(d.toString().trim()); }); });
    const pid = proc.pid ?? 0;
    const client = new AgentClient({ baseUrl: url, token: () => 'bench' });
    let events = 0;
    const abort = new AbortController();
    const consumer = (async () => { for await (const _ of client.watch({ signal: abort.signal })) events++; })().catch(() => undefined);
    const writer = setInterval(() => {
      for (let k = 0; k < 10; k++) appendFileSync(path.join(mounts[Math.floor(Math.random() * mounts.length)] ?? '', 'wal'), Buffer.alloc(8192));
    }, 1000);
    const scraper = setInterval(() => { void client.metrics().catch(() => undefined); }, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 5000)); // warm-up
    const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
    const t0 = performance.now();
    const c0 = cpuTicks(pid);
    const eventsAtStart = events;
    let maxRss = 0;
    while (performance.now() - t0 < seconds * 1000) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      maxRss = Math.max(maxRss, rssKiB(pid));
    }
    const cpuSeconds = (cpuTicks(pid) - c0) / ticksPerSecond;
    const wall = (performance.now() - t0) / 1000;
    clearInterval(writer);
    clearInterval(scraper);
    const snapshot = await client.snapshot();
    abort.abort();
    await consumer;
    await client.close();
    console.log(`volumes                        ${snapshot.volumes.length} (${snapshot.volumes.filter((v) => v.status === 'ok').length} ok)`);
    console.log(`probe interval                 ${intervalMs} ms`);
    console.log(`agent node flags               ${nodeFlags.join(' ') || '(none)'}; process metrics ${processMetrics}`);
    console.log(`measured                       ${wall.toFixed(1)} s`);
    console.log(`agent CPU                      ${((cpuSeconds / wall) * 100).toFixed(2)} % of one core`);
    console.log(`agent RSS (max, current)       ${(maxRss / 1024).toFixed(1)} MiB, ${(rssKiB(pid) / 1024).toFixed(1)} MiB`);
    console.log(`  of which anonymous, file     ${(statusKiB(pid, 'RssAnon') / 1024).toFixed(1)} MiB, ${(statusKiB(pid, 'RssFile') / 1024).toFixed(1)} MiB (file: the node binary and libraries, shared)`);
    console.log(`change events streamed         ${events - eventsAtStart} (${((events - eventsAtStart) / wall).toFixed(1)}/s)`);
  } finally {
    agentProcess?.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const mount of mounts) {
      try { execFileSync('umount', [mount]); } catch { /* already gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await parent(Number(process.argv[2] ?? 60), Number(process.argv[3] ?? 500), Number(process.argv[4] ?? 1000));

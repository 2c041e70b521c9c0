/**
 * Cost of one statfs: koffi `statvfs` into a reused buffer vs `fs.statfsSync`, and of one full probe per volume (mount
 * check + statfs + change detection) in a prober pass. Run: `node bench/statfs.bench.ts [path]`.
 * As root it measures on a fresh tmpfs (a `cnpg-ds-` temp dir, unmounted afterwards); otherwise on the given path or /tmp.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Prober, statfsMountCheck, type VolumeTarget } from '../agent/prober.ts';
import { createKoffiStatfs, createNodeStatfs, type Statfs } from '../agent/statfs.ts';
import { silentLogger } from '../test/harness/log.ts';
import { identity } from './targets.ts';

const rounds = 7;
const callsPerRound = 200_000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function perCallNs(fn: () => void, calls: number): number {
  for (let i = 0; i < 20_000; i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / calls);
  }
  return median(samples);
}

function probePassNsPerVolume(statfs: Statfs, mount: string, volumes: number): number {
  const targets: VolumeTarget[] = Array.from({ length: volumes }, (_, i) => ({ identity: identity(i, mount), requireMountPoint: true }));
  // As the agent wires it: the mount check through the implementation's own stat(2) where it has one.
  const prober = new Prober({ node: 'bench', epoch: 'bench', intervalMs: 1000, statfs, logger: silentLogger, ...statfsMountCheck(statfs) });
  prober.setTargets(targets);
  return perCallNs(() => { prober.probeAll(); }, Math.max(1, Math.floor(callsPerRound / volumes / 4))) / volumes;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cnpg-ds-bench-'));
let mount = process.argv[2] ?? '';
let mounted = false;
try {
  if (!mount) {
    mount = path.join(dir, 'mount');
    mkdirSync(mount);
    if (process.getuid?.() === 0) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mount]);
      mounted = true;
    }
  }
  const koffi = await createKoffiStatfs();
  const node = createNodeStatfs();
  const results = {
    path: mount,
    filesystem: mounted ? 'tmpfs' : 'as given',
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    'koffi statvfs ns/call': perCallNs(() => { koffi.statfs(mount); }, callsPerRound),
    'fs.statfsSync ns/call': perCallNs(() => { node.statfs(mount); }, callsPerRound),
    'full probe (koffi) ns/volume, 500 volumes': mounted ? probePassNsPerVolume(koffi, mount, 500) : 'needs a mount point (run as root)',
    'full probe (node) ns/volume, 500 volumes': mounted ? probePassNsPerVolume(node, mount, 500) : 'needs a mount point (run as root)',
  };
  for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(44)} ${typeof v === 'number' ? v.toFixed(0) : v}`);
} finally {
  if (mounted) execFileSync('umount', [mount]);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The product's images as hack/images/build.sh builds them without a registry: each archive imports into containerd
 * under the name the manifests use, starts, holds only its own component's dependencies, and the agent's and the
 * controller's have no shell, package manager or npm. A private containerd (its own root, state and socket in a temp
 * dir, no CRI) runs them with `ctr run`; it is stopped and its mounts and files are removed afterwards, also on failure.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startProcess, type ManagedProcess } from '../../harness/processes.ts';

const repo = path.resolve(import.meta.dirname, '../../..');
const buildScript = path.join(repo, 'hack/images/build.sh');
const importScript = path.join(repo, 'hack/images/import.sh');
const mib = 1024 * 1024;

interface Result { code: number; stdout: string; stderr: string }

function run(file: string, args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: repo, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * mib, env: options.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

async function mustRun(file: string, args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run(file, args, options);
  assert.equal(r.code, 0, `${file} ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** `name value` lines, as build.sh prints them. */
function pairs(text: string): Map<string, string> {
  return new Map(text.trim().split('\n').map((line) => {
    const [name = '', value = ''] = line.split(' ');
    return [name, value] as const;
  }));
}

/** The image a manifest of daemonset/ runs. */
function manifestImage(file: string): string {
  const match = /image:\s*(\S+)/.exec(readFileSync(path.join(repo, file), 'utf8'));
  assert.ok(match?.[1], `no image in ${file}`);
  return match[1];
}

/** Paths under root whose file name is one of names (root's own path left off). */
function findFiles(root: string, names: Set<string>): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (names.has(entry.name)) found.push(full.slice(root.length));
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return found;
}

/** Sum of an OCI archive's layer sizes (what a registry would send), from its index and manifest. */
function compressedSize(archive: string): number {
  const member = (name: string): string => execFileSync('tar', ['-xOf', archive, name], { encoding: 'utf8', maxBuffer: 16 * mib });
  const blob = (digest: string): string => member(`./blobs/sha256/${digest.replace(/^sha256:/, '')}`);
  const index = JSON.parse(member('./index.json')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]?.digest;
  assert.ok(manifestDigest, `no manifest in ${archive}`);
  const manifest = JSON.parse(blob(manifestDigest)) as { layers: { size: number }[] };
  return manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
}

describe('container images (hack/images/build.sh) on a private containerd', function () {
  let dir = '';
  let socket = '';
  let containerd: ManagedProcess | undefined;
  let archives = new Map<string, string>();
  let images = new Map<string, string>();
  const sizes: string[] = [];
  let seq = 0;

  const ctr = (args: string[], timeoutMs?: number): Promise<Result> =>
    run('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args], timeoutMs === undefined ? {} : { timeoutMs });
  /** `ctr run --rm` of an image with its entrypoint, or with the given process arguments. */
  const runImage = (component: string, opts: string[], args: string[] = []): Promise<Result> => {
    const image = images.get(component);
    assert.ok(image, `no ${component} image`);
    seq++;
    return ctr(['run', '--rm', ...opts, image, `cnpg-ds-images-${process.pid}-${seq}`, ...args], 60_000);
  };
  /** Runs fn on the image's root filesystem, mounted read-only from containerd's snapshot. */
  const withMountedImage = async <T>(component: string, fn: (root: string) => T): Promise<T> => {
    const target = path.join(dir, `mnt-${component}`);
    mkdirSync(target, { recursive: true });
    const mounted = await ctr(['images', 'mount', images.get(component) ?? '', target]);
    assert.equal(mounted.code, 0, mounted.stderr);
    try {
      return fn(target);
    } finally {
      await ctr(['images', 'unmount', '--rm', target]);
    }
  };
  /** A node script run in an image with its own node, as the image's user, in /app. */
  const nodeIn = (component: string, script: string): Promise<Result> =>
    runImage(component, ['--cwd', '/app'], ['node', '--input-type=module', '-e', script]);

  before(async function () {
    this.timeout(45 * 60_000);
    if (process.platform !== 'linux' || process.arch !== 'x64' || process.getuid?.() !== 0) {
      this.skip();
    }
    const started = Date.now();
    archives = pairs(await mustRun(buildScript, ['all'], { timeoutMs: 40 * 60_000 }));
    console.log(`      images built or found in the cache in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (!existsSync('/usr/bin/containerd')) {
      await mustRun('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc'],
        { timeoutMs: 10 * 60_000 });
    }
    images = pairs(await mustRun(buildScript, ['--names', 'all']));

    dir = await mkdtemp(path.join(process.env.TMPDIR ?? os.tmpdir(), 'cnpg-ds-images-'));
    socket = path.join(dir, 'containerd.sock');
    const config = path.join(dir, 'config.toml');
    writeFileSync(config, [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'));
    containerd = startProcess('containerd', '/usr/bin/containerd', ['--config', config], path.join(dir, 'containerd.log'));
    const deadline = Date.now() + 30_000;
    while ((await ctr(['version'], 5_000)).code !== 0) {
      if (containerd.exited() || Date.now() > deadline) assert.fail(`containerd did not start:\n${await containerd.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const importStarted = Date.now();
    await mustRun(importScript, ['--address', socket, 'all'], { timeoutMs: 10 * 60_000 });
    console.log(`      imported into containerd in ${((Date.now() - importStarted) / 1000).toFixed(1)} s`);
  });

  after(async function () {
    this.timeout(120_000);
    if (sizes.length > 0) console.log(`      sizes (compressed / unpacked):\n${sizes.map((s) => `        ${s}`).join('\n')}`);
    if (containerd && !containerd.exited()) {
      for (const id of (await ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
        await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
        await ctr(['tasks', 'rm', '-f', id]);
        await ctr(['containers', 'rm', id]);
      }
      await containerd.stop();
    }
    if (dir === '') return;
    // Shims of containers that were not removed carry this containerd's socket in their arguments.
    const shims = (await run('pgrep', ['-f', `-address ${socket}`])).stdout.split('\n').filter(Boolean).map(Number);
    for (const pid of shims) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
    }
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '')
      .filter((mountPoint) => mountPoint.startsWith(`${dir}/`)).reverse();
    for (const mountPoint of mounts) await run('umount', ['-l', mountPoint]);
    await rm(dir, { recursive: true, force: true });
  });

  it('builds one archive per image and imports each under the name the manifests use', async () => {
    assert.deepEqual([...archives.keys()].sort(), ['agent', 'cnpg', 'controller', 'pause', 'postgresql', 'workload']);
    assert.equal(images.get('agent'), manifestImage('daemonset/daemonset.yaml'));
    assert.equal(images.get('controller'), manifestImage('daemonset/controller.yaml'));
    const listed = (await ctr(['images', 'ls', '-q'])).stdout.split('\n');
    for (const image of images.values()) assert.ok(listed.includes(image), `${image} not in ${listed.join(', ')}`);
  });

  it('builds again from the cache without changing an archive', async function () {
    this.timeout(10 * 60_000);
    const started = Date.now();
    const again = pairs(await mustRun(buildScript, ['all'], { timeoutMs: 10 * 60_000 }));
    assert.deepEqual(again, archives);
    assert.ok(Date.now() - started < 60_000, `a cached build took ${Date.now() - started} ms`);
  });

  it('agent: Node 24 runs as 65532, the entrypoint loads every module and stops on its missing configuration', async () => {
    const version = await nodeIn('agent', 'console.log(process.version, process.getuid())');
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout.trim(), /^v24\.\d+\.\d+ 65532$/);
    const start = await runImage('agent', []);
    assert.equal(start.code, 2, `${start.stdout}${start.stderr}`);
    assert.match(start.stdout + start.stderr, /invalid configuration/);
    assert.match(start.stdout + start.stderr, /NODE_NAME/);
  });

  it("agent: koffi's native binary for linux x64 is there and the agent's koffi statfs reads a filesystem", async () => {
    const r = await nodeIn('agent', [
      "import fs from 'node:fs';",
      "const native = fs.existsSync('node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node');",
      "const { createStatfs } = await import('/app/dist/agent/statfs.js');",
      "const s = await createStatfs('koffi');",
      "console.log(JSON.stringify({ native, implementation: s.implementation, root: s.statfs('/'), device: s.device?.('/') }));",
    ].join('\n'));
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { native: boolean; implementation: string; root: { blocks: number; blockSize: number }; device: number };
    assert.equal(out.native, true);
    assert.equal(out.implementation, 'koffi');
    assert.ok(out.root.blocks > 0 && out.root.blockSize > 0, r.stdout);
    assert.equal(typeof out.device, 'number');
  });

  it('controller: the entrypoint loads every module and reports an invalid configuration', async () => {
    const start = await runImage('controller', ['--env', 'LOG_LEVEL=loud']);
    assert.equal(start.code, 1, `${start.stdout}${start.stderr}`);
    assert.match(start.stderr, /controller failed to start/);
    assert.match(start.stderr, /LOG_LEVEL/);
    assert.doesNotMatch(start.stderr, /ERR_MODULE_NOT_FOUND/);
  });

  it('controller: time zones for maintenance windows (ICU in Node) and host names through /etc/hosts (glibc without NSS modules)', async () => {
    const r = await runImage('controller', ['--cwd', '/app', '--mount', 'type=bind,src=/etc/hosts,dst=/etc/hosts,options=rbind:ro'], [
      'node', '--input-type=module', '-e', [
        "import dns from 'node:dns/promises';",
        "import { DateTime } from 'luxon';",
        "const berlin = DateTime.fromISO('2026-07-01T12:00:00Z').setZone('Europe/Berlin');",
        "console.log(JSON.stringify({ berlin: berlin.toISO(), localhost: (await dns.lookup('localhost', { family: 4 })).address }));",
      ].join('\n'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { berlin: '2026-07-01T14:00:00.000+02:00', localhost: '127.0.0.1' });
  });

  for (const [component, own, foreign] of [
    ['agent', ['koffi', 'prom-client', 'yaml'], ['@kubernetes', 'undici', 'luxon', 'cron-parser', 'typescript', 'mocha']],
    ['controller', ['@kubernetes', 'cron-parser', 'luxon', 'prom-client', 'undici'], ['koffi', '@koromix', 'yaml', 'typescript', 'mocha']],
  ] as const) {
    it(`${component}: only its own dependencies, and no shell, package manager or npm anywhere`, async () => {
      const { found, modules } = await withMountedImage(component, (root) => ({
        found: findFiles(root, new Set(['sh', 'bash', 'dash', 'ash', 'busybox', 'apt', 'apt-get', 'dpkg', 'npm', 'npx', 'npm-cli.js', 'corepack', 'yarn'])),
        modules: readdirSync(path.join(root, 'app/node_modules')).filter((name) => !name.startsWith('.')),
      }));
      assert.deepEqual(found, []);
      for (const name of own) assert.ok(modules.includes(name), `${name} missing from ${modules.join(', ')}`);
      for (const name of foreign) assert.ok(!modules.includes(name), `${name} in the ${component} image`);
      const shell = await runImage(component, [], ['/bin/sh', '-c', 'true']);
      assert.notEqual(shell.code, 0);
    });
  }

  it('pause: the static pause binary of the pinned Kubernetes', async () => {
    const r = await runImage('pause', [], ['/pause', '-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /pause\.c v3\.\d+\.\d+/);
  });

  it('workload: a shell with df, dd, fallocate and sleep', async () => {
    const r = await runImage('workload', [], ['sh', '-c',
      'df -P / >/dev/null && fallocate -l 1M /tmp/f && dd if=/dev/zero of=/tmp/g bs=64k count=2 status=none && sleep 0.1 && echo ok']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ok');
  });

  it('cnpg: the operator and instance manager of the pinned CloudNativePG, laid out as upstream (operator/manager_amd64)', async () => {
    const r = await runImage('cnpg', [], ['/manager', 'version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Version:1\.30\.0/);
    const direct = await runImage('cnpg', [], ['/operator/manager_amd64', 'version']);
    assert.equal(direct.code, 0, direct.stderr);
  });

  it('postgresql: Debian\'s PostgreSQL 15 on PATH, run as postgres with uid and gid 26 (CloudNativePG\'s defaults)', async () => {
    const r = await runImage('postgresql', [], ['sh', '-c', 'id -u; id -g; id -un; postgres --version; initdb --version; pg_basebackup --version']);
    assert.equal(r.code, 0, r.stderr);
    const [uid, gid, name, ...versions] = r.stdout.trim().split('\n');
    assert.deepEqual([uid, gid, name], ['26', '26', 'postgres']);
    for (const line of versions) assert.match(line, /\(PostgreSQL\) 15\./);
  });

  it('sizes stay within their budgets', async function () {
    this.timeout(120_000);
    // compressed MiB, unpacked MiB
    const budgets: Record<string, [number, number]> = {
      agent: [60, 150], controller: [65, 185], pause: [1, 2], workload: [45, 130], cnpg: [30, 100], postgresql: [160, 450],
    };
    for (const [component, archive] of archives) {
      const compressed = compressedSize(archive);
      const unpacked = await withMountedImage(component, (root) => Number(execFileSync('du', ['-sb', root], { encoding: 'utf8' }).split('\t')[0]));
      sizes.push(`${images.get(component)}: ${(compressed / mib).toFixed(1)} MiB / ${(unpacked / mib).toFixed(1)} MiB`);
      const [maxCompressed, maxUnpacked] = budgets[component] ?? [0, 0];
      assert.ok(compressed < maxCompressed * mib, `${component}: ${compressed} bytes compressed`);
      assert.ok(unpacked < maxUnpacked * mib, `${component}: ${unpacked} bytes unpacked`);
    }
  });

  it('import.sh --remove takes every image out of containerd again', async () => {
    await mustRun(importScript, ['--address', socket, '--remove', 'all']);
    const listed = (await ctr(['images', 'ls', '-q'])).stdout.split('\n');
    for (const image of images.values()) assert.ok(!listed.includes(image), `${image} still there`);
  });
});

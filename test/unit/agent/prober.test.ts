import assert from 'node:assert/strict';
import { silentLogger } from '../../harness/log.ts';
import { Prober, usageFromStatfs, type ChangeEvent, type PassStats } from '../../../agent/prober.ts';
import { FakeMounts, FakeStatfs, ManualClock, target } from './fakes.ts';

function setup(interval = 1000): { prober: Prober; statfs: FakeStatfs; clock: ManualClock; mounts: FakeMounts; events: ChangeEvent[]; passes: PassStats[]; errors: string[] } {
  const statfs = new FakeStatfs();
  const clock = new ManualClock();
  const mounts = new FakeMounts();
  const events: ChangeEvent[] = [];
  const passes: PassStats[] = [];
  const errors: string[] = [];
  const prober = new Prober({
    node: 'node-a', epoch: 'e1', intervalMs: interval, statfs, mountCheck: mounts, clock, scheduler: clock, logger: silentLogger,
    onPass: (s) => passes.push(s), onProbeError: (code) => errors.push(code),
  });
  prober.subscribe((batch) => events.push(...batch));
  return { prober, statfs, clock, mounts, events, passes, errors };
}

describe('agent prober', () => {
  it('computes usage as df does: used = total - free, available = bavail, Use% rounded up over used + available', () => {
    const usage = usageFromStatfs({ blockSize: 4096, blocks: 1000, blocksFree: 300, blocksAvailable: 250, files: 64, filesFree: 60 });
    assert.deepEqual(usage, {
      totalBytes: 4_096_000, usedBytes: 2_867_200, availableBytes: 1_024_000, freeBytes: 1_228_800,
      percentUsed: 74, // 700 * 100 / (700 + 250) = 73.68 -> 74
      inodesTotal: 64, inodesUsed: 4, inodesFree: 60, inodesPercentUsed: 7, // 6.25 -> 7
    });
  });

  it('probes new volumes at once and emits UPDATED with sequence numbers', () => {
    const { prober, statfs, events } = setup();
    const t = target('pg-1');
    statfs.set(t.identity.path, { blocksFree: 900, blocksAvailable: 900 });
    prober.setTargets([t]);
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event?.type, 'UPDATED');
    assert.equal(event.seq, 1);
    assert.equal(event.volume.usage?.usedBytes, 100 * 4096);
    assert.equal(event.volume.sampledAt, '2025-01-02T03:04:05.000Z');
    assert.equal(prober.seq, 1);
  });

  it('emits only when a reading changed, and keeps the sample time fresh otherwise', () => {
    const { prober, statfs, clock, events } = setup();
    const t = target('pg-1');
    statfs.set(t.identity.path, { blocksFree: 900 });
    prober.setTargets([t]);
    prober.start();
    clock.advance(3000);
    assert.equal(events.length, 1);
    assert.equal(prober.readings()[0]?.sampledAt, '2025-01-02T03:04:08.000Z');
    assert.equal(prober.readings()[0]?.changedAt, '2025-01-02T03:04:05.000Z');
    statfs.set(t.identity.path, { blocksFree: 899 });
    clock.advance(1000);
    assert.equal(events.length, 2);
    assert.equal(events[1]?.type === 'UPDATED' && events[1].volume.usage?.usedBytes, 101 * 4096);
    assert.equal(prober.readings()[0]?.changedAt, '2025-01-02T03:04:09.000Z');
    prober.stop();
  });

  it('sends an unchanged reading again every 30 s, so a quiet volume never looks stale', () => {
    const { prober, statfs, clock, events } = setup();
    const t = target('pg-1');
    statfs.set(t.identity.path, { blocksFree: 900 });
    prober.setTargets([t]);
    prober.start();
    clock.advance(29_000);
    assert.equal(events.length, 1, 'nothing new to say for 29 s');
    clock.advance(1_000);
    assert.equal(events.length, 2);
    const refreshed = events[1];
    assert.ok(refreshed?.type === 'UPDATED');
    assert.equal(refreshed.volume.sampledAt, '2025-01-02T03:04:35.000Z');
    assert.equal(refreshed.volume.changedAt, '2025-01-02T03:04:05.000Z', 'the usage did not change');
    clock.advance(30_000);
    assert.equal(events.length, 3);
    prober.stop();
  });

  it('runs at a fixed rate and skips missed ticks after a stall', () => {
    const { prober, clock, passes } = setup(1000);
    prober.setTargets([]);
    prober.start();
    assert.equal(passes.length, 1);
    clock.advance(2999);
    assert.equal(passes.length, 3);
    clock.advance(1);
    assert.equal(passes.length, 4);
    prober.stop();
    assert.equal(clock.pending, 0);
    clock.advance(10_000);
    assert.equal(passes.length, 4);
  });

  it('reports errno errors once per change and counts every failed probe', () => {
    const { prober, statfs, clock, events, errors } = setup();
    const t = target('pg-1');
    statfs.set(t.identity.path, {});
    prober.setTargets([t]);
    prober.start();
    statfs.set(t.identity.path, 'EACCES');
    clock.advance(2000);
    assert.deepEqual(errors, ['EACCES', 'EACCES']);
    const updates = events.filter((e) => e.type === 'UPDATED');
    assert.equal(updates.length, 2);
    const last = prober.readings()[0];
    assert.equal(last?.status, 'error');
    assert.equal(last.error?.code, 'EACCES');
    assert.match(last.error.message, /permission denied/);
    assert.equal(last.usage, undefined);
    statfs.results.delete(t.identity.path);
    clock.advance(1000);
    assert.equal(prober.readings()[0]?.error?.code, 'ENOENT');
    prober.stop();
  });

  it('refuses to report a directory that is not a mount point', () => {
    const { prober, statfs, mounts, events } = setup();
    const t = target('pg-1');
    statfs.set(t.identity.path, {});
    mounts.unmounted.add(t.identity.path);
    prober.setTargets([t]);
    assert.equal(prober.readings()[0]?.error?.code, 'NotMounted');
    mounts.unmounted.clear();
    prober.probeAll();
    assert.equal(prober.readings()[0]?.status, 'ok');
    assert.equal(events.length, 2);
  });

  it('checks the mount again whenever the numbers change, and not while they stay the same', () => {
    const { prober, statfs, mounts } = setup();
    const t = target('pg-1');
    statfs.set(t.identity.path, { blocksFree: 900 });
    prober.setTargets([t]);
    assert.equal(prober.readings()[0]?.status, 'ok');
    const checks = (): number => mounts.checks;
    const before = checks();
    prober.probeAll();
    prober.probeAll();
    assert.equal(checks(), before, 'unchanged numbers: the same filesystem, no stat');
    // Unmounted under the agent: the directory now reads kubelet's filesystem, whose numbers differ.
    mounts.unmounted.add(t.identity.path);
    statfs.set(t.identity.path, { blocks: 50_000, blocksFree: 20_000 });
    prober.probeAll();
    assert.equal(prober.readings()[0]?.error?.code, 'NotMounted');
    assert.ok(checks() > before);
  });

  it('skips the mount check where a volume need not be its own mount (local volumes)', () => {
    const { prober, statfs, mounts } = setup();
    const t = target('pg-1', 'data', { requireMountPoint: false });
    statfs.set(t.identity.path, {});
    mounts.unmounted.add(t.identity.path);
    prober.setTargets([t]);
    assert.equal(prober.readings()[0]?.status, 'ok');
  });

  it('reports unsupported volumes without probing them', () => {
    const { prober, statfs, events } = setup();
    prober.setTargets([target('pg-1', 'data', { unsupported: { reason: 'BlockMode', message: 'raw block' } })]);
    prober.probeAll();
    assert.equal(statfs.calls, 0);
    assert.equal(events.length, 1);
    assert.equal(prober.readings()[0]?.status, 'unsupported');
    assert.deepEqual(prober.readings()[0]?.unsupported, { reason: 'BlockMode', message: 'raw block' });
  });

  it('emits REMOVED for volumes that leave and re-announces a volume whose pod changed', () => {
    const { prober, statfs, events } = setup();
    const a = target('pg-1');
    const b = target('pg-1-wal', 'wal');
    statfs.set(a.identity.path, {});
    statfs.set(b.identity.path, {});
    prober.setTargets([a, b]);
    events.length = 0;
    prober.setTargets([a, b]);
    assert.equal(events.length, 0, 'same targets: nothing to say');
    prober.setTargets([a]);
    assert.deepEqual(events.map((e) => [e.type, e.type === 'REMOVED' ? e.key : '']), [['REMOVED', 'db/pg-1-wal']]);
    const moved = { ...a, identity: { ...a.identity, podUid: 'uid-new', path: '/kubelet/pods/uid-new/mount' } };
    statfs.set(moved.identity.path, {});
    prober.setTargets([moved]);
    assert.equal(events.length, 2);
    assert.equal(events[1]?.type === 'UPDATED' && events[1].volume.podUid, 'uid-new');
    assert.deepEqual(prober.readings().map((r) => r.key), ['db/pg-1']);
  });

  it('snapshots every reading in key order with the latest sequence number', () => {
    const { prober, statfs } = setup();
    const targets = [target('pg-2'), target('pg-1'), target('pg-1-tbs-tbs1', 'tablespace')];
    for (const t of targets) statfs.set(t.identity.path, {});
    prober.setTargets(targets);
    prober.probeAll();
    const list = prober.snapshot();
    assert.equal(list.kind, 'VolumeList');
    assert.equal(list.apiVersion, 'agent.dynamicstorage.cnpg.io/v1');
    assert.equal(list.seq, 3);
    assert.equal(list.probedAt, '2025-01-02T03:04:05.000Z');
    assert.deepEqual(list.volumes.map((v) => v.key), ['db/pg-1', 'db/pg-1-tbs-tbs1', 'db/pg-2']);
    assert.equal(list.volumes[1]?.tablespace, 'tbs1');
  });

  it('keeps running when a listener throws', () => {
    const { prober, statfs, events } = setup();
    prober.subscribe(() => { throw new Error('boom'); });
    const t = target('pg-1');
    statfs.set(t.identity.path, {});
    prober.setTargets([t]);
    assert.equal(events.length, 1);
  });
});

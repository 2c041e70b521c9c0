import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKoffiStatfs, createNodeStatfs, decodeStatvfs, StatfsError, type Statfs } from '../../../agent/statfs.ts';

function encode(fields: number[]): Buffer {
  const buf = Buffer.alloc(112);
  fields.forEach((v, i) => { buf.writeBigUInt64LE(BigInt(v), i * 8); });
  return buf;
}

describe('agent statfs', () => {
  let koffi: Statfs;
  const node = createNodeStatfs();
  let tmp: string;

  before(async () => {
    koffi = await createKoffiStatfs();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cnpg-ds-statfs-'));
    fs.writeFileSync(path.join(tmp, 'file'), 'x');
  });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  it('decodes glibc struct statvfs: frsize is the unit, 64-bit counts stay exact', () => {
    // bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax
    const big = 2 ** 40 + 7;
    const result = decodeStatvfs(encode([65536, 4096, big, 1000, 900, 5_000_000_000, 42, 42, 1, 0, 255]));
    assert.deepEqual(result, { blockSize: 4096, blocks: big, blocksFree: 1000, blocksAvailable: 900, files: 5_000_000_000, filesFree: 42 });
  });

  it('falls back to f_bsize when f_frsize is 0', () => {
    assert.equal(decodeStatvfs(encode([512, 0, 1, 1, 1, 1, 1, 1, 0, 0, 255])).blockSize, 512);
  });

  for (const dir of ['/', '/proc', '/dev/shm']) {
    it(`koffi statvfs and fs.statfsSync agree on ${dir}`, function () {
      if (!fs.existsSync(dir)) this.skip();
      // Static filesystems only: a busy one may change between the two calls.
      const a = koffi.statfs(dir);
      const b = node.statfs(dir);
      assert.equal(a.blockSize, b.blockSize);
      assert.equal(a.blocks, b.blocks);
      assert.equal(a.files, b.files);
    });
  }

  it('koffi stat(2) reads the same device as fs.statSync, and fails with the errno name', () => {
    assert.ok(koffi.device !== undefined, 'glibc exports stat');
    for (const dir of ['/', '/proc', '/dev/shm', tmp]) {
      if (fs.existsSync(dir)) assert.equal(koffi.device(dir), fs.statSync(dir).dev, dir);
    }
    assert.notEqual(koffi.device('/proc'), koffi.device('/'));
    assert.throws(() => koffi.device?.(path.join(tmp, 'missing')), { code: 'ENOENT' });
  });

  for (const impl of ['koffi', 'node'] as const) {
    it(`${impl}: ENOENT for a path that went away, ENOTDIR through a file`, () => {
      const s = impl === 'koffi' ? koffi : node;
      assert.equal(s.implementation, impl);
      const missing = path.join(tmp, 'gone', 'mount');
      assert.throws(() => s.statfs(missing), (err: unknown) => {
        assert.ok(err instanceof StatfsError);
        assert.equal(err.code, 'ENOENT');
        assert.equal(err.errno, 2);
        assert.equal(err.path, missing);
        assert.match(err.message, /no such file or directory/);
        return true;
      });
      assert.throws(() => s.statfs(path.join(tmp, 'file', 'x')), { code: 'ENOTDIR' });
    });
  }

  it('koffi: EACCES where the caller may not traverse a directory (run as an unprivileged user)', function () {
    const locked = path.join(tmp, 'locked');
    fs.mkdirSync(path.join(locked, 'inner'), { recursive: true });
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(locked, 0o700);
    const statfsUrl = new URL('../../../agent/statfs.ts', import.meta.url).href;
    const script = `import { createKoffiStatfs } from ${JSON.stringify(statfsUrl)};
      const s = await createKoffiStatfs();
      try { s.statfs(${JSON.stringify(path.join(locked, 'inner'))}); console.log('no error'); }
      catch (err) { console.log(err.code, err.errno); }`;
    if (process.getuid?.() !== 0) {
      assert.throws(() => koffi.statfs(path.join(locked, 'inner')), { code: 'EACCES' });
      return;
    }
    // As root (CAP_DAC_OVERRIDE) nothing is refused: ask as nobody instead.
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    assert.equal(out.trim(), 'EACCES 13');
  });
});

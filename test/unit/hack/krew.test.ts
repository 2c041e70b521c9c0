import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseChecksums, renderKrewManifest, ReleaseError } from '../../../hack/release/krew.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const template = readFileSync(path.join(repoRoot, 'hack/release/cnpg-storage.krew.yaml'), 'utf8');
const platforms = ['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64'];
const archive = (platform: string): string => `kubectl-cnpg-storage-${platform}.tar.gz`;
// A distinct checksum per archive, as sha256sum prints them (one in binary mode), with the checksum file itself listed.
const sums = platforms.map((p, i) => `${String(i + 1).repeat(64)}  ${archive(p)}`);
const checksumsText = [sums[0], sums[1], sums[2]?.replace('  ', ' *'), sums[3], `${'f'.repeat(64)}  checksums.txt`, ''].join('\n');

interface KrewPlugin {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    version: string; homepage: string; shortDescription: string; description: string;
    platforms: { selector: { matchLabels: { os: string; arch: string } }; uri: string; sha256: string; bin: string }[];
  };
}

describe('the krew manifest of a release', () => {
  const release = { version: 'v1.4.0', repository: 'example/cnpg-dynamic-storage', checksums: parseChecksums(checksumsText) };

  it('is a krew Plugin with every field krew requires, filled from the release', () => {
    const rendered = renderKrewManifest(template, release);
    assert.doesNotMatch(rendered, /\{\{|\}\}/);
    const plugin = parse(rendered) as KrewPlugin;
    assert.equal(plugin.apiVersion, 'krew.googlecontainertools.github.com/v1alpha2');
    assert.equal(plugin.kind, 'Plugin');
    assert.equal(plugin.metadata.name, 'cnpg-storage');
    assert.equal(plugin.spec.version, 'v1.4.0');
    assert.equal(plugin.spec.homepage, 'https://github.com/example/cnpg-dynamic-storage');
    assert.ok(plugin.spec.shortDescription.length > 0 && plugin.spec.shortDescription.length <= 50, 'a short description krew-index accepts');
    assert.ok(plugin.spec.description.length > 0);
    assert.deepEqual(plugin.spec.platforms.map((p) => `${p.selector.matchLabels.os}-${p.selector.matchLabels.arch}`), platforms);
    plugin.spec.platforms.forEach((p, i) => {
      const platform = platforms[i] ?? '';
      assert.equal(p.uri, `https://github.com/example/cnpg-dynamic-storage/releases/download/v1.4.0/${archive(platform)}`);
      assert.equal(p.sha256, String(i + 1).repeat(64), platform);
      assert.equal(p.bin, 'kubectl-cnpg-storage');
    });
  });

  it('refuses to render with a checksum missing, a placeholder it does not know, or a version krew rejects', () => {
    const partial = new Map([...release.checksums].filter(([file]) => !file.includes('darwin-arm64')));
    assert.throws(() => renderKrewManifest(template, { ...release, checksums: partial }), (err: unknown) => err instanceof ReleaseError && err.code === 'MissingChecksum' && /darwin-arm64/.test(err.message));
    assert.throws(() => renderKrewManifest(`${template}# {{ tag }}\n`, release), { code: 'UnknownPlaceholder' });
    for (const version of ['1.4.0', 'v1.4', 'latest', 'v1.4.0\nkind: x']) {
      assert.throws(() => renderKrewManifest(template, { ...release, version }), { code: 'BadVersion' }, version);
    }
    assert.throws(() => renderKrewManifest(template, { ...release, repository: 'no-owner' }), { code: 'BadRepository' });
    assert.throws(() => renderKrewManifest('a: {{version}}\n  b: [', release), /./);
  });

  it('reads sha256sum output and nothing else', () => {
    assert.equal(release.checksums.get(archive('darwin-amd64')), '3'.repeat(64));
    assert.equal(release.checksums.size, 5);
    assert.throws(() => parseChecksums('abc  file\n'), { code: 'BadChecksums' });
  });
});

/**
 * Renders the plugin's krew manifest from its template for one release:
 *   node hack/release/krew.ts TEMPLATE CHECKSUMS VERSION REPOSITORY > cnpg-storage.yaml
 * CHECKSUMS is `sha256sum` output (`<hex>  <file>` per line). Placeholders: `{{version}}`, `{{repository}}` (owner/name)
 * and `{{sha256 <file>}}`. Every placeholder must be filled, or nothing is printed.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export type ReleaseErrorCode = 'BadChecksums' | 'MissingChecksum' | 'UnknownPlaceholder' | 'BadVersion' | 'BadRepository';

export class ReleaseError extends Error {
  readonly code: ReleaseErrorCode;

  constructor(code: ReleaseErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** `sha256sum` output as file name -> checksum (a `*` before the name marks binary mode). */
export function parseChecksums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n').filter((l) => l.trim() !== '')) {
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.trim());
    if (!match?.[1] || !match[2]) throw new ReleaseError('BadChecksums', `not a sha256sum line: ${JSON.stringify(line)}`);
    sums.set(match[2], match[1]);
  }
  return sums;
}

export interface KrewRelease {
  /** The release tag, a semantic version with a leading v (krew's rule). */
  readonly version: string;
  /** owner/name of the GitHub repository that hosts the release. */
  readonly repository: string;
  readonly checksums: ReadonlyMap<string, string>;
}

export function renderKrewManifest(template: string, release: KrewRelease): string {
  if (!/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(release.version)) {
    throw new ReleaseError('BadVersion', `krew needs a version like v1.2.3, not ${JSON.stringify(release.version)}`);
  }
  if (!/^[\w.-]+\/[\w.-]+$/.test(release.repository)) {
    throw new ReleaseError('BadRepository', `not an owner/name repository: ${JSON.stringify(release.repository)}`);
  }
  const rendered = template.replace(/\{\{([^}]*)\}\}/g, (_, placeholder: string) => {
    const [name, argument] = placeholder.trim().split(/\s+/);
    if (name === 'version' && argument === undefined) return release.version;
    if (name === 'repository' && argument === undefined) return release.repository;
    if (name === 'sha256' && argument !== undefined) {
      const sum = release.checksums.get(argument);
      if (sum === undefined) throw new ReleaseError('MissingChecksum', `no checksum for ${argument}`);
      return sum;
    }
    throw new ReleaseError('UnknownPlaceholder', `unknown placeholder {{${placeholder}}}`);
  });
  parse(rendered); // a template edit that breaks the YAML fails here, not in krew
  return rendered;
}

function main(argv: string[]): void {
  const [template, checksums, version, repository] = argv;
  if (!template || !checksums || !version || !repository) {
    process.stderr.write('usage: node hack/release/krew.ts TEMPLATE CHECKSUMS VERSION REPOSITORY\n');
    process.exit(2);
  }
  const release = { version, repository, checksums: parseChecksums(readFileSync(checksums, 'utf8')) };
  process.stdout.write(renderKrewManifest(readFileSync(template, 'utf8'), release));
}

if (import.meta.main) main(process.argv.slice(2));

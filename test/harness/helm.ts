/**
 * The Helm chart (charts/cnpg-dynamic-storage/) as the tests read it: helm built by `hack/helm/build.sh`, the chart
 * rendered with `helm template`, the kustomize install rendered with `kubectl kustomize` (with components), and both
 * compared as parsed objects keyed by apiVersion, kind, namespace and name.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const maxBuffer = 64 * 1024 * 1024;

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const chartDir = path.join(repoRoot, 'charts/cnpg-dynamic-storage');
/** The namespace the kustomize install names; the chart takes the release's. */
export const installNamespace = 'cnpg-system';

/**
 * The labels Helm charts conventionally add to every object's metadata (helm create's `labels` helper). The chart adds
 * them; the kustomize install cannot know them. The drift comparison ignores exactly these, and nothing else.
 */
export const helmStandardLabels: readonly string[] = [
  'helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'app.kubernetes.io/version',
];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

/** Path of the helm binary; builds it on first use (cached under ~/.cache/cnpg-dynamic-storage/helm). */
export async function helmBinary(): Promise<string> {
  const { stdout } = await run(path.join(repoRoot, 'hack/helm/build.sh'), [], { maxBuffer });
  return stdout.trim().split('\n').pop() ?? '';
}

export async function helm(bin: string, args: readonly string[]): Promise<string> {
  const { stdout } = await run(bin, args, { maxBuffer });
  return stdout;
}

/** `--set` pairs as helm's arguments. */
export function setArgs(values: Readonly<Record<string, string>>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

/** The chart rendered as `helm install -n cnpg-system` would create it, CRDs included. */
export function helmTemplate(bin: string, values: Readonly<Record<string, string>> = {}): Promise<string> {
  return helm(bin, ['template', 'cnpg-dynamic-storage', chartDir, '--namespace', installNamespace, '--include-crds', ...setArgs(values)]);
}

/**
 * `kubectl kustomize` of daemonset/ with the given components (paths under daemonset/), as a user's own kustomization
 * outside the folder uses them. Kustomize refuses absolute paths, hence relative ones from a temp dir.
 */
export async function kustomizeBuild(kubectl: string, components: readonly string[] = []): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-kustomize-'));
  try {
    const rel = (p: string): string => path.relative(dir, path.join(repoRoot, p));
    const lines = [`resources: [${rel('daemonset')}]`, `components: [${components.map((c) => rel(path.join('daemonset', c))).join(', ')}]`];
    await writeFile(path.join(dir, 'kustomization.yaml'), lines.join('\n') + '\n');
    const { stdout } = await run(kubectl, ['kustomize', dir], { maxBuffer });
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`unreadable YAML: ${doc.errors[0]?.message ?? ''}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

export function objectKey(o: K8sObject): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** The object without Helm's standard labels in its metadata (and without an empty label map left behind). */
export function withoutHelmLabels(o: K8sObject): K8sObject {
  const labels = Object.fromEntries(Object.entries(o.metadata.labels ?? {}).filter(([k]) => !helmStandardLabels.includes(k)));
  const { labels: _dropped, ...metadata } = o.metadata;
  return { ...o, metadata: Object.keys(labels).length > 0 ? { ...metadata, labels } : metadata };
}

/** Paths where two parsed values differ, e.g. `spec.template.spec.containers[0].image`. */
export function differences(a: unknown, b: unknown, at = ''): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  const bothArrays = Array.isArray(a) && Array.isArray(b);
  const bothObjects = !bothArrays && isPlainObject(a) && isPlainObject(b);
  if (bothArrays && a.length === b.length) return a.flatMap((v, i) => differences(v, b[i], `${at}[${String(i)}]`));
  if (bothObjects) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => differences(a[k], b[k], at === '' ? k : `${at}.${k}`));
  }
  const where = at === '' ? '<root>' : at;
  if (typeof a === 'string' && typeof b === 'string') {
    let i = 0;
    while (a[i] === b[i]) i += 1;
    const around = (s: string): string => JSON.stringify(s.slice(Math.max(0, i - 30), i + 30));
    return [`${where}: strings differ at character ${String(i)}: ${around(a)} != ${around(b)}`];
  }
  return [`${where}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`.slice(0, 400)];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Every difference between two installs, as lines: objects only one side has, and `<key> <field path>: <chart's value>
 * != <kustomize's value>` where the same object differs. Helm's standard labels are ignored (helmStandardLabels); nothing else is.
 */
export function installDrift(chart: readonly K8sObject[], kustomize: readonly K8sObject[]): string[] {
  const byKey = (objects: readonly K8sObject[]): Map<string, K8sObject> => {
    const map = new Map<string, K8sObject>();
    for (const o of objects) {
      const key = objectKey(o);
      if (map.has(key)) throw new Error(`${key} appears twice`);
      map.set(key, withoutHelmLabels(o));
    }
    return map;
  };
  const ours = byKey(chart);
  const theirs = byKey(kustomize);
  const keys = [...new Set([...ours.keys(), ...theirs.keys()])].sort();
  return keys.flatMap((key) => {
    const a = ours.get(key);
    const b = theirs.get(key);
    if (a === undefined) return [`${key}: only in the kustomize install`];
    if (b === undefined) return [`${key}: only in the chart`];
    return differences(a, b).map((d) => `${key} ${d}`);
  });
}

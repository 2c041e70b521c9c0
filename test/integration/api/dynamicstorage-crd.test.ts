/**
 * The DynamicStorage CRD against a real kube-apiserver: `kubectl apply -f crds/`, defaults filled in by the API server,
 * every admission error message exactly, and the offline validator agreeing with the API server on each of them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { applyCrds } from '../../harness/crds.ts';
import { startControlPlane, type ControlPlane } from '../../harness/controlplane.ts';
import { formatProblem, validateDynamicStorage, ValidationCodes } from '../../../controller/validation/index.ts';
import {
  dynamicStorageApiVersion, dynamicStorageGroup, dynamicStorageKind, dynamicStoragePlural, dynamicStorageVersion,
} from '../../../shared/api/dynamicstorage.generated.ts';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const namespace = 'default';
const group = dynamicStorageGroup;
const version = dynamicStorageVersion;
const plural = dynamicStoragePlural;

type Json = Record<string, unknown>;

function object(name: string, spec: Json): Json {
  return { apiVersion: dynamicStorageApiVersion, kind: dynamicStorageKind, metadata: { name, namespace }, spec };
}

const cluster = { name: 'pg' };
const dataOnly = (storage: Json): Json => ({ cluster, storage });

/** The API server's causes as kubectl prints them, `<field>: <message>`, sorted. */
function causeLines(err: unknown): string[] {
  assert.ok(err instanceof k8s.ApiException, `expected an ApiException, got ${String(err)}`);
  const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { code?: number; details?: { causes?: { field?: string; message?: string }[] } };
  assert.equal(body.code, 422, JSON.stringify(body));
  return (body.details?.causes ?? []).map((c) => `${c.field ?? '<nil>'}: ${c.message ?? ''}`).sort();
}

const controllerOnlyCodes = new Set<string>([ValidationCodes.InvalidSchedule, ValidationCodes.InvalidTimeZone]);

function offlineLines(candidate: Json, options: { controllerOnly: boolean }): string[] {
  return validateDynamicStorage(candidate)
    .filter((p) => controllerOnlyCodes.has(p.code) === options.controllerOnly)
    .map(formatProblem)
    .sort();
}

const requiredBoth = 'both request and limit must be set for dynamic sizing';
const mixed = 'size and request/limit are mutually exclusive; a static size belongs in the CNPG Cluster, this resource only takes request and limit';
const notQuantity = 'must be a quantity such as 10Gi, 500Mi or 1Ti';
const positiveQuantity = 'must be greater than zero and less than 8Pi';
const badDuration = 'must be hours, minutes and seconds such as 2h, 90m or 1h30m, between 1m and 168h';
const incomplete = '<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation';

interface InvalidCase {
  name: string;
  spec: Json;
  /** Exactly what the API server answers, one line per cause. */
  api: string[];
}

const invalidCases: InvalidCase[] = [
  {
    name: 'mixed size and request/limit',
    spec: dataOnly({ size: '10Gi', request: '10Gi', limit: '20Gi' }),
    api: [`spec.storage.size: Forbidden: ${mixed}`],
  },
  {
    name: 'static size only',
    spec: dataOnly({ size: '10Gi' }),
    api: [`spec.storage.limit: Required value: ${requiredBoth}`, `spec.storage.request: Required value: ${requiredBoth}`, `spec.storage.size: Forbidden: ${mixed}`],
  },
  {
    name: 'request above limit',
    spec: dataOnly({ request: '20Gi', limit: '10Gi' }),
    api: ['spec.storage.request: Invalid value: request (20Gi) cannot exceed limit (10Gi)'],
  },
  {
    name: 'request above limit in other units (exact quantity comparison)',
    spec: dataOnly({ request: '1025Mi', limit: '1Gi', emergencyGrow: { criticalMinimumFree: '0' } }),
    api: ['spec.storage.request: Invalid value: request (1025Mi) cannot exceed limit (1Gi)'],
  },
  {
    name: 'request missing',
    spec: dataOnly({ limit: '10Gi' }),
    api: [`spec.storage.request: Required value: ${requiredBoth}`],
  },
  {
    name: 'limit missing',
    spec: { cluster, walStorage: { request: '1Gi' } },
    api: [`spec.walStorage.limit: Required value: ${requiredBoth}`],
  },
  {
    name: 'bad quantity (decimal unit written as GB)',
    spec: dataOnly({ request: '10GB', limit: '20Gi' }),
    api: [`spec.storage.request: Invalid value: "10GB": ${notQuantity}`],
  },
  {
    name: 'bad quantity (words)',
    spec: dataOnly({ request: '10Gi', limit: 'lots' }),
    api: [`spec.storage.limit: Invalid value: "lots": ${notQuantity}`],
  },
  {
    name: 'negative request',
    spec: dataOnly({ request: '-1Gi', limit: '10Gi' }),
    api: [`spec.storage.request: Invalid value: "-1Gi": ${positiveQuantity}`],
  },
  {
    name: 'zero limit (below request and below criticalMinimumFree)',
    spec: dataOnly({ request: '1Gi', limit: '0' }),
    api: [
      'spec.storage.emergencyGrow.criticalMinimumFree: Invalid value: criticalMinimumFree (1Gi) must be smaller than limit (0)',
      `spec.storage.limit: Invalid value: "0": ${positiveQuantity}`,
      'spec.storage.request: Invalid value: request (1Gi) cannot exceed limit (0)',
    ],
  },
  {
    name: 'limit of 8Pi or more',
    spec: dataOnly({ request: '1Ti', limit: '8Pi' }),
    api: [`spec.storage.limit: Invalid value: "8Pi": ${positiveQuantity}`],
  },
  {
    name: 'targetBuffer below 5',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', targetBuffer: 4 }),
    api: ['spec.storage.targetBuffer: Invalid value: 4: spec.storage.targetBuffer in body should be greater than or equal to 5'],
  },
  {
    name: 'targetBuffer above 50',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', targetBuffer: 51 }),
    api: ['spec.storage.targetBuffer: Invalid value: 51: spec.storage.targetBuffer in body should be less than or equal to 50'],
  },
  {
    name: 'criticalThreshold below 80',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', emergencyGrow: { criticalThreshold: 79 } }),
    api: ['spec.storage.emergencyGrow.criticalThreshold: Invalid value: 79: spec.storage.emergencyGrow.criticalThreshold in body should be greater than or equal to 80'],
  },
  {
    name: 'criticalThreshold above 99',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', emergencyGrow: { criticalThreshold: 100 } }),
    api: ['spec.storage.emergencyGrow.criticalThreshold: Invalid value: 100: spec.storage.emergencyGrow.criticalThreshold in body should be less than or equal to 99'],
  },
  {
    name: 'reservedActionsForEmergency above the defaulted maxActionsPerDay',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', emergencyGrow: { reservedActionsForEmergency: 5 } }),
    api: ['spec.storage.emergencyGrow.reservedActionsForEmergency: Invalid value: reservedActionsForEmergency cannot exceed maxActionsPerDay'],
  },
  {
    name: 'maxActionsPerDay of zero (below the defaulted reserve too)',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', emergencyGrow: { maxActionsPerDay: 0 } }),
    api: [
      'spec.storage.emergencyGrow.maxActionsPerDay: Invalid value: 0: spec.storage.emergencyGrow.maxActionsPerDay in body should be greater than or equal to 1',
      'spec.storage.emergencyGrow.reservedActionsForEmergency: Invalid value: reservedActionsForEmergency cannot exceed maxActionsPerDay',
    ],
  },
  {
    name: 'limit not above the defaulted criticalMinimumFree',
    spec: dataOnly({ request: '512Mi', limit: '1Gi' }),
    api: ['spec.storage.emergencyGrow.criticalMinimumFree: Invalid value: criticalMinimumFree (1Gi) must be smaller than limit (1Gi)'],
  },
  {
    name: 'bad criticalMinimumFree quantity',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', emergencyGrow: { criticalMinimumFree: '1 Gi' } }),
    api: [`spec.storage.emergencyGrow.criticalMinimumFree: Invalid value: "1 Gi": ${notQuantity}`],
  },
  {
    name: 'duration in words',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', maintenanceWindow: { duration: '2 hours' } }),
    api: [`spec.storage.maintenanceWindow.duration: Invalid value: "2 hours": ${badDuration}`],
  },
  {
    name: 'duration above 168h',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', maintenanceWindow: { duration: '169h' } }),
    api: [`spec.storage.maintenanceWindow.duration: Invalid value: "169h": ${badDuration}`],
  },
  {
    name: 'duration below 1m',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', maintenanceWindow: { duration: '30s' } }),
    api: [`spec.storage.maintenanceWindow.duration: Invalid value: "30s": ${badDuration}`],
  },
  {
    name: 'fractional duration',
    spec: { cluster, tablespaces: [{ name: 'tbs', storage: { request: '10Gi', limit: '20Gi', maintenanceWindow: { duration: '1.5h' } } }] },
    api: [`spec.tablespaces[0].storage.maintenanceWindow.duration: Invalid value: "1.5h": ${badDuration}`],
  },
  {
    name: 'duplicate tablespace names',
    spec: {
      cluster,
      tablespaces: [
        { name: 'tbs', storage: { request: '1Gi', limit: '10Gi' } },
        { name: 'tbs', storage: { request: '2Gi', limit: '20Gi' } },
      ],
    },
    api: ['spec.tablespaces[1]: Duplicate value: {"name":"tbs"}'],
  },
  {
    name: 'tablespace without storage, without name',
    spec: { cluster, tablespaces: [{ name: 'tbs' }, { storage: { request: '1Gi', limit: '10Gi' } }] },
    api: ['spec.tablespaces[0].storage: Required value', 'spec.tablespaces[1].name: Required value', incomplete],
  },
  {
    name: 'no volume role at all',
    spec: { cluster, tablespaces: [] },
    api: ['spec: Invalid value: at least one of storage, walStorage or tablespaces must be set'],
  },
  {
    name: 'cluster missing',
    spec: { storage: { request: '1Gi', limit: '10Gi' } },
    api: ['spec.cluster: Required value', incomplete],
  },
  {
    name: 'cluster name empty',
    spec: { cluster: { name: '' }, storage: { request: '10Gi', limit: '20Gi' } },
    api: ['spec.cluster.name: Invalid value: "": spec.cluster.name in body should be at least 1 chars long'],
  },
  {
    name: 'wrong type (quoted number)',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', targetBuffer: '20' }),
    api: ['spec.storage.targetBuffer: Invalid value: "string": spec.storage.targetBuffer in body must be of type integer: "string"', incomplete],
  },
  {
    name: 'unsupported rounding',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', growth: { roundUpTo: 'TiB' } }),
    api: ['spec.storage.growth.roundUpTo: Unsupported value: "TiB": supported values: "GiB", "AzurePremiumSSDTier"', incomplete],
  },
  {
    name: 'minimumStep above maximumStep',
    spec: dataOnly({ request: '10Gi', limit: '200Gi', growth: { minimumStep: '10Gi', maximumStep: '5Gi' } }),
    api: ['spec.storage.growth.minimumStep: Invalid value: minimumStep (10Gi) cannot exceed maximumStep (5Gi)'],
  },
  {
    name: 'several problems in several roles at once',
    spec: {
      cluster,
      storage: { request: '50Gi', limit: '10Gi', targetBuffer: 60 },
      walStorage: { request: '1GB', limit: '4Gi' },
      tablespaces: [{ name: 'a', storage: { request: '1Gi', limit: '10Gi' } }, { name: 'b', storage: { limit: '10Gi', size: '5Gi' } }],
    },
    api: [
      'spec.storage.request: Invalid value: request (50Gi) cannot exceed limit (10Gi)',
      'spec.storage.targetBuffer: Invalid value: 60: spec.storage.targetBuffer in body should be less than or equal to 50',
      `spec.tablespaces[1].storage.request: Required value: ${requiredBoth}`,
      `spec.tablespaces[1].storage.size: Forbidden: ${mixed}`,
      `spec.walStorage.request: Invalid value: "1GB": ${notQuantity}`,
    ],
  },
  {
    name: 'too long a time zone',
    spec: dataOnly({ request: '10Gi', limit: '20Gi', maintenanceWindow: { timezone: 'X'.repeat(65) } }),
    api: ['spec.storage.maintenanceWindow.timezone: Too long: may not be more than 64 bytes', incomplete],
  },
  {
    name: 'more than 64 tablespaces',
    spec: { cluster, tablespaces: Array.from({ length: 65 }, (_, i) => ({ name: `t${i}`, storage: { request: '1Gi', limit: '2Gi' } })) },
    api: ['spec.tablespaces: Too many: 65: must have at most 64 items', incomplete],
  },
];

/** Accepted by the API server, refused by the controller (and the offline command). */
const controllerOnlyCases: { name: string; window: Json; problems: string[] }[] = [
  {
    name: 'cron with four fields',
    window: { schedule: '0 3 * *' },
    problems: ['spec.storage.maintenanceWindow.schedule: Invalid value: "0 3 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week'],
  },
  {
    name: 'cron minute out of range',
    window: { schedule: '61 3 * * *' },
    problems: ['spec.storage.maintenanceWindow.schedule: Invalid value: "61 3 * * *": Constraint error, got value 61 expected range 0-59'],
  },
  {
    name: 'unknown time zone',
    window: { timezone: 'Mars/Olympus_Mons' },
    problems: ['spec.storage.maintenanceWindow.timezone: Invalid value: "Mars/Olympus_Mons" is not an IANA time zone (examples: UTC, Europe/Berlin, America/New_York)'],
  },
];

async function yamlDocuments(file: string): Promise<Json[]> {
  const text = await readFile(file, 'utf8');
  return parseAllDocuments(text).map((d) => d.toJS() as Json).filter((d) => d.kind === dynamicStorageKind);
}

/** DynamicStorage objects in docs/*.md yaml blocks, except blocks that start with `# rejected`. */
async function documentedExamples(): Promise<{ where: string; object: Json }[]> {
  const examples: { where: string; object: Json }[] = [];
  const docs = path.join(repoRoot, 'docs');
  for (const file of (await readdir(docs)).filter((f) => f.endsWith('.md'))) {
    const text = await readFile(path.join(docs, file), 'utf8');
    for (const [index, match] of [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].entries()) {
      const block = match[1] ?? '';
      if (block.startsWith('# rejected')) continue;
      for (const doc of parseAllDocuments(block).map((d) => d.toJS() as Json)) {
        if (doc.kind === dynamicStorageKind) examples.push({ where: `docs/${file} yaml block ${index + 1}`, object: doc });
      }
    }
  }
  const crdExamples = path.join(repoRoot, 'crds/examples');
  for (const file of (await readdir(crdExamples)).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of await yamlDocuments(path.join(crdExamples, file))) examples.push({ where: `crds/examples/${file}`, object: doc });
  }
  return examples;
}

describe('DynamicStorage CRD on a real API server', function () {
  let plane: ControlPlane | undefined;
  let api: k8s.CustomObjectsApi;
  let serial = 0;
  const nextName = (): string => `ds-${++serial}`;

  before(async function () {
    this.timeout(300_000);
    const started = await startControlPlane({ controllerManager: false });
    plane = started;
    // `kubectl apply -f crds/`, as users install it.
    const applied = await applyCrds(started, [path.join(repoRoot, 'crds/')]);
    assert.match(applied, /customresourcedefinition.apiextensions.k8s.io\/dynamicstorages.dynamicstorage.cnpg.io (created|configured)/);
    api = started.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  });

  after(async function () {
    this.timeout(60_000);
    await plane?.stop();
  });

  const create = (body: Json, dryRun?: string): Promise<Json> =>
    api.createNamespacedCustomObject({ group, version, namespace, plural, body, fieldValidation: 'Strict', ...(dryRun ? { dryRun } : {}) }) as Promise<Json>;

  it('fills in every default of an empty maintenanceWindow, emergencyGrow and growth', async () => {
    const created = await create(object(nextName(), dataOnly({ request: '10Gi', limit: '100Gi', maintenanceWindow: {}, emergencyGrow: {} })));
    assert.deepEqual(created.spec, {
      cluster,
      storage: {
        request: '10Gi',
        limit: '100Gi',
        targetBuffer: 20,
        maintenanceWindow: { schedule: '0 3 * * *', duration: '2h', timezone: 'UTC' },
        emergencyGrow: {
          enabled: true, criticalThreshold: 95, criticalMinimumFree: '1Gi', exceedLimitOnEmergency: false,
          maxActionsPerDay: 4, reservedActionsForEmergency: 1,
        },
        growth: { emergencyStepPercent: 25, minimumStep: '1Gi', roundUpTo: 'GiB' },
      },
    });
  });

  it('injects no maintenanceWindow when there is none (always open) and defaults only what is missing', async () => {
    const created = await create(object(nextName(), { cluster, walStorage: { request: '1Gi', limit: '8Gi', emergencyGrow: { criticalThreshold: 90 } } }));
    const wal = (created.spec as Json).walStorage as Json;
    assert.equal('maintenanceWindow' in wal, false);
    assert.deepEqual(wal.emergencyGrow, {
      enabled: true, criticalThreshold: 90, criticalMinimumFree: '1Gi', exceedLimitOnEmergency: false, maxActionsPerDay: 4, reservedActionsForEmergency: 1,
    });
    assert.equal('storage' in (created.spec as Json), false);
  });

  it('fills in the same defaults as the offline validator', async () => {
    const written = object(nextName(), { cluster, tablespaces: [{ name: 'tbs', storage: { request: '1Gi', limit: '8Gi', maintenanceWindow: { timezone: 'Europe/Berlin' } } }] });
    const created = await create(written);
    const { withDefaults } = await import('../../../controller/validation/index.ts');
    assert.deepEqual(created.spec, (withDefaults(written) as Json).spec);
  });

  describe(`rejects invalid objects with exact messages (${invalidCases.length} cases)`, () => {
    for (const testCase of invalidCases) {
      it(testCase.name, async () => {
        const candidate = object(nextName(), testCase.spec);
        const lines = await create(candidate).then(
          () => assert.fail('the API server accepted the object'),
          causeLines,
        );
        assert.deepEqual(lines, [...testCase.api].sort());
        assert.deepEqual(offlineLines(candidate, { controllerOnly: false }), [...testCase.api].sort(), 'the offline validator disagrees with the API server');
      });
    }
  });

  it('rejects an unknown field under strict field validation, as the offline validator does', async () => {
    const candidate = object(nextName(), dataOnly({ request: '10Gi', limit: '20Gi', targetbuffer: 30 }));
    const err = await create(candidate).then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof k8s.ApiException);
    assert.equal(err.code, 400);
    const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: string };
    assert.equal(body.message, 'DynamicStorage in version "v1alpha1" cannot be handled as a DynamicStorage: strict decoding error: unknown field "spec.storage.targetbuffer"');
    assert.deepEqual(offlineLines(candidate, { controllerOnly: false }), ['unknown field "spec.storage.targetbuffer"']);
  });

  it('refuses to change spec.cluster.name, as the offline validator does', async () => {
    const name = nextName();
    const created = await create(object(name, dataOnly({ request: '10Gi', limit: '20Gi' })));
    const changed = structuredClone(created);
    (changed.spec as Json).cluster = { name: 'other' };
    const lines = await api.replaceNamespacedCustomObject({ group, version, namespace, plural, name, body: changed }).then(
      () => assert.fail('the API server accepted the change'),
      causeLines,
    );
    const expected = ['spec.cluster.name: Invalid value: "other": is immutable; create another DynamicStorage to manage another Cluster'];
    assert.deepEqual(lines, expected);
    assert.deepEqual(validateDynamicStorage(changed, { oldObject: created }).map(formatProblem), expected);
  });

  for (const testCase of controllerOnlyCases) {
    it(`accepts what only the controller can refuse: ${testCase.name}`, async () => {
      const candidate = object(nextName(), dataOnly({ request: '10Gi', limit: '20Gi', maintenanceWindow: testCase.window }));
      await create(candidate);
      assert.deepEqual(offlineLines(candidate, { controllerOnly: true }), testCase.problems);
    });
  }

  it('accepts every example in docs/ and crds/examples/, which the offline validator also passes', async () => {
    const examples = await documentedExamples();
    assert.ok(examples.length >= 3, `found only ${examples.length} examples`);
    for (const { where, object: example } of examples) {
      const body = structuredClone(example);
      body.metadata = { ...(body.metadata as Json), namespace };
      await create(body, 'All').catch((err: unknown) => assert.fail(`${where}: ${err instanceof k8s.ApiException ? JSON.stringify(err.body) : String(err)}`));
      assert.deepEqual(validateDynamicStorage(body).map(formatProblem), [], where);
    }
  });

  it('shows cluster, validity, data state, size and limit in kubectl get', async () => {
    const name = nextName();
    await create(object(name, dataOnly({ request: '10Gi', limit: '100Gi' })));
    const kubectl = path.join(plane!.binDir, 'kubectl');
    const { stdout } = await run(kubectl, ['--kubeconfig', plane!.kubeconfigPath, 'get', 'dynamicstorage', name, '-n', namespace]);
    const [header = '', row = ''] = stdout.trim().split('\n');
    assert.deepEqual(header.split(/\s{2,}/), ['NAME', 'CLUSTER', 'VALID', 'DATA STATE', 'DATA SIZE', 'DATA LIMIT', 'AGE']);
    assert.match(row, new RegExp(`^${name}\\s+pg\\s+100Gi\\s+\\d+s$`));
  });
});

import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  compareQuantities, formatProblem, renderProblemsMessage, validateDynamicStorage, validCondition, withDefaults,
  type CnpgCluster, type ValidationProblem,
} from '../../../controller/validation/index.ts';
import { parseQuantityBig } from '../../../shared/quantity.ts';
import { emergencyGrowDefaults, maintenanceWindowDefaults } from '../../../shared/api/dynamicstorage.generated.ts';

type Json = Record<string, unknown>;

function storage(spec: Json, namespace = 'db'): Json {
  return { apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg', namespace }, spec: { cluster: { name: 'pg' }, ...spec } };
}

const lines = (problems: ValidationProblem[]): string[] => problems.map(formatProblem);

const cluster: CnpgCluster = {
  apiVersion: 'postgresql.cnpg.io/v1',
  kind: 'Cluster',
  metadata: { name: 'pg', namespace: 'db' },
  spec: {
    storage: { size: '20Gi' },
    walStorage: { pvcTemplate: { resources: { requests: { storage: '4Gi' } } } },
    tablespaces: [{ name: 'tbs', storage: { size: '1Gi' } }],
  },
};

describe('validateDynamicStorage', () => {
  it('passes a valid policy', () => {
    assert.deepEqual(validateDynamicStorage(storage({ storage: { request: '10Gi', limit: '100Gi' } })), []);
  });

  it('fills in the defaults of the CRD', () => {
    const defaulted = withDefaults(storage({ storage: { request: '1Gi', limit: '10Gi', maintenanceWindow: {} } })) as { spec: { storage: Json } };
    assert.deepEqual(defaulted.spec.storage.maintenanceWindow, maintenanceWindowDefaults);
    assert.deepEqual(defaulted.spec.storage.emergencyGrow, emergencyGrowDefaults);
    assert.equal(defaulted.spec.storage.targetBuffer, 20);
  });

  it('drops nulls before defaulting, as the API server does', () => {
    const defaulted = withDefaults(storage({ storage: { request: '1Gi', limit: '10Gi', maintenanceWindow: null, emergencyGrow: null } })) as { spec: { storage: Json } };
    assert.equal('maintenanceWindow' in defaulted.spec.storage, false);
    assert.deepEqual(defaulted.spec.storage.emergencyGrow, emergencyGrowDefaults);
  });

  it('reports an invalid cron schedule and an unknown time zone, with the window module\'s messages', () => {
    const problems = validateDynamicStorage(storage({
      walStorage: { request: '1Gi', limit: '10Gi', maintenanceWindow: { schedule: '0 3 * * * *', timezone: 'Europe/Atlantis' } },
    }));
    assert.deepEqual(problems.map((p) => p.code), ['InvalidSchedule', 'InvalidTimeZone']);
    assert.deepEqual(lines(problems), [
      'spec.walStorage.maintenanceWindow.schedule: Invalid value: "0 3 * * * *" has 6 fields; seconds are not supported, use 5 fields: minute hour day-of-month month day-of-week',
      'spec.walStorage.maintenanceWindow.timezone: Invalid value: "Europe/Atlantis" is not an IANA time zone (examples: UTC, Europe/Berlin, America/New_York)',
    ]);
  });

  it('turns an invalid cron and an unknown time zone into Valid=False with one message naming both', () => {
    const problems = validateDynamicStorage(storage({ storage: { request: '1Gi', limit: '10Gi', maintenanceWindow: { schedule: 'daily', timezone: 'Moon/Tranquility' } } }));
    assert.deepEqual(validCondition(problems, 3), {
      type: 'Valid',
      status: 'False',
      reason: 'InvalidPolicy',
      observedGeneration: 3,
      message: '2 problems: spec.storage.maintenanceWindow.schedule: Invalid value: "daily" has 1 fields; expected 5: minute hour day-of-month month day-of-week; '
        + 'spec.storage.maintenanceWindow.timezone: Invalid value: "Moon/Tranquility" is not an IANA time zone (examples: UTC, Europe/Berlin, America/New_York)',
    });
  });

  it('uses the single problem\'s code as the reason and says Valid=True when there is none', () => {
    const problems = validateDynamicStorage(storage({ storage: { request: '1Gi', limit: '10Gi' } }), { cluster: null });
    assert.deepEqual(validCondition(problems), {
      type: 'Valid', status: 'False', reason: 'ClusterNotFound', message: 'spec.cluster.name: Not found: "pg": no CNPG Cluster "pg" in namespace "db"',
    });
    assert.deepEqual(validCondition([], 1), { type: 'Valid', status: 'True', reason: 'Valid', message: 'the policy passed every check', observedGeneration: 1 });
  });

  it('checks the policy against the Cluster: roles, tablespaces and sizes within bounds', () => {
    const problems = validateDynamicStorage(storage({
      storage: { request: '30Gi', limit: '100Gi' },
      walStorage: { request: '1Gi', limit: '2Gi', emergencyGrow: { criticalMinimumFree: '100Mi' } },
      tablespaces: [{ name: 'tbs', storage: { request: '1Gi', limit: '10Gi' } }, { name: 'missing', storage: { request: '1Gi', limit: '10Gi' } }],
    }), { cluster });
    assert.deepEqual(lines(problems), [
      'spec.storage.request: Invalid value: the Cluster\'s spec.storage.size (20Gi) is below request (30Gi); CNPG creates new volumes at that size',
      'spec.tablespaces[1].name: Not found: "missing": the Cluster "pg" has no tablespace "missing" in spec.tablespaces',
      'spec.walStorage.limit: Invalid value: the Cluster\'s spec.walStorage.size (4Gi) is above limit (2Gi)',
    ]);
  });

  it('reports WAL policy for a Cluster without WAL storage', () => {
    const { walStorage: _wal, ...spec } = cluster.spec ?? {};
    const problems = validateDynamicStorage(storage({ walStorage: { request: '1Gi', limit: '10Gi' } }), { cluster: { ...cluster, spec } });
    assert.deepEqual(lines(problems), ['spec.walStorage: Invalid value: the Cluster "pg" has no spec.walStorage, so there are no WAL volumes to manage']);
  });

  it('passes a policy that fits its Cluster', () => {
    const problems = validateDynamicStorage(storage({
      storage: { request: '20Gi', limit: '100Gi' },
      walStorage: { request: '2Gi', limit: '4Gi', emergencyGrow: { criticalMinimumFree: '512Mi' } },
      tablespaces: [{ name: 'tbs', storage: { request: '1Gi', limit: '10Gi' } }],
    }), { cluster });
    assert.deepEqual(problems, []);
  });

  it('reports every problem at once, in a stable order', () => {
    const object = storage({ storage: { size: '1Gi', targetBuffer: 2, maintenanceWindow: { schedule: 'x' } } });
    const first = lines(validateDynamicStorage(object));
    assert.deepEqual(first, [
      'spec.storage.limit: Required value: both request and limit must be set for dynamic sizing',
      'spec.storage.maintenanceWindow.schedule: Invalid value: "x" has 1 fields; expected 5: minute hour day-of-month month day-of-week',
      'spec.storage.request: Required value: both request and limit must be set for dynamic sizing',
      'spec.storage.size: Forbidden: size and request/limit are mutually exclusive; a static size belongs in the CNPG Cluster, this resource only takes request and limit',
      'spec.storage.targetBuffer: Invalid value: 2: spec.storage.targetBuffer in body should be greater than or equal to 5',
    ]);
    assert.deepEqual(lines(validateDynamicStorage(structuredClone(object))), first);
  });

  it('reports an object that is not an object', () => {
    assert.deepEqual(lines(validateDynamicStorage('spec: {}')), ['<nil>: Invalid value: a DynamicStorage must be an object']);
  });
});

describe('renderProblemsMessage', () => {
  const p = (field: string): ValidationProblem => ({ field, code: 'OutOfRange', type: 'Invalid value', message: 'Invalid value: x' });

  it('sorts problems so the message does not depend on their order', () => {
    assert.equal(renderProblemsMessage([p('spec.b'), p('spec.a')]), renderProblemsMessage([p('spec.a'), p('spec.b')]));
    assert.equal(renderProblemsMessage([p('spec.b'), p('spec.a')]), '2 problems: spec.a: Invalid value: x; spec.b: Invalid value: x');
  });

  it('keeps whole problems within the limit and counts the rest', () => {
    const message = renderProblemsMessage([p('spec.a'), p('spec.b'), p('spec.c')], 60);
    assert.equal(message, '3 problems: spec.a: Invalid value: x; and 2 more');
    assert.ok(message.length <= 60);
  });
});

describe('compareQuantities', () => {
  it('compares exactly, below a byte too', () => {
    assert.equal(compareQuantities('1500m', '1'), 1);
    assert.equal(compareQuantities('1Gi', '1024Mi'), 0);
    assert.equal(compareQuantities('1G', '1Gi'), -1);
    assert.equal(compareQuantities('1e3', '1k'), 0);
    assert.equal(compareQuantities('-1', '0'), -1);
  });

  it('agrees with whole-byte parsing for whole byte counts', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 1n << 53n }), fc.bigInt({ min: 0n, max: 1n << 53n }), (a, b) => {
      const expected = a < b ? -1 : a > b ? 1 : 0;
      return compareQuantities(String(a), String(b)) === expected && parseQuantityBig(String(a)) === a;
    }));
  });
});

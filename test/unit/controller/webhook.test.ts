import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { admissionResponse, decidePvcSize, resizedFromAnnotation, validationResponse, type AdmissionReview } from '../../../controller/webhook.ts';
import { admitDynamicStorage } from '../../../controller/validation/admission.ts';
import { formatProblem, validateDynamicStorage } from '../../../controller/validation/index.ts';
import type { DynamicStorage } from '../../../shared/api/dynamicstorage.generated.ts';

function pvc(labels: Record<string, string>, size = '64Mi', annotations?: Record<string, string>): k8s.V1PersistentVolumeClaim {
  return { metadata: { name: 'pg-4', namespace: 'db', labels, ...(annotations ? { annotations } : {}) }, spec: { resources: { requests: { storage: size } } } };
}

const data = { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA', 'cnpg.io/instanceName': 'pg-4' };
const wal = { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_WAL', 'cnpg.io/instanceName': 'pg-4' };
const tbs = { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_TABLESPACE', 'cnpg.io/tablespaceName': 'app_data', 'cnpg.io/instanceName': 'pg-4' };

function ds(overrides: { valid?: boolean; name?: string; created?: string; wal?: boolean } = {}): DynamicStorage {
  return {
    metadata: { name: overrides.name ?? 'pg', namespace: 'db', creationTimestamp: overrides.created ?? '2026-01-01T00:00:00Z' },
    spec: {
      cluster: { name: 'pg' },
      storage: { request: '64Mi', limit: '1Gi' },
      ...(overrides.wal === false ? {} : { walStorage: { request: '64Mi', limit: '1Gi' } }),
      tablespaces: [{ name: 'app_data', storage: { request: '64Mi', limit: '1Gi' } }],
    },
    status: {
      conditions: [{ type: 'Valid', status: overrides.valid === false ? 'False' : 'True', reason: 'Valid', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      storageSizing: { data: { effectiveSize: '96Mi' }, wal: { effectiveSize: '80Mi' }, tablespaces: { app_data: { effectiveSize: '128Mi' } } },
    },
  };
}

describe('decidePvcSize', () => {
  const cases: [string, k8s.V1PersistentVolumeClaim, DynamicStorage[], string | undefined, string][] = [
    ['data PVC below the effective size', pvc(data), [ds()], '96Mi', 'created at the effective size 96Mi instead of 64Mi (DynamicStorage pg)'],
    ['WAL PVC', pvc(wal), [ds()], '80Mi', 'created at the effective size 80Mi instead of 64Mi (DynamicStorage pg)'],
    ['tablespace PVC, by its raw name label', pvc(tbs), [ds()], '128Mi', 'created at the effective size 128Mi instead of 64Mi (DynamicStorage pg)'],
    ['already at least as large', pvc(data, '100Mi'), [ds()], undefined, 'requested 100Mi is not below the effective size 96Mi'],
    ['role not managed', pvc(wal), [ds({ wal: false })], undefined, 'this volume role is not managed or has no effective size yet'],
    ['invalid policy', pvc(data), [ds({ valid: false })], undefined, 'DynamicStorage pg is not valid'],
    ['no policy for the cluster', pvc(data), [], undefined, 'no DynamicStorage manages cluster pg'],
    ['not a CNPG PVC', pvc({}), [ds()], undefined, 'not a CloudNativePG volume'],
    ['the oldest policy wins', pvc(data), [ds({ name: 'late', created: '2026-02-01T00:00:00Z', valid: false }), ds({ name: 'first' })], '96Mi',
      'created at the effective size 96Mi instead of 64Mi (DynamicStorage first)'],
  ];
  for (const [name, claim, policies, size, reason] of cases) {
    it(name, () => {
      assert.deepEqual(decidePvcSize(claim, policies), { size, reason });
    });
  }
});

describe('admissionResponse', () => {
  it('patches the request and records the size CloudNativePG asked for', () => {
    const { review } = admissionResponse({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1', operation: 'CREATE', object: pvc(data) } }, [ds()]);
    assert.equal(review.response?.uid, 'u1');
    assert.equal(review.response.allowed, true);
    assert.equal(review.response.patchType, 'JSONPatch');
    assert.deepEqual(JSON.parse(Buffer.from(review.response.patch ?? '', 'base64').toString()), [
      { op: 'replace', path: '/spec/resources/requests/storage', value: '96Mi' },
      { op: 'add', path: '/metadata/annotations', value: { [resizedFromAnnotation]: '64Mi' } },
    ]);
  });

  it('adds to existing annotations with an escaped JSON pointer', () => {
    const { review } = admissionResponse({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u2', operation: 'CREATE', object: pvc(data, '64Mi', { a: 'b' }) } }, [ds()]);
    const ops = JSON.parse(Buffer.from(review.response?.patch ?? '', 'base64').toString()) as { path: string }[];
    assert.equal(ops[1]?.path, '/metadata/annotations/dynamicstorage.cnpg.io~1requested-size');
  });

  it('allows anything else unchanged', () => {
    const { review } = admissionResponse({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u3', operation: 'UPDATE', object: pvc(data) } }, [ds()]);
    assert.deepEqual(review.response, { uid: 'u3', allowed: true });
  });
});

describe('validating DynamicStorage at admission', () => {
  const policy = (maintenanceWindow: Record<string, string>, limit = '10Gi'): unknown => ({
    apiVersion: 'dynamicstorage.cnpg.io/v1alpha1', kind: 'DynamicStorage', metadata: { name: 'pg', namespace: 'db' },
    spec: { cluster: { name: 'pg' }, storage: { request: '64Mi', limit, maintenanceWindow } },
  });
  const review = (operation: string, object: unknown, oldObject?: unknown): AdmissionReview<unknown> => ({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'v1', operation, name: 'pg', namespace: 'db', object, oldObject },
  });

  it('refuses a cron schedule and a time zone the API server accepts, with the offline command\'s messages', () => {
    const object = policy({ schedule: '0 3 * *', timezone: 'Mars/Olympus_Mons' });
    const verdict = admitDynamicStorage(object);
    assert.equal(verdict.allowed, false);
    assert.deepEqual(verdict.problems.map((p) => p.code), ['InvalidSchedule', 'InvalidTimeZone']);
    assert.deepEqual(verdict.problems.map(formatProblem), validateDynamicStorage(object).map(formatProblem));
    const response = validationResponse(review('CREATE', object)).response;
    assert.ok(response);
    assert.equal(response.allowed, false);
    assert.equal(response.uid, 'v1');
    assert.equal(response.status?.code, 422);
    assert.equal(response.status.message, `DynamicStorage "pg" is invalid: ${verdict.message}`);
    assert.deepEqual(response.status.details?.causes.map((c) => c.field), ['spec.storage.maintenanceWindow.schedule', 'spec.storage.maintenanceWindow.timezone']);
  });

  it('refuses only new problems on an update, and leaves to the API server what it checks itself', () => {
    const stored = policy({ timezone: 'Mars/Olympus_Mons' });
    assert.equal(admitDynamicStorage(policy({ timezone: 'Mars/Olympus_Mons' }, '20Gi'), stored).allowed, true, 'the limit of a stored invalid policy can be raised');
    assert.equal(admitDynamicStorage(policy({ timezone: 'Moon/Tranquility' }), stored).allowed, false);
    assert.equal(admitDynamicStorage(policy({ schedule: '0 3 * * *' }, 'not a quantity')).allowed, true, 'schema and CEL: the API server\'s call');
    assert.equal(validationResponse(review('DELETE', policy({ schedule: 'x' }))).response?.allowed, true);
    assert.equal(validationResponse(review('CREATE', policy({ schedule: '0 3 * * *' }))).response?.allowed, true);
  });
});

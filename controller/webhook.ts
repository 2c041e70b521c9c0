/**
 * New replicas at the grown size: a mutating admission webhook on PVC CREATE. CloudNativePG creates every new PVC
 * (scale-up, a re-created instance) at the Cluster's `spec.storage.size`; when the DynamicStorage of that Cluster has
 * grown the volume past it, the PVC is created at the effective size instead, so a new replica never starts on a disk
 * smaller than the data it must hold. CloudNativePG leaves a PVC larger than its spec alone.
 *
 * The decision is a pure function of the PVC and the DynamicStorage objects of its namespace. The webhook is registered
 * with failurePolicy Ignore: when it cannot answer, the PVC is created as CloudNativePG asked, and the controller grows
 * it later like any lagging replica.
 *
 * The same server validates DynamicStorage objects (POST /validate-dynamicstorage): what the API server cannot check
 * (cron schedule, time zone) is refused at admission with the messages of `kubectl cnpg storage validate`; see
 * validation/admission.ts. Also failurePolicy Ignore: the controller checks the same again (Valid=False), so a webhook
 * that is down costs the early error only, never the ability to edit a policy.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type * as k8s from '@kubernetes/client-node';
import type { DynamicStorage, VolumeSizingStatus } from '../shared/api/dynamicstorage.generated.ts';
import { errorMessage } from '../shared/errors.ts';
import { listenOn } from '../shared/listen.ts';
import type { Logger } from '../shared/log.ts';
import { parseQuantity } from '../shared/quantity.ts';
import { cnpgLabels, managersOf, matchesLabels, volumeSlots } from '../shared/cnpg.ts';
import { ConditionTypes } from './kube/conditions.ts';
import { admitDynamicStorage } from './validation/admission.ts';
import { formatProblem } from './validation/problems.ts';

/** Set on a PVC the webhook enlarged: the size CloudNativePG asked for. */
export const resizedFromAnnotation = 'dynamicstorage.cnpg.io/requested-size';

export interface AdmissionRequest<T = k8s.V1PersistentVolumeClaim> {
  uid: string;
  operation?: string;
  namespace?: string;
  name?: string;
  object?: T;
  oldObject?: T;
}

export interface AdmissionReview<T = k8s.V1PersistentVolumeClaim> {
  apiVersion: string;
  kind: string;
  request?: AdmissionRequest<T>;
  response?: {
    uid: string;
    allowed: boolean;
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
    status?: { code: number; reason: string; message: string; details?: { causes: { field: string; reason: string; message: string }[] } };
  };
}

/**
 * The answer to a DynamicStorage CREATE or UPDATE: refused (422 Invalid, as the API server words a field error) with one
 * message and one cause per problem, or allowed. Pure.
 */
export function validationResponse(review: AdmissionReview<unknown>): AdmissionReview<unknown> {
  const request = review.request;
  const uid = request?.uid ?? '';
  const apiVersion = review.apiVersion || 'admission.k8s.io/v1';
  const operation = request?.operation;
  if ((operation !== 'CREATE' && operation !== 'UPDATE') || request?.object === undefined) {
    return { apiVersion, kind: 'AdmissionReview', response: { uid, allowed: true } };
  }
  const verdict = admitDynamicStorage(request.object, operation === 'UPDATE' ? request.oldObject : undefined);
  if (verdict.allowed) return { apiVersion, kind: 'AdmissionReview', response: { uid, allowed: true } };
  const name = request.name ?? '';
  return {
    apiVersion, kind: 'AdmissionReview',
    response: {
      uid, allowed: false,
      status: {
        code: 422, reason: 'Invalid', message: `DynamicStorage ${JSON.stringify(name)} is invalid: ${verdict.message}`,
        details: { causes: verdict.problems.map((p) => ({ field: p.field, reason: 'FieldValueInvalid', message: formatProblem(p) })) },
      },
    },
  };
}

export interface PvcMutation {
  /** The size to create the PVC at, when larger than requested. */
  size: string | undefined;
  /** Why (or why not), for logs and the admission warning. */
  reason: string;
}

function volumeStatusFor(pvc: k8s.V1PersistentVolumeClaim, object: DynamicStorage): { status: VolumeSizingStatus | undefined; limit: string } | undefined {
  const slot = volumeSlots(object.spec, object.status?.storageSizing).find((s) => matchesLabels(pvc.metadata?.labels, s.selector));
  return slot && { status: slot.previous, limit: slot.policy.limit };
}

/**
 * The size to create at: the status's effective size, never above the policy's limit. The status is only as trustworthy
 * as whoever may write it; the spec's limit is what the owner of the volume agreed to pay for.
 */
function boundedEffectiveSize(effective: string, limit: string): { size: string; clamped: boolean } | PvcMutation {
  try {
    return parseQuantity(effective) > parseQuantity(limit) ? { size: limit, clamped: true } : { size: effective, clamped: false };
  } catch (err) {
    return { size: undefined, reason: errorMessage(err) };
  }
}

function compareSizes(requestedText: string | undefined, effective: string): PvcMutation | number {
  try {
    return (requestedText === undefined ? 0 : parseQuantity(requestedText)) - parseQuantity(effective);
  } catch (err) {
    return { size: undefined, reason: errorMessage(err) };
  }
}

/** Pure: the size a new CNPG PVC should be created at, given the DynamicStorage objects of its namespace. */
export function decidePvcSize(pvc: k8s.V1PersistentVolumeClaim, dynamicStorages: readonly DynamicStorage[]): PvcMutation {
  const cluster = pvc.metadata?.labels?.[cnpgLabels.cluster];
  if (!cluster) return { size: undefined, reason: 'not a CloudNativePG volume' };
  const [manager] = managersOf(dynamicStorages, cluster);
  if (!manager) return { size: undefined, reason: `no DynamicStorage manages cluster ${cluster}` };
  if (manager.status?.conditions?.find((c) => c.type === ConditionTypes.Valid)?.status !== 'True') {
    return { size: undefined, reason: `DynamicStorage ${manager.metadata?.name ?? ''} is not valid` };
  }
  return sizeFromStatus(pvc, manager);
}

function sizeFromStatus(pvc: k8s.V1PersistentVolumeClaim, manager: DynamicStorage): PvcMutation {
  const name = manager.metadata?.name ?? '';
  const volume = volumeStatusFor(pvc, manager);
  const stated = volume?.status?.effectiveSize;
  if (volume === undefined || stated === undefined) return { size: undefined, reason: 'this volume role is not managed or has no effective size yet' };
  const bounded = boundedEffectiveSize(stated, volume.limit);
  if (!('clamped' in bounded)) return bounded;
  const effective = bounded.size;
  const requested = pvc.spec?.resources?.requests?.storage;
  const difference = compareSizes(requested, effective);
  if (typeof difference !== 'number') return difference;
  if (difference >= 0) return { size: undefined, reason: `requested ${requested ?? '0'} is not below the effective size ${effective}` };
  const note = bounded.clamped ? ` (the status says ${stated}, above the limit ${volume.limit})` : '';
  return { size: effective, reason: `created at the effective size ${effective} instead of ${requested ?? 'nothing'} (DynamicStorage ${name})${note}` };
}

/** JSON Patch escaping of a map key (RFC 6901). */
function pointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

export function admissionResponse(review: AdmissionReview, dynamicStorages: readonly DynamicStorage[]): { review: AdmissionReview; mutation: PvcMutation } {
  const request = review.request;
  const uid = request?.uid ?? '';
  const pvc = request?.object;
  const mutation = request?.operation === 'CREATE' && pvc ? decidePvcSize(pvc, dynamicStorages) : { size: undefined, reason: 'not a PVC creation' };
  const response: NonNullable<AdmissionReview['response']> = { uid, allowed: true };
  if (mutation.size !== undefined && pvc) {
    const requested = pvc.spec?.resources?.requests?.storage ?? '';
    const ops: unknown[] = [
      { op: 'replace', path: '/spec/resources/requests/storage', value: mutation.size },
      pvc.metadata?.annotations
        ? { op: 'add', path: `/metadata/annotations/${pointer(resizedFromAnnotation)}`, value: requested }
        : { op: 'add', path: '/metadata/annotations', value: { [resizedFromAnnotation]: requested } },
    ];
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
    response.warnings = [`dynamic storage: ${mutation.reason}`];
  }
  return { review: { apiVersion: review.apiVersion || 'admission.k8s.io/v1', kind: 'AdmissionReview', response }, mutation };
}

export interface WebhookServerOptions {
  host: string;
  port: number;
  certPem: string;
  keyPem: string;
  /** When given, re-read every `reloadMs` (default 30 s) and served from then on: cert-manager renews the Secret in place. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /**
   * Else, when given, asked every `reloadMs` for the pair to serve (the controller's own certificate, which it renews);
   * a failure keeps the previous pair.
   */
  certificate?: (() => Promise<{ certPem: string; keyPem: string }>) | undefined;
  reloadMs?: number | undefined;
  /** The DynamicStorage objects of a namespace (read at request time). */
  listDynamicStorages: (namespace: string) => Promise<DynamicStorage[]>;
  log: Logger;
}

export interface WebhookServer {
  readonly port: number;
  close(): Promise<void>;
}

async function readBody(req: NodeJS.ReadableStream, limit: number): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > limit) throw new Error('admission review too large');
  }
  return body;
}

/** A DynamicStorage review: a body that cannot be read is allowed (the controller checks the policy again anyway). */
async function answerValidation(req: NodeJS.ReadableStream, options: WebhookServerOptions): Promise<AdmissionReview<unknown>> {
  let review: AdmissionReview<unknown> = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };
  try {
    review = JSON.parse(await readBody(req, 3 * 1024 * 1024)) as AdmissionReview<unknown>;
    const result = validationResponse(review);
    if (result.response?.allowed === false) {
      options.log.info('DynamicStorage refused at admission', {
        namespace: review.request?.namespace, dynamicStorage: review.request?.name, operation: review.request?.operation, problems: result.response.status?.message,
      });
    }
    return result;
  } catch (err) {
    options.log.warn('admission review of a DynamicStorage failed; allowing it (the controller checks it again)', { err });
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request?.uid ?? '', allowed: true } };
  }
}

async function answer(req: NodeJS.ReadableStream, options: WebhookServerOptions): Promise<AdmissionReview> {
  let review: AdmissionReview = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };
  try {
    review = JSON.parse(await readBody(req, 3 * 1024 * 1024)) as AdmissionReview;
    const object = review.request?.object;
    const namespace = review.request?.namespace ?? object?.metadata?.namespace ?? '';
    const needsLookup = object?.metadata?.labels?.[cnpgLabels.cluster] !== undefined;
    const { review: result, mutation } = admissionResponse(review, needsLookup ? await options.listDynamicStorages(namespace) : []);
    if (mutation.size !== undefined) {
      options.log.info('new PVC sized up', { namespace, pvc: object?.metadata?.name ?? object?.metadata?.generateName, reason: mutation.reason });
    }
    return result;
  } catch (err) {
    options.log.warn('admission review failed; allowing the PVC unchanged', { err });
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request?.uid ?? '', allowed: true } };
  }
}

/**
 * HTTPS server answering AdmissionReviews on POST /mutate-pvc and POST /validate-dynamicstorage. Any failure answers
 * "allowed, unchanged".
 */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const server = https.createServer({ cert: options.certPem, key: options.keyPem }, (req, res) => {
    const path = req.url?.split('?')[0];
    const handler = path === '/mutate-pvc' ? answer : path === '/validate-dynamicstorage' ? answerValidation : undefined;
    if (req.method !== 'POST' || handler === undefined) {
      res.writeHead(404).end();
      return;
    }
    void handler(req, options).then((review) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(review));
    });
  });
  const port = await listenOn(server, options.port, options.host);
  const reload = watchCertificate(server, options);
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      if (reload) clearInterval(reload);
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
  };
}

/** Where a renewed pair comes from: the files cert-manager renews, or the controller's own source. */
function certificateSource(options: WebhookServerOptions): { source: () => Promise<{ certPem: string; keyPem: string }>; origin: string } | undefined {
  const { certFile, keyFile } = options;
  if (certFile && keyFile) {
    return {
      origin: certFile,
      source: async () => {
        const [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
        return { certPem, keyPem };
      },
    };
  }
  return options.certificate ? { source: options.certificate, origin: 'controller' } : undefined;
}

/** Serves a renewed certificate from the next handshake on; a half-written pair (cert and key not matching) is skipped. */
function watchCertificate(server: https.Server, options: WebhookServerOptions): NodeJS.Timeout | undefined {
  const from = certificateSource(options);
  if (!from) return undefined;
  let current = `${options.certPem}\u0000${options.keyPem}`;
  const timer = setInterval(() => {
    void from.source().then(({ certPem: cert, keyPem: key }) => {
      if (`${cert}\u0000${key}` === current) return;
      server.setSecureContext({ cert, key });
      current = `${cert}\u0000${key}`;
      options.log.info('webhook certificate reloaded', { source: from.origin });
    }).catch((err: unknown) => { options.log.warn('could not reload the webhook certificate; serving the previous one', { err, source: from.origin }); });
  }, options.reloadMs ?? 30_000);
  timer.unref();
  return timer;
}

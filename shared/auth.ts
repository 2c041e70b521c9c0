/**
 * Authentication and authorization of the callers of the agents and of the controller's /metrics, as kube-rbac-proxy
 * does it: the bearer token is checked with a TokenReview, the caller it names is checked with a SubjectAccessReview,
 * and both answers are cached briefly. Failed authentications are rate-limited per remote address (FailureLimiter).
 *
 * The authorization attributes are a non-resource URL: `get` on the request path (`/metrics`, `/v1/volumes`,
 * `/v1/volumes/watch`). RBAC grants these with `nonResourceURLs` in a ClusterRole (see daemonset/rbac-callers.yaml).
 *
 * Outcomes: no or an invalid token -> 401; authenticated but not allowed -> 403; the API server cannot be asked -> 503.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { errorMessage } from './errors.ts';
import type { Logger } from './log.ts';

/** What the reviewers need from a Kubernetes client: POST a body to an API path, get the created object back. */
export interface ReviewClient {
  create<T>(path: string, body: unknown): Promise<T>;
}

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface TokenReview {
  apiVersion: 'authentication.k8s.io/v1';
  kind: 'TokenReview';
  spec: { token: string; audiences?: string[] };
  status?: { authenticated?: boolean; user?: UserInfo; audiences?: string[]; error?: string };
}

export interface SubjectAccessReview {
  apiVersion: 'authorization.k8s.io/v1';
  kind: 'SubjectAccessReview';
  spec: {
    user?: string;
    uid?: string;
    groups?: string[];
    extra?: Record<string, string[]>;
    nonResourceAttributes?: { path: string; verb: string };
  };
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

export interface Caller {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export type Authentication = { authenticated: true; caller: Caller } | { authenticated: false; reason: string };
export interface Authorization { allowed: boolean; reason: string }

export interface TokenReviewer {
  review(token: string): Promise<Authentication>;
}

export interface AccessReviewer {
  review(caller: Caller, attributes: { path: string; verb: string }): Promise<Authorization>;
}

export type AuthOutcome =
  | { status: 200; caller: Caller }
  | { status: 401; reason: string }
  | { status: 403; caller: Caller; reason: string }
  | { status: 503; reason: string };

/** A TokenReview through the API server. `audiences`: the audiences the token must be for (default: the API server's). */
export function kubeTokenReviewer(kube: ReviewClient, audiences: string[] = []): TokenReviewer {
  return {
    async review(token) {
      const body: TokenReview = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } };
      if (audiences.length > 0) body.spec.audiences = audiences;
      const result = await kube.create<TokenReview>('/apis/authentication.k8s.io/v1/tokenreviews', body);
      const status = result.status;
      if (!status?.authenticated || !status.user?.username) {
        return { authenticated: false, reason: status?.error || 'token not authenticated' };
      }
      if (audiences.length > 0 && !(status.audiences ?? []).some((a) => audiences.includes(a))) {
        return { authenticated: false, reason: 'token audience not accepted' };
      }
      const { user } = status;
      const caller: Caller = { username: user.username ?? '', groups: user.groups ?? [] };
      if (user.uid) caller.uid = user.uid;
      if (user.extra) caller.extra = user.extra;
      return { authenticated: true, caller };
    },
  };
}

/** A SubjectAccessReview through the API server, on a non-resource URL. */
export function kubeAccessReviewer(kube: ReviewClient): AccessReviewer {
  return {
    async review(caller, attributes) {
      const body: SubjectAccessReview = {
        apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
        spec: { user: caller.username, groups: caller.groups, nonResourceAttributes: { path: attributes.path, verb: attributes.verb } },
      };
      if (caller.uid) body.spec.uid = caller.uid;
      if (caller.extra) body.spec.extra = caller.extra;
      const result = await kube.create<SubjectAccessReview>('/apis/authorization.k8s.io/v1/subjectaccessreviews', body);
      const allowed = result.status?.allowed === true && result.status.denied !== true;
      return { allowed, reason: result.status?.reason || result.status?.evaluationError || (allowed ? 'allowed' : 'no RBAC rule allows it') };
    },
  };
}

interface Entry<V> { value: V; expiresAt: number }

/** A small TTL cache that also shares one in-flight lookup per key. Failed lookups are not cached. */
export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly inFlight = new Map<string, Promise<V>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(ttlMs: number, maxEntries: number, now: () => number = Date.now) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
    this.now = now;
  }

  get size(): number {
    return this.entries.size;
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.now()) return entry.value;
    if (entry) this.entries.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const promise = load().then((value) => {
      this.store(key, value);
      return value;
    }).finally(() => { this.inFlight.delete(key); });
    this.inFlight.set(key, promise);
    return promise;
  }

  private store(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= this.maxEntries) this.evict();
    this.entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
  }

  private evict(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) this.entries.delete(key);
    }
    // Still full: drop the oldest insertions (Map iterates in insertion order).
    for (const key of this.entries.keys()) {
      if (this.entries.size < this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}

export interface RequestAuthorizerOptions {
  tokens: TokenReviewer;
  access: AccessReviewer;
  /** How long an answer is reused (default 10 s). */
  cacheTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

const bearerPattern = /^Bearer\s+(\S+)\s*$/i;

export class RequestAuthorizer {
  private readonly tokens: TokenReviewer;
  private readonly access: AccessReviewer;
  private readonly tokenCache: TtlCache<Authentication>;
  private readonly accessCache: TtlCache<Authorization>;

  constructor(options: RequestAuthorizerOptions) {
    this.tokens = options.tokens;
    this.access = options.access;
    const ttl = options.cacheTtlMs ?? 10_000;
    const max = options.maxEntries ?? 1024;
    this.tokenCache = new TtlCache(ttl, max, options.now);
    this.accessCache = new TtlCache(ttl, max, options.now);
  }

  /** Checks an `Authorization` header for `get` on `path`. */
  async check(authorizationHeader: string | undefined, path: string): Promise<AuthOutcome> {
    const token = bearerPattern.exec(authorizationHeader ?? '')?.[1];
    if (!token) return { status: 401, reason: 'a bearer token is required' };
    let authn: Authentication;
    try {
      const tokenKey = createHash('sha256').update(token).digest('base64url');
      authn = await this.tokenCache.get(tokenKey, () => this.tokens.review(token));
    } catch (err) {
      return { status: 503, reason: `cannot review the token: ${errorMessage(err)}` };
    }
    if (!authn.authenticated) return { status: 401, reason: authn.reason };
    const { caller } = authn;
    const attributes = { path, verb: 'get' };
    let authz: Authorization;
    try {
      const accessKey = JSON.stringify([caller.username, caller.uid, caller.groups, caller.extra, path]);
      authz = await this.accessCache.get(accessKey, () => this.access.review(caller, attributes));
    } catch (err) {
      return { status: 503, reason: `cannot review access: ${errorMessage(err)}` };
    }
    if (!authz.allowed) return { status: 403, caller, reason: `${caller.username} may not get ${path}: ${authz.reason || 'no RBAC rule allows it'}` };
    return { status: 200, caller };
  }
}

/** Failed authentications per remote address in fixed windows: a client guessing tokens is answered 429 cheaply. */
export class FailureLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(limit: number, windowMs: number, now: () => number = Date.now) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.now = now;
  }

  /** Milliseconds until `address` may try again; 0 when it may now. */
  blockedFor(address: string): number {
    const entry = this.windows.get(address);
    if (!entry) return 0;
    const elapsed = this.now() - entry.start;
    if (elapsed >= this.windowMs) {
      this.windows.delete(address);
      return 0;
    }
    return entry.failures >= this.limit ? this.windowMs - elapsed : 0;
  }

  fail(address: string): void {
    const now = this.now();
    const entry = this.windows.get(address);
    if (!entry || now - entry.start >= this.windowMs) {
      if (this.windows.size >= 10_000) this.windows.clear();
      this.windows.set(address, { start: now, failures: 1 });
    } else {
      entry.failures += 1;
    }
  }
}

export interface GateOptions {
  authorizer: Pick<RequestAuthorizer, 'check'>;
  failures: FailureLimiter;
  /** The realm named in WWW-Authenticate. */
  realm: string;
  logger: Logger;
}

function refuse(res: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`${text}\n`);
}

/**
 * Authenticates and authorizes `get` on `path` for one request, answering it when refused: 429 while the remote address
 * has failed too often (without asking the API server), 401 without a valid token, 403 when RBAC does not allow the
 * path, 503 when the API server cannot be asked. Returns the caller when the request may go on.
 */
export async function gateRequest(options: GateOptions, req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<Caller | undefined> {
  const address = req.socket.remoteAddress ?? '';
  const wait = options.failures.blockedFor(address);
  if (wait > 0) {
    refuse(res, 429, 'Too Many Requests: too many failed authentications', { 'retry-after': String(Math.ceil(wait / 1000)), connection: 'close' });
    return undefined;
  }
  const outcome = await options.authorizer.check(req.headers.authorization, path);
  if (outcome.status === 200) return outcome.caller;
  if (outcome.status === 401 || outcome.status === 403) options.failures.fail(address);
  options.logger.debug('request refused', { path, status: outcome.status, reason: outcome.reason });
  const headers: http.OutgoingHttpHeaders = {};
  if (outcome.status === 401) headers['www-authenticate'] = `Bearer realm="${options.realm}"`;
  if (outcome.status === 503) headers['retry-after'] = '1';
  const text = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' }[outcome.status];
  refuse(res, outcome.status, `${text}: ${outcome.reason}`, headers);
  return undefined;
}

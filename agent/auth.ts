/**
 * Authentication and authorization of the agent's callers, as kube-rbac-proxy does it: the bearer token is checked with a
 * TokenReview, the caller it names is checked with a SubjectAccessReview, and both answers are cached briefly.
 *
 * The authorization attributes are a non-resource URL: `get` on the request path (`/metrics`, `/v1/volumes`,
 * `/v1/volumes/watch`). RBAC grants these with `nonResourceURLs` in a ClusterRole (see daemonset/rbac-callers.yaml).
 *
 * Outcomes: no or an invalid token -> 401; authenticated but not allowed -> 403; the API server cannot be asked -> 503.
 */
import { createHash } from 'node:crypto';
import { errorMessage } from '../shared/errors.ts';
import type { KubeClient } from './kube/client.ts';
import type { SubjectAccessReview, TokenReview } from './kube/types.ts';

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
export function kubeTokenReviewer(kube: KubeClient, audiences: string[] = []): TokenReviewer {
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
export function kubeAccessReviewer(kube: KubeClient): AccessReviewer {
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

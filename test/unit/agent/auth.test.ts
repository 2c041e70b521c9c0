import assert from 'node:assert/strict';
import { RequestAuthorizer, TtlCache, type AccessReviewer, type Caller, type TokenReviewer } from '../../../agent/auth.ts';

class Reviews implements TokenReviewer, AccessReviewer {
  tokenCalls = 0;
  accessCalls = 0;
  apiDown = false;
  readonly users = new Map<string, Caller>([['good', { username: 'system:serviceaccount:ops:controller', groups: ['system:serviceaccounts'] }],
    ['nosy', { username: 'system:serviceaccount:ops:nosy', groups: [] }]]);
  readonly allowed = new Set(['system:serviceaccount:ops:controller /v1/volumes']);

  async review(token: string): ReturnType<TokenReviewer['review']>;
  async review(caller: Caller, attributes: { path: string; verb: string }): ReturnType<AccessReviewer['review']>;
  async review(a: string | Caller, b?: { path: string; verb: string }): Promise<never> {
    await Promise.resolve();
    if (this.apiDown) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    if (typeof a === 'string') {
      this.tokenCalls++;
      const caller = this.users.get(a);
      return (caller ? { authenticated: true, caller } : { authenticated: false, reason: 'invalid bearer token' }) as never;
    }
    this.accessCalls++;
    assert.equal(b?.verb, 'get');
    const allowed = this.allowed.has(`${a.username} ${b.path}`);
    return { allowed, reason: allowed ? 'RBAC: allowed' : '' } as never;
  }
}

function setup(): { reviews: Reviews; auth: RequestAuthorizer; clock: { now: number } } {
  const reviews = new Reviews();
  const clock = { now: 0 };
  const auth = new RequestAuthorizer({ tokens: reviews, access: reviews, cacheTtlMs: 10_000, now: () => clock.now });
  return { reviews, auth, clock };
}

describe('agent auth', () => {
  it('401 without a bearer token or with an invalid one', async () => {
    const { auth } = setup();
    assert.deepEqual(await auth.check(undefined, '/v1/volumes'), { status: 401, reason: 'a bearer token is required' });
    assert.deepEqual(await auth.check('Basic abc', '/v1/volumes'), { status: 401, reason: 'a bearer token is required' });
    assert.deepEqual(await auth.check('Bearer bad', '/v1/volumes'), { status: 401, reason: 'invalid bearer token' });
  });

  it('403 when RBAC does not allow get on the path, 200 when it does', async () => {
    const { auth } = setup();
    const denied = await auth.check('Bearer nosy', '/v1/volumes');
    assert.equal(denied.status, 403);
    assert.match(denied.reason, /system:serviceaccount:ops:nosy may not get \/v1\/volumes: no RBAC rule allows it/);
    const ok = await auth.check('bearer good', '/v1/volumes');
    assert.equal(ok.status, 200);
    assert.equal((await auth.check('Bearer good', '/metrics')).status, 403);
  });

  it('caches answers briefly and shares concurrent lookups', async () => {
    const { auth, reviews, clock } = setup();
    await Promise.all([1, 2, 3].map(() => auth.check('Bearer good', '/v1/volumes')));
    assert.equal(reviews.tokenCalls, 1);
    assert.equal(reviews.accessCalls, 1);
    clock.now = 9_999;
    await auth.check('Bearer good', '/v1/volumes');
    assert.equal(reviews.tokenCalls, 1);
    clock.now = 10_000;
    await auth.check('Bearer good', '/v1/volumes');
    assert.equal(reviews.tokenCalls, 2);
    assert.equal(reviews.accessCalls, 2);
  });

  it('503 when the API server cannot be asked, and such failures are not cached', async () => {
    const { auth, reviews } = setup();
    reviews.apiDown = true;
    const outcome = await auth.check('Bearer good', '/v1/volumes');
    assert.deepEqual(outcome, { status: 503, reason: 'cannot review the token: connect ECONNREFUSED' });
    reviews.apiDown = false;
    assert.equal((await auth.check('Bearer good', '/v1/volumes')).status, 200);
  });

  it('TtlCache evicts expired then oldest entries when full', async () => {
    let now = 0;
    const cache = new TtlCache<number>(100, 2, () => now);
    await cache.get('a', () => Promise.resolve(1));
    now = 50;
    await cache.get('b', () => Promise.resolve(2));
    await cache.get('c', () => Promise.resolve(3));
    assert.equal(cache.size, 2);
    assert.equal(await cache.get('a', () => Promise.resolve(10)), 10, 'a was evicted as the oldest');
    now = 200;
    await cache.get('d', () => Promise.resolve(4));
    assert.equal(cache.size, 1, 'expired entries go first');
  });
});

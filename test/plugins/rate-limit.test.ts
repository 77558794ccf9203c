// rateLimit: memory and Redis stores, keys, overrides, headers, and what happens when a real
// redis-server dies, hangs and comes back.
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import type { RateLimitPolicyConfig, RedisConfig } from '../../config/policy-model.ts';
import { isPromise, newContext, SharedResources, type Identity, type PolicyContext, type PolicyLogger, type Verdict } from '../../plugins/policy.ts';
import { compileKey, MAX_KEY_LENGTH } from '../../plugins/rate-limit-key.ts';
import { compileRateLimit, type CompiledRateLimit } from '../../plugins/rate-limit.ts';
import { startRedis } from '../helpers/redis.ts';

interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, any>;
  msg?: string;
}

function logger(): PolicyLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj: obj as Record<string, any>, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, any>, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, any>, msg }),
  };
}

interface Replica {
  shared: SharedResources;
  log: ReturnType<typeof logger>;
}

function replica(t: ExecutionContext): Replica {
  const shared = new SharedResources();
  t.teardown(() => shared.close());
  return { shared, log: logger() };
}

function compile(
  r: Replica,
  cfg: RateLimitPolicyConfig,
  opts: { name?: string; redis?: RedisConfig | null } = {},
): CompiledRateLimit {
  return compileRateLimit(opts.name ?? 'per-ip', cfg, { consumers: new Map(), shared: r.shared, log: r.log, redis: opts.redis ?? null });
}

function ctx(opts: { ip?: string; headers?: Record<string, string>; identity?: Partial<Identity> | null; route?: string } = {}): PolicyContext {
  const c = newContext({ method: 'GET', path: '/', query: '', host: 'api.test', headers: opts.headers ?? {}, clientIp: opts.ip ?? '192.0.2.1', route: opts.route ?? 'r' });
  if (opts.identity) {
    c.identity = { kind: 'consumer', subject: 'anon', method: 'api-key', scopes: [], roles: [], claims: {}, ...opts.identity };
  }
  return c;
}

interface Outcome {
  status: number;
  code?: string;
  headers: Record<string, string>;
}

/** Run the policy once: 200 (null verdict, with the headers it added) or the verdict. */
async function call(p: CompiledRateLimit, c: PolicyContext = ctx()): Promise<Outcome> {
  const v: Verdict | null = await p.run(c);
  if (v === null) return { status: 200, headers: Object.fromEntries(c.responseHeaders ?? []) };
  return { status: v.status, code: v.code, headers: Object.fromEntries(v.headers ?? []) };
}

async function statuses(p: CompiledRateLimit, n: number, make: () => PolicyContext = () => ctx()): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await call(p, make())).status);
  return out;
}

const count = (list: number[], status: number) => list.filter((s) => s === status).length;

/** Bounded poll: returns when `check` is true, fails the test after `attempts` tries. */
async function until(t: ExecutionContext, what: string, check: () => Promise<boolean> | boolean, attempts = 200, delayMs = 50): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  t.fail(`timed out waiting for: ${what}`);
  throw new Error(`timed out waiting for: ${what}`);
}

/** The replica's shared ioredis client (created by the policy). */
function clientOf(r: Replica, url: string): Redis {
  return r.shared.get<Redis>(`redis:${url}`, () => {
    throw new Error('no redis client was created');
  });
}

async function ready(t: ExecutionContext, r: Replica, url: string): Promise<void> {
  const client = clientOf(r, url);
  await until(t, 'redis client ready', () => client.status === 'ready');
}

/** Call once and tell whether the shared store decided it (no store failure counted). */
async function viaStore(p: CompiledRateLimit, c: PolicyContext): Promise<{ outcome: Outcome; store: boolean }> {
  const before = p.stats.storeFailures;
  const outcome = await call(p, c);
  return { outcome, store: p.stats.storeFailures === before };
}

// ---------------------------------------------------------------------------------------------
// Memory store

test('memory: a budget per client address; the request over it gets 429 CW_RATE_LIMITED with Retry-After', async (t) => {
  const p = compile(replica(t), { limits: [{ requests: 3, per: '1m' }] });
  t.is(p.kind, 'rateLimit');
  t.is(p.phase, 'limit');
  t.is(p.store, 'memory');
  t.deepEqual(await statuses(p, 5), [200, 200, 200, 429, 429]);
  const denied = await call(p);
  t.is(denied.code, 'CW_RATE_LIMITED');
  const retry = Number(denied.headers['Retry-After']);
  t.true(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${denied.headers['Retry-After']}`);
  // Another client address has its own budget.
  t.deepEqual(await statuses(p, 3, () => ctx({ ip: '198.51.100.7' })), [200, 200, 200]);
  t.deepEqual(p.stats, { allowed: 6, limited: 3, storeFailures: 0, unavailable: 0 });
});

test('several limits: every one must allow, and the one freeing up last sets Retry-After', async (t) => {
  const p = compile(replica(t), { limits: [{ requests: 5, per: '1m' }, { requests: 3, per: '1h' }] });
  t.deepEqual(await statuses(p, 4), [200, 200, 200, 429]);
  const denied = await call(p);
  t.regex(denied.headers['RateLimit']!, /^"per-ip-1h";r=0;t=\d+$/);
  const retry = Number(denied.headers['Retry-After']);
  t.true(retry > 60 && retry <= 3600, `Retry-After ${retry} comes from the hourly limit`);
});

test('a request refused by one limit does not use up the others', async (t) => {
  const r = replica(t);
  const p = compile(r, { limits: [{ requests: 2, per: '1m' }, { requests: 5, per: '1h' }] });
  t.deepEqual(await statuses(p, 5), [200, 200, 429, 429, 429]);
  // Same policy name and hourly limit (a reload that only raised the per-minute limit): the hourly
  // counter is the same one, and only the 2 allowed requests are on it.
  const reloaded = compile(r, { limits: [{ requests: 100, per: '1m' }, { requests: 5, per: '1h' }] });
  const next = await call(reloaded);
  t.is(next.status, 200);
  t.regex(next.headers['RateLimit']!, /^"per-ip-1h";r=2;t=\d+$/);
});

test('a reload with the same config keeps the budgets; other SharedResources (another process) start afresh', async (t) => {
  const r = replica(t);
  const cfg = { limits: [{ requests: 3, per: '1m' }] };
  const first = compile(r, cfg);
  t.deepEqual(await statuses(first, 2), [200, 200]);
  const second = compile(r, cfg);
  t.deepEqual(await statuses(second, 2), [200, 429]);
  t.is(second.stats, first.stats, 'counters for metrics continue across the reload');
  t.deepEqual(second.stats, { allowed: 3, limited: 1, storeFailures: 0, unavailable: 0 });
  const elsewhere = compile(replica(t), cfg);
  t.deepEqual(await statuses(elsewhere, 3), [200, 200, 200]);
});

test('headers: all (default) on every response, in the IETF format', async (t) => {
  const p = compile(replica(t), { limits: [{ requests: 3, per: '1m' }, { requests: 100, per: '1h' }] });
  const policy = '"per-ip-1m";q=3;w=60, "per-ip-1h";q=100;w=3600';
  const c = ctx();
  t.is(await p.run(c), null);
  t.deepEqual(c.responseHeaders?.map(([k]) => k), ['RateLimit-Policy', 'RateLimit']);
  const first = Object.fromEntries(c.responseHeaders!);
  t.is(first['RateLimit-Policy'], policy);
  t.regex(first['RateLimit']!, /^"per-ip-1m";r=2;t=\d+$/);
  const t1 = Number(/t=(\d+)$/.exec(first['RateLimit']!)![1]);
  t.true(t1 >= 1 && t1 <= 60);
  await call(p);
  const third = await call(p);
  t.regex(third.headers['RateLimit']!, /^"per-ip-1m";r=0;t=\d+$/);
  const denied = await call(p);
  t.is(denied.status, 429);
  t.deepEqual(Object.keys(denied.headers), ['Retry-After', 'RateLimit-Policy', 'RateLimit']);
  t.is(denied.headers['RateLimit-Policy'], policy);
  t.is(denied.headers['RateLimit'], `"per-ip-1m";r=0;t=${denied.headers['Retry-After']}`);
});

test('headers: the limit closest to exhaustion is the one reported', async (t) => {
  const p = compile(replica(t), { limits: [{ requests: 10, per: '1m' }, { requests: 3, per: '1h' }] });
  t.regex((await call(p)).headers['RateLimit']!, /^"per-ip-1h";r=2;t=\d+$/);
  const q = compile(replica(t), { limits: [{ requests: 2, per: '1s' }, { requests: 2, per: '1m' }] }, { name: 'tie' });
  // Same remaining: the one that resets last is the one that matters.
  t.regex((await call(q)).headers['RateLimit']!, /^"tie-1m";r=1;t=\d+$/);
});

test('headers: limited only on 429s, none never (Retry-After still on 429)', async (t) => {
  const limited = compile(replica(t), { limits: [{ requests: 1, per: '1m' }], headers: 'limited' });
  const c = ctx();
  t.is(await limited.run(c), null);
  t.is(c.responseHeaders, null);
  const l429 = await call(limited);
  t.is(l429.status, 429);
  t.is(l429.headers['RateLimit-Policy'], '"per-ip-1m";q=1;w=60');
  t.regex(l429.headers['RateLimit']!, /^"per-ip-1m";r=0;t=\d+$/);

  const none = compile(replica(t), { limits: [{ requests: 1, per: '1m' }], headers: 'none' });
  const c2 = ctx();
  t.is(await none.run(c2), null);
  t.is(c2.responseHeaders, null);
  const n429 = await call(none);
  t.is(n429.status, 429);
  t.deepEqual(Object.keys(n429.headers), ['Retry-After']);
});

test('limit names in headers: window labels, and distinct names for two limits with one window', async (t) => {
  const p = compile(replica(t), { limits: [{ requests: 10, per: '90s' }, { requests: 20, per: 86_400_000 }, { requests: 5, per: '1.5m' }] }, { name: 'w' });
  t.is((await call(p)).headers['RateLimit-Policy'], '"w-90s-0";q=10;w=90, "w-24h";q=20;w=86400, "w-90s-2";q=5;w=90');
});

test('windows must be whole seconds; store redis without a redis section is an error', (t) => {
  t.throws(() => compile(replica(t), { limits: [{ requests: 1, per: '250ms' }] }), { message: /whole number of seconds/ });
  t.throws(() => compile(replica(t), { limits: [{ requests: 1, per: '1500ms' }] }), { message: /whole number of seconds/ });
  t.throws(() => compile(replica(t), { limits: [{ requests: 1, per: '1s' }], store: 'redis' }), { message: /store "redis".*no top-level "redis"/ });
});

test('memory store: run decides at once, never a Promise (allowed, 429, several limits with refunds, overrides)', (t) => {
  const p = compile(replica(t), {
    key: ['consumer'],
    limits: [{ requests: 2, per: '1m' }, { requests: 3, per: '1h' }],
    overrides: { gold: [{ requests: 1, per: '1m' }] },
  });
  const outcomes: Array<number | string> = [];
  const c = () => ctx({ identity: { consumer: 'acme' } });
  for (let i = 0; i < 4; i++) {
    const cx = c();
    const out = p.run(cx);
    t.false(isPromise(out));
    outcomes.push(out === null ? (cx.responseHeaders ?? []).map(([, v]) => v).join(' / ') : (out as Verdict).status);
  }
  t.deepEqual(outcomes.slice(0, 2).map((h) => String(h).replace(/t=\d+/, 't=T')), [
    '"per-ip-1m";q=2;w=60, "per-ip-1h";q=3;w=3600 / "per-ip-1m";r=1;t=T',
    '"per-ip-1m";q=2;w=60, "per-ip-1h";q=3;w=3600 / "per-ip-1m";r=0;t=T',
  ]);
  t.deepEqual(outcomes.slice(2), [429, 429]);
  // The refused requests were given back to the hourly limit: 2 of 3 used.
  return p.inspect('acme').then((s) => {
    t.deepEqual(s.limits.map((l) => [l.name, l.consumed, l.remaining]), [['per-ip-1m', 4, 0], ['per-ip-1h', 2, 1]]);
    const gold = ctx({ identity: { consumer: 'gold' } });
    t.is(p.run(gold), null);
    const denied = p.run(ctx({ identity: { consumer: 'gold' } }));
    t.false(isPromise(denied));
    t.is((denied as Verdict).status, 429);
    t.deepEqual(p.stats, { allowed: 3, limited: 3, storeFailures: 0, unavailable: 0 });
  });
});

test('memory store: a reload that keeps the policy and limit keeps the counts (inspect), a changed limit starts afresh, closing the SharedResources forgets them', async (t) => {
  const r = replica(t);
  const first = compile(r, { limits: [{ requests: 5, per: '1m' }, { requests: 50, per: '1h' }] });
  for (let i = 0; i < 3; i++) first.run(ctx());
  const reloaded = compile(r, { limits: [{ requests: 5, per: '1m' }, { requests: 60, per: '1h' }] });
  const state = await reloaded.inspect('192.0.2.1');
  t.is(state.key, '192.0.2.1');
  t.is(state.override, '');
  t.deepEqual(state.limits.map((l) => [l.name, l.limit, l.consumed, l.remaining]), [['per-ip-1m', 5, 3, 2], ['per-ip-1h', 60, 0, 60]]);
  t.true(state.limits[0]!.resetMs > 0 && state.limits[0]!.resetMs <= 60_000);
  t.is(state.limits[1]!.resetMs, 0);
  // The first compile's counters are the same objects: what it counts, the reloaded one sees.
  first.run(ctx());
  t.is((await reloaded.inspect('192.0.2.1')).limits[0]!.consumed, 4);
  await r.shared.close();
  t.is((await reloaded.inspect('192.0.2.1')).limits[0]!.consumed, 0);
});

// ---------------------------------------------------------------------------------------------
// Keys

test('key consumer: one budget per consumer whatever the address; anonymous requests share "-"', async (t) => {
  const p = compile(replica(t), { key: ['consumer'], limits: [{ requests: 2, per: '1m' }] });
  const acme = (ip: string) => () => ctx({ ip, identity: { consumer: 'acme', subject: 'acme' } });
  t.deepEqual([...(await statuses(p, 1, acme('10.0.0.1'))), ...(await statuses(p, 2, acme('10.0.0.2')))], [200, 200, 429]);
  // Anonymous callers from different addresses share one budget, apart from acme's.
  t.deepEqual([...(await statuses(p, 1, () => ctx({ ip: '10.0.0.3' }))), ...(await statuses(p, 2, () => ctx({ ip: '10.0.0.4' })))], [200, 200, 429]);
  t.deepEqual(await statuses(p, 1, () => ctx({ identity: { consumer: 'other' } })), [200]);
});

test('key header: per header value, absent values share a budget; key subject and claim', async (t) => {
  const p = compile(replica(t), { key: ['header:X-Tenant'], limits: [{ requests: 1, per: '1m' }] });
  t.deepEqual(await statuses(p, 2, () => ctx({ headers: { 'x-tenant': 'a' } })), [200, 429]);
  t.deepEqual(await statuses(p, 1, () => ctx({ headers: { 'x-tenant': 'b' } })), [200]);
  t.deepEqual(await statuses(p, 1, () => ctx({ ip: '10.1.1.1' })), [200]);
  t.deepEqual(await statuses(p, 1, () => ctx({ ip: '10.1.1.2' })), [429]);
  // A literal "-" is not the same as no header.
  t.deepEqual(await statuses(p, 1, () => ctx({ headers: { 'x-tenant': '-' } })), [200]);

  const bySubject = compile(replica(t), { key: ['subject'], limits: [{ requests: 1, per: '1m' }] });
  t.deepEqual(await statuses(bySubject, 2, () => ctx({ identity: { kind: 'user', subject: 'u1' } })), [200, 429]);
  t.deepEqual(await statuses(bySubject, 1, () => ctx({ identity: { kind: 'user', subject: 'u2' } })), [200]);

  const byOrg = compile(replica(t), { key: ['claim:org.id'], limits: [{ requests: 1, per: '1m' }] });
  const org = (id: unknown) => () => ctx({ identity: { kind: 'user', subject: String(Math.random()), claims: { org: { id } } } });
  t.deepEqual(await statuses(byOrg, 2, org('o1')), [200, 429]);
  t.deepEqual(await statuses(byOrg, 1, org(7)), [200]);
  t.deepEqual(await statuses(byOrg, 2, () => ctx({ identity: { kind: 'user', subject: 'x', claims: {} } })), [200, 429]);
});

test('key combination: consumer and address together; route', async (t) => {
  const p = compile(replica(t), { key: ['consumer', 'ip'], limits: [{ requests: 1, per: '1m' }] });
  const c = (ip: string, consumer?: string) => () => ctx({ ip, identity: consumer ? { consumer } : null });
  t.deepEqual(await statuses(p, 2, c('10.0.0.1', 'acme')), [200, 429]);
  t.deepEqual(await statuses(p, 1, c('10.0.0.2', 'acme')), [200]);
  t.deepEqual(await statuses(p, 1, c('10.0.0.1', 'other')), [200]);
  t.deepEqual(await statuses(p, 2, c('10.0.0.1')), [200, 429]);

  const perRoute = compile(replica(t), { key: ['route'], limits: [{ requests: 1, per: '1m' }] });
  t.deepEqual(await statuses(perRoute, 2, () => ctx({ route: 'orders', ip: String(Math.random()) })), [200, 429]);
  t.deepEqual(await statuses(perRoute, 1, () => ctx({ route: 'users' })), [200]);
});

test('keys: joined parts cannot collide, long values are hashed, absent parts are "-"', (t) => {
  const key = compileKey(['header:a', 'header:b']);
  const k = (a?: string, b?: string) => key(ctx({ headers: { ...(a !== undefined ? { a } : {}), ...(b !== undefined ? { b } : {}) } }));
  t.not(k('x|y', 'z'), k('x', 'y|z'));
  t.is(k(undefined, 'z'), '-|z');
  t.not(k('-', 'z'), k(undefined, 'z'));
  t.is(k('', 'z'), '-|z');
  const long1 = k('a'.repeat(10_000), 'z');
  const long2 = k('a'.repeat(10_001), 'z');
  t.true(long1.length <= MAX_KEY_LENGTH);
  t.regex(long1, /^#[0-9a-f]{40}$/);
  t.not(long1, long2);
  // A value cannot pose as a hashed key.
  t.not(k(long1, undefined), long1 + '|-');
  t.is(compileKey()(ctx({ ip: '2001:db8::1' })), '2001:db8::1');
  t.is(compileKey(['consumer'])(ctx()), '-');
});

test('overrides replace the limits for that consumer', async (t) => {
  const p = compile(replica(t), {
    key: ['consumer'],
    limits: [{ requests: 1, per: '1m' }],
    overrides: { gold: [{ requests: 3, per: '1m' }, { requests: 1000, per: '1h' }] },
  });
  const gold = () => ctx({ identity: { consumer: 'gold' } });
  const first = await call(p, gold());
  t.is(first.headers['RateLimit-Policy'], '"per-ip-1m";q=3;w=60, "per-ip-1h";q=1000;w=3600');
  t.deepEqual(await statuses(p, 3, gold), [200, 200, 429]);
  t.deepEqual(await statuses(p, 2, () => ctx({ identity: { consumer: 'basic' } })), [200, 429]);
  const anon = await call(p);
  t.is(anon.headers['RateLimit-Policy'], '"per-ip-1m";q=1;w=60');
});

// ---------------------------------------------------------------------------------------------
// Redis store

// A generous command timeout where Redis is meant to be healthy: on a loaded 2-core CI machine a
// command can take longer than the 100ms default, which the policy would (rightly) count as a
// store failure. The slow-Redis test sets its own short timeout; a killed Redis fails at once.
const redisCfg = (url: string, extra: Partial<RedisConfig> = {}): RedisConfig => ({ url, timeout: '5s', ...extra });

test('redis: two replicas (separately compiled, separate SharedResources) share one budget', async (t) => {
  const redis = await startRedis(t);
  const a = replica(t);
  const b = replica(t);
  const cfg: RateLimitPolicyConfig = { limits: [{ requests: 7, per: '1m' }] };
  const pa = compile(a, cfg, { redis: redisCfg(redis.url) });
  const pb = compile(b, cfg, { redis: redisCfg(redis.url) });
  t.is(pa.store, 'redis');
  await ready(t, a, redis.url);
  await ready(t, b, redis.url);
  const results: number[] = [];
  for (let i = 0; i < 20; i++) results.push((await call(i % 2 ? pb : pa)).status);
  t.is(count(results, 200), 7);
  t.is(count(results, 429), 13);
  t.is(pa.stats.storeFailures + pb.stats.storeFailures, 0);
  // In parallel too: the counter is atomic in Redis.
  const par = await Promise.all(Array.from({ length: 30 }, (_, i) => call(i % 2 ? pb : pa, ctx({ ip: '203.0.113.9' }))));
  t.is(par.filter((o) => o.status === 200).length, 7);
});

test('redis: keys are <keyPrefix><policy>:<index>:<window>:<key>, overrides apart, so two policies never share counters', async (t) => {
  const redis = await startRedis(t);
  const r = replica(t);
  const cfg: RateLimitPolicyConfig = { key: ['consumer', 'ip'], limits: [{ requests: 5, per: '1m' }, { requests: 50, per: '1h' }], overrides: { gold: [{ requests: 9, per: '1m' }] } };
  const one = compile(r, cfg, { name: 'one', redis: redisCfg(redis.url, { keyPrefix: 'cw-test:' }) });
  const two = compile(r, cfg, { name: 'two', redis: redisCfg(redis.url, { keyPrefix: 'cw-test:' }) });
  await ready(t, r, redis.url);
  await call(one, ctx({ ip: '10.0.0.1', identity: { consumer: 'acme' } }));
  await call(one, ctx({ ip: '10.0.0.1', identity: { consumer: 'gold' } }));
  await call(one, ctx({ ip: '10.0.0.1', headers: { 'x-huge': 'x'.repeat(5000) } }));
  t.deepEqual(await statuses(two, 5, () => ctx({ ip: '10.0.0.1', identity: { consumer: 'acme' } })), [200, 200, 200, 200, 200]);
  const keys = (await clientOf(r, redis.url).keys('*')).sort();
  t.deepEqual(keys, [
    'cw-test:one:0:1m:-|10.0.0.1',
    'cw-test:one:0:1m:acme|10.0.0.1',
    'cw-test:one:1:1h:-|10.0.0.1',
    'cw-test:one:1:1h:acme|10.0.0.1',
    'cw-test:one:@gold:0:1m:gold|10.0.0.1',
    'cw-test:two:0:1m:acme|10.0.0.1',
    'cw-test:two:1:1h:acme|10.0.0.1',
  ]);
  const hashed = compile(r, { key: ['header:x-huge'], limits: [{ requests: 5, per: '1m' }] }, { name: 'h', redis: redisCfg(redis.url) });
  await call(hashed, ctx({ headers: { 'x-huge': 'x'.repeat(5000) } }));
  const hk = await clientOf(r, redis.url).keys('causeway:h:*');
  t.is(hk.length, 1);
  t.regex(hk[0]!, /^causeway:h:0:1m:#[0-9a-f]{40}$/);
});

test('redis killed mid-load, failOpen: limits keep applying per replica in memory; Redis is used again once it is back', async (t) => {
  const redis = await startRedis(t);
  const a = replica(t);
  const b = replica(t);
  const cfg: RateLimitPolicyConfig = { limits: [{ requests: 5, per: '1m' }], onStoreFailure: 'failOpen' };
  const pa = compile(a, cfg, { redis: redisCfg(redis.url) });
  const pb = compile(b, cfg, { redis: redisCfg(redis.url) });
  await ready(t, a, redis.url);
  await ready(t, b, redis.url);

  // Load on another key in the background across the kill: never an error, only 200 or 429.
  let loading = true;
  const background: number[] = [];
  const load = (async () => {
    let i = 0;
    while (loading) {
      background.push((await call(i++ % 2 ? pb : pa, ctx({ ip: '203.0.113.50' }))).status);
      // Failing fast resolves in microtasks only: let timers and I/O run between requests.
      await new Promise((r) => setImmediate(r));
    }
  })();

  t.deepEqual(await statuses(pa, 3), [200, 200, 200]);
  t.is(pa.stats.storeFailures, 0);
  await redis.stop();

  // Redis is gone: replica A's in-memory limiter starts its own budget of 5 for this key.
  const during = await statuses(pa, 8);
  t.deepEqual(during, [200, 200, 200, 200, 200, 429, 429, 429]);
  t.true(pa.stats.storeFailures >= 8);
  // Replica B limits separately, in its own memory.
  t.deepEqual(await statuses(pb, 6), [200, 200, 200, 200, 200, 429]);
  const warns = a.log.lines.filter((l) => l.level === 'warn' && l.obj.policy === 'per-ip');
  t.true(warns.length >= 1 && warns.length * 4 <= pa.stats.storeFailures, `store failures are logged, rate-limited (${warns.length} lines for ${pa.stats.storeFailures} failures)`);
  t.is(warns[0]!.msg, 'rate limit store unavailable: limiting per replica in memory');
  t.is(warns[0]!.obj.redis, redis.url);
  t.is(warns[0]!.obj.onStoreFailure, 'failOpen');

  await redis.start();
  // Recovery without recompiling: poll until each replica's calls are decided by Redis again.
  const probe = () => ctx({ ip: '198.51.100.200' });
  await until(t, 'replica A uses Redis again', async () => (await viaStore(pa, probe())).store);
  await until(t, 'replica B uses Redis again', async () => (await viaStore(pb, probe())).store);
  loading = false;
  await load;
  t.true(background.length > 0);
  t.deepEqual([...new Set(background)].filter((s) => s !== 200 && s !== 429), []);
  t.truthy(a.log.lines.find((l) => l.level === 'info' && l.msg === 'rate limit store available again' && l.obj.policy === 'per-ip'));

  // The restarted Redis is empty; the budget is shared between the replicas again.
  const failures = pa.stats.storeFailures + pb.stats.storeFailures;
  const shared: number[] = [];
  for (let i = 0; i < 12; i++) shared.push((await call(i % 2 ? pb : pa, ctx({ ip: '192.0.2.77' }))).status);
  t.deepEqual([count(shared, 200), count(shared, 429)], [5, 7]);
  t.is(pa.stats.storeFailures + pb.stats.storeFailures, failures);
});

test('redis killed, failClosed: 503 CW_RATE_LIMIT_UNAVAILABLE until Redis is back, then limits again', async (t) => {
  const redis = await startRedis(t);
  const r = replica(t);
  const p = compile(r, { limits: [{ requests: 2, per: '1m' }], onStoreFailure: 'failClosed' }, { redis: redisCfg(redis.url) });
  await ready(t, r, redis.url);
  t.deepEqual(await statuses(p, 1), [200]);
  await redis.stop();
  const down = await call(p);
  t.is(down.status, 503);
  t.is(down.code, 'CW_RATE_LIMIT_UNAVAILABLE');
  t.deepEqual(down.headers, {});
  t.deepEqual(await statuses(p, 3), [503, 503, 503]);
  t.is(p.stats.unavailable, 4);
  t.is(p.stats.storeFailures, 4);
  const warn = r.log.lines.find((l) => l.level === 'warn' && l.obj.policy === 'per-ip');
  t.is(warn?.msg, 'rate limit store unavailable: answering 503 CW_RATE_LIMIT_UNAVAILABLE');
  t.truthy(warn?.obj.error);

  await redis.start();
  await until(t, 'Redis answers again', async () => (await call(p, ctx({ ip: '198.51.100.1' }))).status !== 503);
  t.deepEqual(await statuses(p, 3), [200, 200, 429]);
});

test('redis hanging (slower than redis.timeout): failOpen decides in memory, failClosed answers 503, both recover', async (t) => {
  const redis = await startRedis(t);
  const r = replica(t);
  const rc = redisCfg(redis.url, { timeout: '100ms' });
  const open = compile(r, { limits: [{ requests: 2, per: '1m' }] }, { name: 'open', redis: rc });
  const closed = compile(r, { limits: [{ requests: 2, per: '1m' }], onStoreFailure: 'failClosed' }, { name: 'closed', redis: rc });
  await ready(t, r, redis.url);
  redis.pause();
  t.teardown(() => redis.resume());
  t.deepEqual(await statuses(open, 3), [200, 200, 429]);
  t.is(open.stats.storeFailures, 3);
  const c = await call(closed);
  t.is(c.status, 503);
  t.is(c.code, 'CW_RATE_LIMIT_UNAVAILABLE');
  t.regex(r.log.lines.find((l) => l.obj.policy === 'closed')!.obj.error, /timed out/i);
  redis.resume();
  await until(t, 'failOpen policy back on Redis', async () => (await viaStore(open, ctx({ ip: '198.51.100.3' }))).store);
  await until(t, 'failClosed policy back on Redis', async () => (await call(closed, ctx({ ip: '198.51.100.4' }))).status !== 503);
});

test('redis: the client is shared per URL across policies and reloads, and closed with SharedResources', async (t) => {
  const redis = await startRedis(t);
  const r = replica(t);
  const p1 = compile(r, { limits: [{ requests: 1, per: '1m' }] }, { name: 'a', redis: redisCfg(redis.url) });
  const client = clientOf(r, redis.url);
  compile(r, { limits: [{ requests: 1, per: '1m' }] }, { name: 'b', redis: redisCfg(redis.url) });
  compile(r, { limits: [{ requests: 1, per: '1m' }] }, { name: 'a', redis: redisCfg(redis.url) });
  t.is(clientOf(r, redis.url), client);
  await ready(t, r, redis.url);
  t.is((await call(p1)).status, 200);
  await r.shared.close();
  await until(t, 'client closed', () => client.status === 'end');
});

test('redis unreachable from the start, failOpen: in-memory limits apply and the client keeps trying', async (t) => {
  const redis = await startRedis(t);
  await redis.stop();
  const r = replica(t);
  const p = compile(r, { limits: [{ requests: 2, per: '1m' }] }, { redis: redisCfg(redis.url) });
  t.deepEqual(await statuses(p, 3), [200, 200, 429]);
  t.is(p.stats.storeFailures, 3);
  await redis.start();
  await until(t, 'Redis used once it is up', async () => (await viaStore(p, ctx({ ip: '198.51.100.9' }))).store);
});

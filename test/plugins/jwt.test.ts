// The jwt policy against real tokens signed with jose and a real JWKS server (test/helpers/idp.ts).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { CompactSign, importPKCS8, SignJWT } from 'jose';
import type { JwtPolicyConfig } from '../../config/policy-model.ts';
import { compileJwt } from '../../plugins/jwt.ts';
import { newContext, SharedResources, type CompiledPolicy, type PolicyContext, type PolicyDeps, type PolicyLogger, type PolicyResult } from '../../plugins/policy.ts';
import { tempDir } from '../helpers/gateway.ts';
import { makeKey, signWith, startIdp, type TestIdp } from '../helpers/idp.ts';
import { selfSigned } from '../helpers/tls.ts';

interface LogLine {
  level: string;
  msg?: string;
  [k: string]: unknown;
}

function testLog(): PolicyLogger & { lines: LogLine[]; waitFor(pred: (l: LogLine) => boolean): Promise<LogLine> } {
  const lines: LogLine[] = [];
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  const push = (level: string) => (obj: object, msg?: string) => {
    const line = { ...obj, level, msg };
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pred(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  return {
    lines,
    info: push('info'),
    warn: push('warn'),
    error: push('error'),
    waitFor(pred) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

function makeDeps(t: ExecutionContext, shared = new SharedResources()) {
  const log = testLog();
  const deps: PolicyDeps = { consumers: new Map(), shared, log };
  t.teardown(() => shared.close());
  return { deps, log, shared };
}

function request(headers: Record<string, string> = {}, query = ''): PolicyContext {
  return newContext({ method: 'GET', path: '/orders', query, host: 'api.test', headers, clientIp: '127.0.0.1', route: 'orders' });
}

const bearer = (token: string) => request({ authorization: `Bearer ${token}` });

function remoteConfig(idp: TestIdp, extra: Partial<JwtPolicyConfig> = {}): JwtPolicyConfig {
  return { issuer: idp.issuer, audiences: ['api'], algorithms: ['RS256'], jwksUri: idp.jwksUri, ...extra };
}

async function setup(t: ExecutionContext, extra: Partial<JwtPolicyConfig> = {}) {
  const idp = await startIdp(t);
  const { deps, log, shared } = makeDeps(t);
  const policy = await compileJwt('auth', remoteConfig(idp, extra), deps);
  return { idp, deps, log, shared, policy };
}

async function run(policy: CompiledPolicy, ctx: PolicyContext): Promise<PolicyResult> {
  return policy.run(ctx);
}

function assertFails(t: ExecutionContext, v: PolicyResult, code: string, status = 401) {
  t.truthy(v, `expected ${code}`);
  t.is(v!.status, status);
  t.is(v!.code, code);
  if (status === 401) {
    const challenge = v!.headers?.find(([h]) => h === 'www-authenticate')?.[1] ?? '';
    if (code === 'CW_AUTH_MISSING') t.is(challenge, 'Bearer realm="causeway"');
    else t.regex(challenge, /^Bearer realm="causeway", error="invalid_token", error_description="[^"\\]+"$/);
  }
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

test('a valid token sets the identity and forwards claims as headers', async (t) => {
  const { idp, policy } = await setup(t, {
    forward: { 'x-user-id': 'sub', 'X-Scopes': 'scope', 'x-org': 'org.id', 'x-roles': 'roles', 'x-profile': 'profile', 'x-absent': 'nope', 'x-name': 'name' },
  });
  t.deepEqual(policy.identityHeaders, ['x-user-id', 'x-scopes', 'x-org', 'x-roles', 'x-profile', 'x-absent', 'x-name']);
  t.is(policy.phase, 'authn');
  t.is(policy.kind, 'jwt');
  const token = await idp.sign({ scope: 'orders:read orders:write', roles: ['admin', 'ops'], org: { id: 'acme' }, profile: { a: 1 }, name: 'Zoë\r\nX' });
  const ctx = bearer(token);
  t.is(await run(policy, ctx), null);
  t.like(ctx.identity, { kind: 'user', subject: 'user-1', method: 'jwt', issuer: idp.issuer });
  t.deepEqual(ctx.identity!.scopes, ['orders:read', 'orders:write']);
  t.deepEqual(ctx.identity!.roles, ['admin', 'ops']);
  t.is(ctx.identity!.claims.sub, 'user-1');
  t.deepEqual(ctx.upstreamHeaders, [
    ['x-user-id', 'user-1'],
    ['x-scopes', 'orders:read orders:write'],
    ['x-org', 'acme'],
    ['x-roles', 'admin ops'],
    ['x-profile', '{"a":1}'],
    ['x-name', 'Zo%C3%AB%0D%0AX'],
  ]);
});

test('scopes come from an scp list too; the Bearer scheme is case-insensitive', async (t) => {
  const { idp, policy } = await setup(t);
  const ctx = request({ authorization: `bearer   ${await idp.sign({ scp: ['a', 'b'] })}` });
  t.is(await run(policy, ctx), null);
  t.deepEqual(ctx.identity!.scopes, ['a', 'b']);
  t.deepEqual(ctx.identity!.roles, []);
});

test('no token: 401 CW_AUTH_MISSING with a bare Bearer challenge; another scheme counts as none', async (t) => {
  const { policy } = await setup(t);
  const v = await run(policy, request());
  assertFails(t, v, 'CW_AUTH_MISSING');
  assertFails(t, await run(policy, request({ authorization: 'Basic dXNlcjpwYXNz' })), 'CW_AUTH_MISSING');
  assertFails(t, await run(policy, request({ authorization: 'Bearer ' })), 'CW_AUTH_MISSING');
});

test('optional: no token passes unauthenticated, a bad token is still refused', async (t) => {
  const { idp, policy } = await setup(t, { optional: true });
  const ctx = request();
  t.is(await run(policy, ctx), null);
  t.is(ctx.identity, null);
  assertFails(t, await run(policy, bearer('not.a.token')), 'CW_AUTH_MALFORMED');
  assertFails(t, await run(policy, bearer(await idp.sign({ exp: now() - 3600 }))), 'CW_AUTH_EXPIRED');
});

test('alg "none" is refused', async (t) => {
  const { policy } = await setup(t);
  const claims = { iss: 'x', aud: 'api', sub: 'user-1', exp: now() + 60 };
  for (const alg of ['none', 'None', 'NONE']) {
    assertFails(t, await run(policy, bearer(`${b64({ alg, typ: 'JWT' })}.${b64(claims)}.`)), 'CW_AUTH_BAD_ALGORITHM');
    assertFails(t, await run(policy, bearer(`${b64({ alg })}.${b64(claims)}.c2ln`)), 'CW_AUTH_BAD_ALGORITHM');
  }
});

test('HS/RS confusion: an HS256 token keyed with the RSA public key is refused by an RS256 policy', async (t) => {
  const { idp, policy } = await setup(t);
  const pemSecret = new TextEncoder().encode(idp.current.publicPem);
  const jwkSecret = new TextEncoder().encode(JSON.stringify(idp.current.publicJwk));
  for (const secret of [pemSecret, jwkSecret]) {
    const forged = await signWith(secret, { iss: idp.issuer, aud: 'api', sub: 'admin', exp: now() + 60 }, { alg: 'HS256', kid: idp.current.kid });
    const ctx = bearer(forged);
    assertFails(t, await run(policy, ctx), 'CW_AUTH_BAD_ALGORITHM');
    t.is(ctx.identity, null);
  }
});

test('HS/RS confusion: an RS256 token is refused by an HS256 policy', async (t) => {
  const idp = await startIdp(t);
  const { deps } = makeDeps(t);
  const secret = 'a-shared-secret-that-is-long-enough-1234';
  const policy = await compileJwt('hs', { issuer: idp.issuer, audiences: ['api'], algorithms: ['HS256'], secret }, deps);
  assertFails(t, await run(policy, bearer(await idp.sign())), 'CW_AUTH_BAD_ALGORITHM');
  const good = await signWith(new TextEncoder().encode(secret), { iss: idp.issuer, aud: 'api', sub: 'svc', exp: now() + 60 }, { alg: 'HS256' });
  const ctx = bearer(good);
  t.is(await run(policy, ctx), null);
  t.is(ctx.identity!.subject, 'svc');
  const wrong = await signWith(new TextEncoder().encode(`${secret}-other`), { iss: idp.issuer, aud: 'api', sub: 'svc', exp: now() + 60 }, { alg: 'HS256' });
  assertFails(t, await run(policy, bearer(wrong)), 'CW_AUTH_BAD_SIGNATURE');
  const hs512 = await signWith(new TextEncoder().encode(secret), { iss: idp.issuer, aud: 'api', sub: 'svc', exp: now() + 60 }, { alg: 'HS512' });
  assertFails(t, await run(policy, bearer(hs512)), 'CW_AUTH_BAD_ALGORITHM');
  t.is(idp.fetches, 0);
});

test('config: algorithms must match the key source, and there is exactly one key source', async (t) => {
  const { deps } = makeDeps(t);
  const base = { issuer: 'https://idp.test/', audiences: ['api'] };
  const secret = 'a-shared-secret-that-is-long-enough-1234';
  await t.throwsAsync(compileJwt('p', { ...base, algorithms: ['HS256', 'RS256'], secret }, deps), { message: /RS256 need a public key/ });
  await t.throwsAsync(compileJwt('p', { ...base, algorithms: ['HS256'], jwksUri: 'http://127.0.0.1:9/jwks' }, deps), { message: /HS256 need a secret/ });
  await t.throwsAsync(compileJwt('p', { ...base, algorithms: ['RS256'] }, deps), { message: /exactly one key source/ });
  await t.throwsAsync(compileJwt('p', { ...base, algorithms: ['HS256'], secret, jwksUri: 'http://127.0.0.1:9/jwks' }, deps), {
    message: /exactly one key source.*jwksUri, secret/,
  });
});

test('an unknown kid is refused with CW_AUTH_UNKNOWN_KEY; a bad signature with CW_AUTH_BAD_SIGNATURE', async (t) => {
  const { idp, policy } = await setup(t);
  const stranger = await makeKey('RS256', 'stranger');
  assertFails(t, await run(policy, bearer(await idp.sign({}, { key: stranger }))), 'CW_AUTH_UNKNOWN_KEY');
  // a key of its own, but the kid of a published key
  const forged = await idp.sign({}, { key: stranger, header: { kid: idp.current.kid } });
  assertFails(t, await run(policy, bearer(forged)), 'CW_AUTH_BAD_SIGNATURE');
  // a tampered payload
  const [h, , s] = (await idp.sign()).split('.');
  assertFails(t, await run(policy, bearer(`${h}.${b64({ iss: idp.issuer, aud: 'api', sub: 'admin', exp: now() + 60 })}.${s}`)), 'CW_AUTH_BAD_SIGNATURE');
});

test('a token without kid is tried against every key of its algorithm', async (t) => {
  const { idp, policy } = await setup(t);
  const old = idp.current;
  await idp.rotate({ keep: true });
  const noKid = await idp.sign({}, { key: old, header: { kid: undefined } });
  t.is(await run(policy, bearer(noKid)), null);
  const stranger = await makeKey('RS256');
  assertFails(t, await run(policy, bearer(await idp.sign({}, { key: stranger, header: { kid: undefined } }))), 'CW_AUTH_BAD_SIGNATURE');
});

test('a kid of a key of another algorithm is CW_AUTH_BAD_ALGORITHM', async (t) => {
  const { idp, policy } = await setup(t, { algorithms: ['RS256', 'ES256'] });
  const ec = await makeKey('ES256');
  const token = await idp.sign({}, { key: ec, header: { kid: idp.current.kid } });
  assertFails(t, await run(policy, bearer(token)), 'CW_AUTH_BAD_ALGORITHM');
});

test('expiry with the clock skew: default 30s tolerance, configurable', async (t) => {
  const { idp, policy } = await setup(t);
  assertFails(t, await run(policy, bearer(await idp.sign({ exp: now() - 120 }))), 'CW_AUTH_EXPIRED');
  t.is(await run(policy, bearer(await idp.sign({ exp: now() - 10 }))), null);
  const { deps } = makeDeps(t);
  const strict = await compileJwt('strict', remoteConfig(idp, { clockSkew: '1s' }), deps);
  assertFails(t, await run(strict, bearer(await idp.sign({ exp: now() - 10 }))), 'CW_AUTH_EXPIRED');
  const lenient = await compileJwt('lenient', remoteConfig(idp, { clockSkew: '5m' }), deps);
  t.is(await run(lenient, bearer(await idp.sign({ exp: now() - 120 }))), null);
});

test('nbf in the future: CW_AUTH_NOT_YET_VALID beyond the skew', async (t) => {
  const { idp, policy } = await setup(t);
  assertFails(t, await run(policy, bearer(await idp.sign({ nbf: now() + 120 }))), 'CW_AUTH_NOT_YET_VALID');
  t.is(await run(policy, bearer(await idp.sign({ nbf: now() + 10 }))), null);
});

test('exp and sub are required', async (t) => {
  const { idp, policy } = await setup(t);
  const noExp = await run(policy, bearer(await idp.sign({ exp: undefined })));
  assertFails(t, noExp, 'CW_AUTH_MISSING_CLAIM');
  t.regex(noExp!.message!, /"exp"/);
  const noSub = await run(policy, bearer(await idp.sign({ sub: undefined })));
  assertFails(t, noSub, 'CW_AUTH_MISSING_CLAIM');
  t.regex(noSub!.message!, /"sub"/);
  assertFails(t, await run(policy, bearer(await idp.sign({ exp: 'tomorrow' }))), 'CW_AUTH_MALFORMED');
});

test('issuer: wrong is refused, any of a list is accepted', async (t) => {
  const { idp, policy } = await setup(t);
  assertFails(t, await run(policy, bearer(await idp.sign({ iss: 'https://evil.test/' }))), 'CW_AUTH_BAD_ISSUER');
  assertFails(t, await run(policy, bearer(await idp.sign({ iss: undefined }))), 'CW_AUTH_BAD_ISSUER');
  const { deps } = makeDeps(t);
  const multi = await compileJwt('multi', remoteConfig(idp, { issuer: ['https://other.test/', idp.issuer] }), deps);
  t.is(await run(multi, bearer(await idp.sign())), null);
});

test('audience: wrong is refused, any one of the list matches', async (t) => {
  const { idp, policy } = await setup(t, { audiences: ['api', 'orders'] });
  assertFails(t, await run(policy, bearer(await idp.sign({ aud: 'billing' }))), 'CW_AUTH_BAD_AUDIENCE');
  assertFails(t, await run(policy, bearer(await idp.sign({ aud: undefined }))), 'CW_AUTH_BAD_AUDIENCE');
  t.is(await run(policy, bearer(await idp.sign({ aud: ['billing', 'orders'] }))), null);
});

test('required claims, dotted paths allowed; the message names the claim', async (t) => {
  const { idp, policy } = await setup(t, { requiredClaims: ['tenant', 'org.id'] });
  const v = await run(policy, bearer(await idp.sign({ org: { id: 'acme' } })));
  assertFails(t, v, 'CW_AUTH_MISSING_CLAIM');
  t.regex(v!.message!, /"tenant"/);
  t.is(v!.headers![0]![1], `Bearer realm="causeway", error="invalid_token", error_description="the token lacks the required claim 'tenant'"`);
  const w = await run(policy, bearer(await idp.sign({ tenant: 't1', org: { name: 'x' } })));
  assertFails(t, w, 'CW_AUTH_MISSING_CLAIM');
  t.regex(w!.message!, /"org\.id"/);
  t.is(await run(policy, bearer(await idp.sign({ tenant: 't1', org: { id: 'acme' } }))), null);
});

test('a token above maxTokenBytes is refused before parsing', async (t) => {
  const { idp, policy } = await setup(t);
  const huge = await idp.sign({ blob: 'x'.repeat(9000) });
  assertFails(t, await run(policy, bearer(huge)), 'CW_AUTH_TOKEN_TOO_LARGE');
  assertFails(t, await run(policy, bearer('A'.repeat(10_000))), 'CW_AUTH_TOKEN_TOO_LARGE');
  const { deps } = makeDeps(t);
  const small = await compileJwt('small', remoteConfig(idp, { maxTokenBytes: 256 }), deps);
  assertFails(t, await run(small, bearer(await idp.sign({ pad: 'y'.repeat(300) }))), 'CW_AUTH_TOKEN_TOO_LARGE');
});

test('malformed tokens', async (t) => {
  const { idp, policy } = await setup(t);
  const good = await idp.sign();
  const [h, p, s] = good.split('.');
  const cases = [
    'abc',
    'a.b',
    `${h}.${p}.${s}.x`,
    `${h}.${p}.${s}.x.y`,
    `${b64('not an object')}.${p}.${s}`,
    `${Buffer.from('{not json').toString('base64url')}.${p}.${s}`,
    `${h}.${p}.${s}!`,
    `${h}..${s}`,
    `${b64({ alg: 'RS256', kid: 7 })}.${p}.${s}`,
    `${b64({ kid: 'x' })}.${p}.${s}`,
    `${h}.${p}.`,
  ];
  for (const token of cases) {
    const v = await run(policy, bearer(token));
    assertFails(t, v, 'CW_AUTH_MALFORMED');
    t.false(v!.message!.includes(token), 'the message never carries the token');
    t.false(v!.headers![0]![1].includes(token));
  }
  // correctly signed, but the payload is not a claims object
  const notClaims = await new CompactSign(new TextEncoder().encode('[1,2]')).setProtectedHeader({ alg: 'RS256', kid: idp.current.kid }).sign(idp.current.privateKey);
  assertFails(t, await run(policy, bearer(notClaims)), 'CW_AUTH_MALFORMED');
});

test('messages never include the token or key material', async (t) => {
  const { idp, policy } = await setup(t, { requiredClaims: ['tenant'] });
  const token = await idp.sign({ exp: now() - 3600 });
  for (const tok of [token, await idp.sign(), await idp.sign({ iss: 'x' })]) {
    const v = await run(policy, bearer(tok));
    const text = JSON.stringify(v);
    t.false(text.includes(tok.split('.')[1]!));
    t.false(text.includes(String(idp.current.publicJwk.n).slice(0, 20)));
  }
});

test('token from a cookie or a query parameter', async (t) => {
  const idp = await startIdp(t);
  const { deps } = makeDeps(t);
  const cookie = await compileJwt('c', remoteConfig(idp, { from: { cookie: 'session' } }), deps);
  const query = await compileJwt('q', remoteConfig(idp, { from: { query: 'access_token' } }), deps);
  const header = await compileJwt('h', remoteConfig(idp, { from: { header: 'X-Token' } }), deps);
  const token = await idp.sign();
  const c1 = request({ cookie: `theme=dark; session=${token}; other=1` });
  t.is(await run(cookie, c1), null);
  t.is(c1.identity!.subject, 'user-1');
  t.is(await run(cookie, request({ cookie: `session="${token}"` })), null);
  assertFails(t, await run(cookie, request({ cookie: 'xsession=1; sessionx=2' })), 'CW_AUTH_MISSING');
  assertFails(t, await run(cookie, request({ authorization: `Bearer ${token}` })), 'CW_AUTH_MISSING');
  const q1 = request({}, `page=2&access_token=${token}`);
  t.is(await run(query, q1), null);
  t.is(q1.identity!.subject, 'user-1');
  assertFails(t, await run(query, request({}, 'access_token=')), 'CW_AUTH_MISSING');
  t.is(await run(header, request({ 'x-token': token })), null);
  assertFails(t, await run(header, request({ 'x-token': 'garbage' })), 'CW_AUTH_MALFORMED');
});

test('the JWKS is fetched once for concurrent requests and kept across reloads', async (t) => {
  const idp = await startIdp(t);
  const { deps } = makeDeps(t);
  const policy = await compileJwt('auth', remoteConfig(idp), deps);
  const token = await idp.sign();
  const results = await Promise.all(Array.from({ length: 20 }, () => run(policy, bearer(token))));
  t.true(results.every((r) => r === null));
  t.is(idp.fetches, 1);
  // a reload compiles the policy again with the same shared resources: no new fetch
  const again = await compileJwt('auth', remoteConfig(idp), deps);
  t.is(await run(again, bearer(token)), null);
  t.is(idp.fetches, 1);
});

test('JWKS endpoint down: the cached keys keep working and a warning is logged', async (t) => {
  const { idp, policy, log } = await setup(t, { jwks: { refreshInterval: 0 } });
  const token = await idp.sign();
  t.is(await run(policy, bearer(token)), null);
  await idp.stop();
  // Each request finds the keys due for a refresh (refreshInterval 0) and is served from the
  // cache meanwhile. A refresh started before the stop may still succeed, so keep sending
  // (bounded) until one fails against the stopped IdP and logs the stale warning.
  const isStale = (l: LogLine) => l.level === 'warn' && l.stale === true;
  for (let i = 0; i < 100 && !log.lines.some(isStale); i++) {
    t.is(await run(policy, bearer(token)), null);
    await new Promise((r) => setTimeout(r, 10));
  }
  const warn = await log.waitFor(isStale);
  t.is(warn.policy, 'auth');
  t.is(warn.jwksUri, idp.jwksUri);
  t.is(await run(policy, bearer(token)), null);
  idp.mode = 'error';
  await idp.start();
  t.is(await run(policy, bearer(await idp.sign())), null);
});

test('key rotation: a new kid is picked up by a refetch; unknown kids refetch at most once per cooldown', async (t) => {
  const { idp, policy } = await setup(t);
  t.is(await run(policy, bearer(await idp.sign())), null);
  t.is(idp.fetches, 1);
  await idp.rotate();
  const ctx = bearer(await idp.sign({ sub: 'after-rotation' }));
  t.is(await run(policy, ctx), null);
  t.is(ctx.identity!.subject, 'after-rotation');
  t.is(idp.fetches, 2);
  // a burst of unknown kids inside the cooldown (default 30s): no further fetch
  const stranger = await makeKey('RS256');
  for (let i = 0; i < 5; i++) {
    assertFails(t, await run(policy, bearer(await idp.sign({}, { key: stranger, header: { kid: `unknown-${i}` } }))), 'CW_AUTH_UNKNOWN_KEY');
  }
  t.is(idp.fetches, 2);
  // the old key is gone from the provider and from the cache
  t.is(await run(policy, bearer(await idp.sign())), null);
});

test('verified-token cache: a repeated token gets the same identity and headers; a key leaving the set ends its entry', async (t) => {
  const { idp, policy } = await setup(t, { forward: { 'x-user-id': 'sub', 'x-org': 'org.id' } });
  const token = await idp.sign({ org: { id: 'acme' } });
  for (let i = 0; i < 3; i++) {
    const ctx = bearer(token);
    t.is(await run(policy, ctx), null);
    t.like(ctx.identity, { kind: 'user', subject: 'user-1', method: 'jwt' });
    t.deepEqual(ctx.upstreamHeaders, [
      ['x-user-id', 'user-1'],
      ['x-org', 'acme'],
    ]);
  }
  // A tampered copy of a cached token is a different token: verified, and refused.
  const [h, p, sig] = token.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: 'admin' })).toString('base64url')}.${sig}`;
  assertFails(t, await run(policy, bearer(forged)), 'CW_AUTH_BAD_SIGNATURE');
  // The IdP rotates its key away; a token with the new kid makes the gateway refetch.
  await idp.rotate();
  t.is(await run(policy, bearer(await idp.sign({ sub: 'new' }))), null);
  t.is(idp.fetches, 2);
  // The old token was cached, but its key is gone: refused like any token of an unknown key.
  assertFails(t, await run(policy, bearer(token)), 'CW_AUTH_UNKNOWN_KEY');
});

test('verified-token cache: exp is checked on every use of a cached token; verifiedCache 0 turns the cache off', async (t) => {
  const { idp, policy } = await setup(t, { clockSkew: '0s' });
  // Valid for 1 to 2 more seconds (exp has a one-second resolution).
  const exp = now() + 2;
  const token = await idp.sign({ exp });
  t.is(await run(policy, bearer(token)), null);
  // Wait (on the clock, not a fixed time) until the token has expired, then use it again.
  while (Date.now() / 1000 <= exp) await new Promise((r) => setTimeout(r, 50));
  assertFails(t, await run(policy, bearer(token)), 'CW_AUTH_EXPIRED');

  const off = await compileJwt('off', remoteConfig(idp, { verifiedCache: 0 }), makeDeps(t).deps);
  const fresh = await idp.sign();
  t.is(await run(off, bearer(fresh)), null);
  t.is(await run(off, bearer(fresh)), null);
});

test('with no cooldown every unknown kid refetches', async (t) => {
  const { idp, policy } = await setup(t, { jwks: { cooldown: 0 } });
  await idp.waitForFetches(1); // the prefetch made at compile
  t.is(await run(policy, bearer(await idp.sign())), null);
  t.is(idp.fetches, 1);
  const stranger = await makeKey('RS256');
  for (let i = 0; i < 3; i++) {
    assertFails(t, await run(policy, bearer(await idp.sign({}, { key: stranger }))), 'CW_AUTH_UNKNOWN_KEY');
  }
  t.is(idp.fetches, 4);
});

test('an IdP that never answers: 503 CW_AUTH_KEYS_UNAVAILABLE once the fetch timeout passes', async (t) => {
  const idp = await startIdp(t);
  idp.mode = 'hang';
  const { deps, log } = makeDeps(t);
  const policy = await compileJwt('auth', remoteConfig(idp, { jwks: { timeout: '200ms' } }), deps);
  const v = await run(policy, bearer(await idp.sign()));
  assertFails(t, v, 'CW_AUTH_KEYS_UNAVAILABLE', 503);
  t.is(v!.headers, undefined);
  const warn = await log.waitFor((l) => l.level === 'warn');
  t.regex(String(warn.err), /timed out after 200ms/);
  t.is(warn.stale, false);
});

test('IdP down at first use: 503, then keys are fetched once it is back', async (t) => {
  const idp = await startIdp(t);
  const token = await idp.sign();
  await idp.stop();
  const { deps } = makeDeps(t);
  const policy = await compileJwt('auth', remoteConfig(idp, { jwks: { cooldown: 0 } }), deps);
  assertFails(t, await run(policy, bearer(token)), 'CW_AUTH_KEYS_UNAVAILABLE', 503);
  assertFails(t, await run(policy, bearer(token)), 'CW_AUTH_KEYS_UNAVAILABLE', 503);
  await idp.start();
  t.is(await run(policy, bearer(token)), null);
});

test('jku, x5u, jwk and x5c token headers are never followed or trusted', async (t) => {
  const { idp, policy } = await setup(t);
  const attacker = await makeKey('RS256', 'attacker');
  const headers = {
    jku: `${idp.url}/attacker/jwks.json`,
    x5u: `${idp.url}/attacker/cert.pem`,
    jwk: attacker.publicJwk,
    x5c: ['MIIB'],
  };
  assertFails(t, await run(policy, bearer(await idp.sign({ sub: 'admin' }, { key: attacker, header: headers }))), 'CW_AUTH_UNKNOWN_KEY');
  assertFails(t, await run(policy, bearer(await idp.sign({ sub: 'admin' }, { key: attacker, header: { ...headers, kid: idp.current.kid } }))), 'CW_AUTH_BAD_SIGNATURE');
  // a genuine token with those headers still verifies against the configured JWKS
  const { jku, x5u } = headers;
  t.is(await run(policy, bearer(await idp.sign({}, { header: { jku, x5u } }))), null);
  t.deepEqual(idp.otherRequests, []);
});

test('keys from a local JWKS file', async (t) => {
  const dir = await tempDir(t);
  const rsa = await makeKey('RS256', 'file-rsa');
  const ec = await makeKey('ES256', 'file-ec');
  const file = join(dir, 'jwks.json');
  await writeFile(file, JSON.stringify({ keys: [rsa.publicJwk, ec.publicJwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'sym' }] }));
  const { deps } = makeDeps(t);
  const policy = await compileJwt('file', { issuer: 'https://idp.test/', audiences: ['api'], algorithms: ['RS256', 'ES256'], jwksFile: file }, deps);
  const claims = { iss: 'https://idp.test/', aud: 'api', sub: 'u', exp: now() + 60 };
  t.is(await run(policy, bearer(await signWith(rsa, claims, { alg: 'RS256', kid: 'file-rsa' }))), null);
  t.is(await run(policy, bearer(await signWith(ec, claims, { alg: 'ES256', kid: 'file-ec' }))), null);
  const other = await makeKey('RS256', 'other');
  assertFails(t, await run(policy, bearer(await signWith(other, claims, { alg: 'RS256', kid: 'other' }))), 'CW_AUTH_UNKNOWN_KEY');
  // the oct key in the file is never used as an HMAC secret
  const hs = await signWith(new TextEncoder().encode('secret'), claims, { alg: 'HS256', kid: 'sym' });
  assertFails(t, await run(policy, bearer(hs)), 'CW_AUTH_BAD_ALGORITHM');
  await writeFile(join(dir, 'empty.json'), JSON.stringify({ keys: [] }));
  await t.throwsAsync(compileJwt('e', { issuer: 'x', audiences: ['api'], algorithms: ['RS256'], jwksFile: join(dir, 'empty.json') }, deps), { message: /no usable signing key/ });
});

test('keys from a PEM public key or certificate', async (t) => {
  const dir = await tempDir(t);
  const key = await makeKey('RS256');
  await writeFile(join(dir, 'pub.pem'), key.publicPem);
  const { deps } = makeDeps(t);
  const cfg = { issuer: 'https://idp.test/', audiences: ['api'], algorithms: ['RS256' as const], publicKeyFile: join(dir, 'pub.pem') };
  const policy = await compileJwt('pem', cfg, deps);
  const claims = { iss: 'https://idp.test/', aud: 'api', sub: 'u', exp: now() + 60 };
  t.is(await run(policy, bearer(await signWith(key, claims, { alg: 'RS256', kid: 'any-kid' }))), null);
  t.is(await run(policy, bearer(await signWith(key, claims, { alg: 'RS256' }))), null);
  const other = await makeKey('RS256');
  assertFails(t, await run(policy, bearer(await signWith(other, claims, { alg: 'RS256' }))), 'CW_AUTH_BAD_SIGNATURE');

  const cert = await selfSigned(['idp.test']);
  await writeFile(join(dir, 'cert.pem'), cert.cert);
  await writeFile(join(dir, 'private.pem'), cert.key);
  const certPolicy = await compileJwt('cert', { ...cfg, algorithms: ['ES256'], publicKeyFile: join(dir, 'cert.pem') }, deps);
  const signed = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(await importPKCS8(cert.key, 'ES256'));
  t.is(await run(certPolicy, bearer(signed)), null);
  await t.throwsAsync(compileJwt('priv', { ...cfg, publicKeyFile: join(dir, 'private.pem') }, deps), { message: /holds a private key/ });
});

test('ES256 and EdDSA keys from a JWKS', async (t) => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const idp = await startIdp(t, { alg });
    const { deps } = makeDeps(t);
    const policy = await compileJwt('auth', remoteConfig(idp, { algorithms: [alg] }), deps);
    t.is(await run(policy, bearer(await idp.sign())), null);
    assertFails(t, await run(policy, bearer(await idp.sign({}, { key: await makeKey('RS256', idp.current.kid) }))), 'CW_AUTH_BAD_ALGORITHM');
  }
});

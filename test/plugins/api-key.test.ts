// API-key consumers and the apiKey policy.
import { createHash } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import type { ApiKeyPolicyConfig, ConsumerConfig } from '../../config/policy-model.ts';
import { compileApiKey, compileConsumers } from '../../plugins/api-key.ts';
import { newContext, SharedResources, type PolicyContext, type PolicyDeps, type PolicyResult } from '../../plugins/policy.ts';

const KEYS = {
  alice: 'alice-key-0123456789abcdef',
  aliceOld: 'alice-old-key-0123456789ab',
  bob: 'bob-key-0123456789abcdef+/=',
  carol: 'carol-key-0123456789abcdef',
};

const CONSUMERS: Record<string, ConsumerConfig> = {
  alice: { keys: [KEYS.alice, KEYS.aliceOld], scopes: ['orders:read'], roles: ['partner'], metadata: { tier: 'gold' } },
  bob: { keys: [KEYS.bob] },
  carol: { keys: [KEYS.carol], scopes: ['admin'] },
};

function deps(t: ExecutionContext, consumers = CONSUMERS): PolicyDeps {
  const shared = new SharedResources();
  t.teardown(() => shared.close());
  const noop = () => {};
  return { consumers: compileConsumers(consumers), shared, log: { info: noop, warn: noop, error: noop } };
}

function request(headers: Record<string, string> = {}, query = ''): PolicyContext {
  return newContext({ method: 'GET', path: '/orders', query, host: 'api.test', headers, clientIp: '127.0.0.1', route: 'orders' });
}

function compile(t: ExecutionContext, cfg: ApiKeyPolicyConfig = {}) {
  return compileApiKey('keys', cfg, deps(t));
}

const run = async (p: ReturnType<typeof compileApiKey>, ctx: PolicyContext): Promise<PolicyResult> => p.run(ctx);

test('compileConsumers keeps only SHA-256 hashes of the keys', (t) => {
  const compiled = compileConsumers(CONSUMERS);
  const alice = compiled.get('alice')!;
  t.deepEqual(
    alice.keyHashes.map((h) => h.toString('hex')),
    [KEYS.alice, KEYS.aliceOld].map((k) => createHash('sha256').update(k).digest('hex')),
  );
  t.deepEqual(alice.scopes, ['orders:read']);
  t.deepEqual(alice.roles, ['partner']);
  t.deepEqual(alice.metadata, { tier: 'gold' });
  t.deepEqual(compiled.get('bob')!.scopes, []);
  t.false(JSON.stringify([...compiled.values()]).includes(KEYS.alice));
  t.is(compileConsumers(undefined).size, 0);
});

test('the same key for two consumers is a config error', (t) => {
  t.throws(() => compileConsumers({ a: { keys: [KEYS.alice] }, b: { keys: [KEYS.alice] } }), { message: /consumers "a" and "b" have the same API key/ });
});

test('a right key sets the consumer identity and forwards the consumer header', async (t) => {
  const policy = compile(t, { forward: { consumer: 'X-Consumer' } });
  t.is(policy.kind, 'apiKey');
  t.is(policy.phase, 'authn');
  t.deepEqual(policy.identityHeaders, ['x-consumer']);
  for (const key of [KEYS.alice, KEYS.aliceOld]) {
    const ctx = request({ 'x-api-key': key });
    t.is(await run(policy, ctx), null);
    t.deepEqual(ctx.identity, {
      kind: 'consumer',
      subject: 'alice',
      consumer: 'alice',
      method: 'api-key',
      scopes: ['orders:read'],
      roles: ['partner'],
      claims: { tier: 'gold' },
    });
    t.deepEqual(ctx.upstreamHeaders, [['x-consumer', 'alice']]);
  }
  const bob = request({ 'x-api-key': KEYS.bob });
  t.is(await run(policy, bob), null);
  t.is(bob.identity!.consumer, 'bob');
});

test('a wrong key: 401 CW_AUTH_BAD_KEY', async (t) => {
  const policy = compile(t);
  for (const key of ['nope', `${KEYS.alice}x`, KEYS.alice.slice(0, -1), KEYS.alice.toUpperCase()]) {
    const ctx = request({ 'x-api-key': key });
    const v = await run(policy, ctx);
    t.is(v?.status, 401);
    t.is(v?.code, 'CW_AUTH_BAD_KEY');
    t.regex(v!.headers![0]![1], /^ApiKey realm="causeway", error="invalid_key"/);
    t.false(JSON.stringify(v).includes(key));
    t.is(ctx.identity, null);
    t.is(ctx.upstreamHeaders, null);
  }
});

test('a missing key: 401 CW_AUTH_MISSING with an ApiKey challenge', async (t) => {
  const policy = compile(t);
  const cases: Array<Record<string, string>> = [{}, { 'x-api-key': '' }, { authorization: `Bearer ${KEYS.alice}` }];
  for (const headers of cases) {
    const v = await run(policy, request(headers));
    t.is(v?.status, 401);
    t.is(v?.code, 'CW_AUTH_MISSING');
    t.deepEqual(v!.headers, [['www-authenticate', 'ApiKey realm="causeway"']]);
  }
});

test('optional: no key passes unauthenticated, a wrong key is still refused', async (t) => {
  const policy = compile(t, { optional: true });
  const ctx = request();
  t.is(await run(policy, ctx), null);
  t.is(ctx.identity, null);
  t.is((await run(policy, request({ 'x-api-key': 'wrong-key-000000000' })))?.code, 'CW_AUTH_BAD_KEY');
  const ok = request({ 'x-api-key': KEYS.carol });
  t.is(await run(policy, ok), null);
  t.is(ok.identity!.subject, 'carol');
});

test('consumers restricts the policy to the named consumers', async (t) => {
  const policy = compile(t, { consumers: ['alice', 'carol'] });
  t.is(await run(policy, request({ 'x-api-key': KEYS.alice })), null);
  t.is(await run(policy, request({ 'x-api-key': KEYS.carol })), null);
  t.is((await run(policy, request({ 'x-api-key': KEYS.bob })))?.code, 'CW_AUTH_BAD_KEY');
  t.throws(() => compile(t, { consumers: ['dave'] }), { message: /consumer "dave", which is not in consumers/ });
});

test('with no consumers every key is wrong', async (t) => {
  const policy = compileApiKey('keys', {}, deps(t, {}));
  t.is((await run(policy, request({ 'x-api-key': KEYS.alice })))?.code, 'CW_AUTH_BAD_KEY');
  t.deepEqual(policy.identityHeaders, []);
});

test('the key from another header, the Authorization bearer, a cookie or the query', async (t) => {
  const header = compile(t, { from: { header: 'X-Partner-Key' } });
  t.is(await run(header, request({ 'x-partner-key': KEYS.bob })), null);
  t.is((await run(header, request({ 'x-api-key': KEYS.bob })))?.code, 'CW_AUTH_MISSING');

  const auth = compile(t, { from: { header: 'Authorization' } });
  t.is(await run(auth, request({ authorization: `Bearer ${KEYS.bob}` })), null);

  const cookie = compile(t, { from: { cookie: 'apikey' } });
  const c = request({ cookie: `a=1; apikey=${encodeURIComponent(KEYS.bob)}` });
  t.is(await run(cookie, c), null);
  t.is(c.identity!.subject, 'bob');

  const query = compile(t, { from: { query: 'key' } });
  const q = request({}, `x=1&key=${encodeURIComponent(KEYS.bob)}`);
  t.is(await run(query, q), null);
  t.is(q.identity!.subject, 'bob');
  t.is((await run(query, request({}, 'key=nope')))?.code, 'CW_AUTH_BAD_KEY');
});

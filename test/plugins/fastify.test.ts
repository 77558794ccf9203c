import test from 'ava';
import Fastify from 'fastify';
import { SignJWT } from 'jose';
import { causewayPolicies } from '../../plugins/fastify.ts';
import { SharedResources } from '../../plugins/policy.ts';
import { compilePolicySet } from '../../plugins/registry.ts';

const SECRET = 'a-service-secret-that-is-long-enough-0123';

test('the Fastify plugin runs the same compiled policies in a service: 401, identity, headers, 429', async (t) => {
  const shared = new SharedResources();
  t.teardown(() => shared.close());
  const log = { info() {}, warn() {}, error() {} };
  const set = await compilePolicySet(
    {
      policies: {
        auth: { jwt: { issuer: 'gw', audiences: ['orders'], algorithms: ['HS256'], secret: SECRET } },
        limit: { rateLimit: { limits: [{ requests: 2, per: '1m' }], key: ['subject'] } },
      },
    },
    { shared, log },
  );
  const chain = set.chainFor({ name: 'orders', policies: ['auth', 'limit'] })!;
  const app = Fastify();
  t.teardown(() => app.close());
  await app.register(causewayPolicies, { chain, route: 'orders' });
  app.get('/orders', async (request) => ({ subject: request.causewayIdentity?.subject, scopes: request.causewayIdentity?.scopes }));

  const missing = await app.inject({ method: 'GET', url: '/orders' });
  t.is(missing.statusCode, 401);
  t.is(missing.json().error.code, 'CW_AUTH_MISSING');
  t.regex(String(missing.headers['www-authenticate']), /^Bearer realm="causeway"/);

  const token = await new SignJWT({ scope: 'orders:read' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setIssuer('gw')
    .setAudience('orders')
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));
  const headers = { authorization: `Bearer ${token}` };
  const ok = await app.inject({ method: 'GET', url: '/orders', headers });
  t.is(ok.statusCode, 200);
  t.deepEqual(ok.json(), { subject: 'alice', scopes: ['orders:read'] });
  t.regex(String(ok.headers['ratelimit-policy']), /q=2;w=60/);
  t.is((await app.inject({ method: 'GET', url: '/orders', headers })).statusCode, 200);
  const limited = await app.inject({ method: 'GET', url: '/orders', headers });
  t.is(limited.statusCode, 429);
  t.is(limited.json().error.code, 'CW_RATE_LIMITED');
  t.truthy(limited.headers['retry-after']);
});

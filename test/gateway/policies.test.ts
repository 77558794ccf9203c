// The policy engine inside the gateway: real tokens, real upstreams, real HTTP.
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import WebSocket from 'ws';
import { startGateway, tempDir } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream } from '../helpers/upstream.ts';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const key = new TextEncoder().encode(SECRET);

function token(claims: Record<string, unknown> = {}, opts: { exp?: string; iss?: string; aud?: string } = {}) {
  return new SignJWT({ scope: 'orders:read', ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('user-42')
    .setIssuer(opts.iss ?? 'https://idp.test/')
    .setAudience(opts.aud ?? 'shop-api')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(key);
}

const jwtPolicy = {
  jwt: {
    issuer: 'https://idp.test/',
    audiences: ['shop-api'],
    algorithms: ['HS256'],
    secret: SECRET,
    forward: { 'x-user-id': 'sub', 'x-scopes': 'scope' },
  },
};

test('JWT: 401 with WWW-Authenticate without a token, identity headers upstream with one; forged identity headers are stripped everywhere', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: { auth: jwtPolicy },
    routes: [
      { name: 'orders', upstream: 'svc', match: { prefix: '/orders' }, policies: ['auth'] },
      { name: 'open', upstream: 'svc', match: { prefix: '/open' } },
    ],
  });
  const missing = await rawRequest({ port: gw.port, path: '/orders' });
  t.is(missing.status, 401);
  t.is(missing.json().error.code, 'CW_AUTH_MISSING');
  t.regex(String(missing.headers['www-authenticate']), /^Bearer realm="causeway"/);
  t.is(up.seen.length, 0);

  const expired = await rawRequest({ port: gw.port, path: '/orders', headers: { authorization: `Bearer ${await token({}, { exp: '-10m' })}` } });
  t.is(expired.status, 401);
  t.is(expired.json().error.code, 'CW_AUTH_EXPIRED');

  const ok = await rawRequest({
    port: gw.port,
    path: '/orders/1',
    headers: { authorization: `Bearer ${await token()}`, 'x-user-id': 'admin', 'X-Scopes': 'everything' },
  });
  t.is(ok.status, 200);
  let seen = up.seen.at(-1)!.headers;
  t.is(seen['x-user-id'], 'user-42');
  t.is(seen['x-scopes'], 'orders:read');

  const open = await rawRequest({ port: gw.port, path: '/open', headers: { 'x-user-id': 'admin', 'x-scopes': 'everything' } });
  t.is(open.status, 200);
  seen = up.seen.at(-1)!.headers;
  t.is(seen['x-user-id'], undefined, 'a forged identity header never reaches an upstream');
  t.is(seen['x-scopes'], undefined);
});

test('default policies, authz and opting out', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      auth: jwtPolicy,
      admins: { authz: { allow: [{ scopes: ['admin'] }] } },
    },
    defaultPolicies: ['auth'],
    routes: [
      { name: 'admin', upstream: 'svc', match: { prefix: '/admin' }, policies: ['admins'] },
      { name: 'health', upstream: 'svc', match: { path: '/health' }, useDefaultPolicies: false },
      { name: 'rest', upstream: 'svc' },
    ],
  });
  t.is((await rawRequest({ port: gw.port, path: '/health' })).status, 200);
  t.is((await rawRequest({ port: gw.port, path: '/anything' })).status, 401);
  const user = { authorization: `Bearer ${await token()}` };
  t.is((await rawRequest({ port: gw.port, path: '/anything', headers: user })).status, 200);
  const forbidden = await rawRequest({ port: gw.port, path: '/admin', headers: user });
  t.is(forbidden.status, 403);
  t.is(forbidden.json().error.code, 'CW_AUTHZ_FORBIDDEN');
  const admin = { authorization: `Bearer ${await token({ scope: 'admin orders:read' })}` };
  t.is((await rawRequest({ port: gw.port, path: '/admin', headers: admin })).status, 200);
});

test('API keys, rate limits with RateLimit headers, CORS preflight at the gateway', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    consumers: { acme: { keys: ['acme-key-0123456789abcdef'] } },
    policies: {
      keys: { apiKey: { forward: { consumer: 'x-consumer' } } },
      limit: { rateLimit: { limits: [{ requests: 3, per: '1m' }], key: ['consumer'] } },
      cors: { cors: { origins: ['https://app.example.com'] } },
    },
    routes: [{ name: 'api', upstream: 'svc', policies: ['cors', 'keys', 'limit'] }],
  });
  const preflight = await rawRequest({
    port: gw.port,
    path: '/items',
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
  });
  t.is(preflight.status, 204);
  t.is(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
  t.is(up.seen.length, 0, 'the preflight is answered at the gateway');

  const wrong = await rawRequest({ port: gw.port, path: '/items', headers: { 'x-api-key': 'not-the-right-key-000000' } });
  t.is(wrong.status, 401);
  t.is(wrong.json().error.code, 'CW_AUTH_BAD_KEY');

  const headers = { 'x-api-key': 'acme-key-0123456789abcdef', origin: 'https://app.example.com' };
  const statuses: number[] = [];
  let last;
  for (let i = 0; i < 5; i++) {
    last = await rawRequest({ port: gw.port, path: '/items', headers });
    statuses.push(last.status);
    if (i === 0) {
      t.regex(String(last.headers['ratelimit-policy']), /q=3;w=60/);
      t.regex(String(last.headers.ratelimit), /r=2/);
      t.is(last.headers['access-control-allow-origin'], 'https://app.example.com');
      t.is(up.seen.at(-1)!.headers['x-consumer'], 'acme');
    }
  }
  t.deepEqual(statuses, [200, 200, 200, 429, 429]);
  t.is(last!.json().error.code, 'CW_RATE_LIMITED');
  t.truthy(last!.headers['retry-after']);
  t.is(last!.headers['access-control-allow-origin'], 'https://app.example.com', 'CORS headers also on refusals');
});

test('bodyLimit: 413 from Content-Length and while a chunked body streams', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: { small: { bodyLimit: '1KiB' } },
    routes: [{ name: 'r', upstream: 'svc', policies: ['small'] }],
  });
  const fits = await rawRequest({ port: gw.port, path: '/', method: 'POST', body: 'x'.repeat(1024) });
  t.is(fits.status, 200);
  const declared = await rawRequest({ port: gw.port, path: '/', method: 'POST', body: 'x'.repeat(1025) });
  t.is(declared.status, 413);
  t.is(declared.json().error.code, 'CW_BODY_TOO_LARGE');
  const chunks = Array.from({ length: 8 }, () => Buffer.alloc(512, 'y'));
  const streamed = await rawRequest({ port: gw.port, path: '/', method: 'POST', body: Readable.from(chunks) });
  t.is(streamed.status, 413);
  t.is(streamed.json().error.code, 'CW_BODY_TOO_LARGE');
  t.is(up.seen.length, 1, 'only the body that fits reached the upstream');
});

test('identity token: the upstream gets a token signed by the gateway, verifiable with the admin JWKS', async (t) => {
  const up = await startUpstream(t, 'svc');
  const dir = await tempDir(t);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = join(dir, 'identity.pem');
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      auth: jwtPolicy,
      mint: { identityToken: { keyFile, issuer: 'causeway-gateway', audience: 'mesh' } },
    },
    routes: [{ name: 'orders', upstream: 'svc', policies: ['auth', 'mint'] }],
  });
  const res = await rawRequest({ port: gw.port, path: '/', headers: { authorization: `Bearer ${await token()}`, 'x-causeway-identity': 'forged' } });
  t.is(res.status, 200);
  const minted = String(up.seen.at(-1)!.headers['x-causeway-identity']);
  t.not(minted, 'forged');
  const jwks = await fetch(`${gw.adminUrl}/.well-known/jwks.json`).then((r) => r.json());
  t.is(jwks.keys.length, 1);
  const { payload } = await jwtVerify(minted, createLocalJWKSet(jwks), { issuer: 'causeway-gateway', audience: 'mesh' });
  t.is(payload.sub, 'user-42');
  t.is(payload.route, 'orders');
});

test('WebSocket upgrades pass the route policies first', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: { auth: jwtPolicy },
    routes: [{ name: 'live', upstream: 'svc', policies: ['auth'] }],
  });
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/live`);
  t.teardown(() => ws.terminate());
  const status = await new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(-1));
  });
  t.is(status, 401);
  t.is(up.seen.length, 0);
});

test('cors answers preflights before a methods policy listed ahead of it', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: { onlyGet: { methods: ['GET'] }, cors: { cors: { origins: ['https://app.example.com'] } } },
    routes: [{ name: 'r', upstream: 'svc', policies: ['onlyGet', 'cors'] }],
  });
  const preflight = await rawRequest({
    port: gw.port,
    path: '/',
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
  });
  t.is(preflight.status, 204);
  const post = await rawRequest({ port: gw.port, path: '/', method: 'POST', body: '{}' });
  t.is(post.status, 405);
  t.is(post.headers.allow, 'GET, HEAD');
});

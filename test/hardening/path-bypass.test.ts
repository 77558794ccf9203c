// Route-level authentication bypass through path tricks. /admin is protected by a jwt policy;
// everything else goes to an open catch-all route on the same upstream. Each trick must either
// hit the protected route's policy (401) or be refused (400); when it is served by the open
// route, the upstream receives a path that no RFC 3986 server reads as /admin.
import test, { type ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { recordingUpstream, exchange, type RecordingUpstream } from './helpers/raw.ts';

const SECRET = 'a-hardening-secret-that-is-long-enough-0123456789';

async function setup(t: ExecutionContext, gateway: Record<string, unknown> = {}): Promise<{ gw: TestGateway; up: RecordingUpstream }> {
  const up = await recordingUpstream(t, 'svc');
  const gw = await startGateway(t, {
    gateway,
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      auth: { jwt: { issuer: 'https://idp.test/', audiences: ['api'], algorithms: ['HS256'], secret: SECRET, forward: { 'x-user-id': 'sub' } } },
    },
    routes: [
      { name: 'admin', upstream: 'svc', match: { prefix: '/admin' }, policies: ['auth'] },
      { name: 'open', upstream: 'svc' },
    ],
  });
  return { gw, up };
}

/** How a server that decodes once and removes dot segments (RFC 3986) reads a path. */
function rfcView(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  const out: string[] = [];
  for (const seg of decoded.split('/').slice(1)) {
    if (seg === '.' || seg === '') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

const underAdmin = (p: string) => p === '/admin' || p.startsWith('/admin/');

/** Tricks that must land on the protected route: 401 without a token. */
const PROTECTED = [
  '/admin',
  '/admin/',
  '/admin/users',
  '/admin/.',
  '/admin?x=1',
  '/admin?/../public',
  '//admin',
  '///admin//users',
  '/./admin',
  '/public/../admin',
  '/public/./../admin/users',
  '/public/%2e%2e/admin',
  '/public/%2E%2E/admin',
  '/public/.%2e/admin',
  '/public/%2e./admin',
  '/%2e/admin',
  '/%61dmin',
  '/%61%64%6d%69%6e/users',
  '/admin/x/..',
  '/admin/x/%2e%2e/',
  '/public//..//admin',
];

/** Tricks that must be refused before any route is consulted: 400 CW_BAD_PATH. */
const REFUSED = [
  '/%2e%2e/admin',
  '/../admin',
  '/public/../../admin',
  '/public/..;/admin',
  '/public/..;x=1/admin',
  '/public/.;/admin',
  '/public/..%3b/admin',
  '/public/.%2e;/admin',
  '/admin%2fusers',
  '/public%2f..%2fadmin',
  '/public%2F..%2Fadmin',
  '/public\\..\\admin',
  '/public%5c..%5cadmin',
  '/public%5C..%5Cadmin',
  '/admin#frag',
  '/public#/../admin',
  '/public/%00/../admin',
  '/admin%00',
  '/ａｄｍｉｎ',
  '/．．/admin',
  '/public/\u2025/admin',
  'admin',
  '*',
  'http://gw.test/admin',
  'http://evil.test/admin',
  // Percent-encoded bytes that are not valid UTF-8: overlong dots and slashes (decoders that
  // accept overlongs read them as '.' and '/'), truncated and stray sequences, surrogates.
  '/%c0%ae%c0%ae/admin',
  '/public/%c0%ae%c0%ae/admin',
  '/public/%e0%80%ae%e0%80%ae/admin',
  '/public/%f0%80%80%ae/admin',
  '/public%c0%afadmin',
  '/public/%e0%80%af../admin',
  '/admin%c3',
  '/admin%c3/x',
  '/%80admin',
  '/%ed%a0%80admin',
  '/%f4%90%80%80admin',
  '/%ffadmin',
];

/** Tricks served by the open route: the upstream gets a path no RFC 3986 server reads as /admin. */
const OPEN = [
  '/public?/../admin',
  '/public?%2e%2e/admin',
  '/admin.', // trailing dot: a different segment (see SECURITY.md on upstreams that fold paths)
  '/ADMIN', // paths are case-sensitive (see SECURITY.md)
  '/Admin/users',
  '/administrator',
  '/admin%3f',
  '/admin%23',
  '/admin%20',
  '/%252e%252e/admin',
  '/public/%252e%252e/admin',
  '/admin%252fusers',
  '/public%252f..%252fadmin',
  '/%ef%bc%8e%ef%bc%8e/admin',
  '/%ef%bd%81dmin',
  '/public/.../admin',
];

/** A raw ';' (gateway.pathSemicolons: reject, the default): Tomcat and Spring read /admin;x as /admin. */
const SEMICOLONS = ['/admin;x', '/admin;jsessionid=1/users', '/ADMIN;x', '/...;/admin', '/public/x;y', '/admin/;/users'];

for (const path of PROTECTED) {
  test(`path bypass: ${JSON.stringify(path)} hits the protected route (401), never the upstream`, async (t) => {
    const { gw, up } = await setup(t);
    const r = await rawRequest({ port: gw.port, path });
    t.is(r.status, 401, r.text);
    t.is(r.json().error.code, 'CW_AUTH_MISSING');
    t.is(up.seen.length, 0);
  });
}

for (const path of REFUSED) {
  test(`path bypass: ${JSON.stringify(path)} is refused with 400, never the upstream`, async (t) => {
    const { gw, up } = await setup(t);
    // raw bytes: node's client refuses to send some of these targets
    const x = await exchange(gw.port, Buffer.from(`GET ${path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`, 'utf8'), { end: false });
    t.is(x.responses.length, 1, x.raw);
    t.is(x.responses[0]!.status, 400, x.raw);
    t.is(up.seen.length, 0);
  });
}

for (const path of SEMICOLONS) {
  test(`path bypass: ${JSON.stringify(path)} (a raw ';') is refused with 400 CW_BAD_PATH, never the upstream`, async (t) => {
    const { gw, up } = await setup(t);
    const r = await rawRequest({ port: gw.port, path });
    t.is(r.status, 400, r.text);
    t.is(r.json().error.code, 'CW_BAD_PATH');
    t.regex(r.json().error.message, /';' is not allowed in the path/);
    t.is(up.seen.length, 0);
  });
}

test("pathSemicolons: allow passes ';' as it is, and the route is matched on the whole segment", async (t) => {
  const { gw, up } = await setup(t, { pathSemicolons: 'allow' });
  const r = await rawRequest({ port: gw.port, path: '/shop;jsessionid=1/cart?x=1' });
  t.is(r.status, 200);
  t.is(up.seen.at(-1)!.url, '/shop;jsessionid=1/cart?x=1');
  // The documented risk of allow: /admin;x is not the /admin route (no 401) and reaches the upstream.
  const risky = await rawRequest({ port: gw.port, path: '/admin;x' });
  t.is(risky.status, 200);
  t.is(up.seen.at(-1)!.url, '/admin;x');
  // An encoded ';' is never a delimiter and passes in either mode.
  const { gw: strict, up: up2 } = await setup(t);
  t.is((await rawRequest({ port: strict.port, path: '/shop%3Bx/cart' })).status, 200);
  t.is(up2.seen.at(-1)!.url, '/shop%3Bx/cart');
});

for (const path of OPEN) {
  test(`path bypass: ${JSON.stringify(path)} goes to the open route as a path that is not /admin`, async (t) => {
    const { gw, up } = await setup(t);
    const r = await rawRequest({ port: gw.port, path });
    t.is(r.status, 200, r.text);
    t.is(up.seen.length, 1);
    const got = up.seen[0]!.url.split('?')[0]!;
    t.false(underAdmin(got), `upstream got ${got}`);
    t.false(underAdmin(rfcView(got)), `an RFC 3986 server reads ${got} as ${rfcView(got)}`);
    t.is(up.seen[0]!.headers['x-user-id'], undefined);
  });
}

test('path bypass: with a valid token the same tricks reach the upstream as the normalised /admin path', async (t) => {
  const { gw, up } = await setup(t);
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setIssuer('https://idp.test/')
    .setAudience('api')
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));
  for (const path of ['//admin', '/public/%2e%2e/admin', '/%61dmin']) {
    const r = await rawRequest({ port: gw.port, path, headers: { authorization: `Bearer ${token}` } });
    t.is(r.status, 200);
    t.is(up.seen.at(-1)!.url, '/admin', 'the upstream receives the path the gateway matched');
    t.is(up.seen.at(-1)!.headers['x-user-id'], 'alice');
  }
});

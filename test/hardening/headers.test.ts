// Header abuse: Connection-listed identity headers, spoofed forwarding headers, Host games,
// Expect and Upgrade. Checked on both sides: the client's status and what the upstream got.
import test, { type ExecutionContext } from 'ava';
import { SignJWT } from 'jose';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { exchange, recordingUpstream, type RecordingUpstream } from './helpers/raw.ts';

const SECRET = 'a-hardening-secret-that-is-long-enough-0123456789';
const key = new TextEncoder().encode(SECRET);
const token = (sub = 'alice') =>
  new SignJWT({ scope: 'read' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuer('https://idp.test/')
    .setAudience('api')
    .setExpirationTime('5m')
    .sign(key);

async function setup(t: ExecutionContext, extra: Record<string, any> = {}): Promise<{ gw: TestGateway; up: RecordingUpstream }> {
  const up = await recordingUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      auth: {
        jwt: { issuer: 'https://idp.test/', audiences: ['api'], algorithms: ['HS256'], secret: SECRET, forward: { 'x-user-id': 'sub', 'x-scopes': 'scope' } },
      },
      local: { ipFilter: { deny: ['127.0.0.1', '::1'] } },
      ...(extra.policies ?? {}),
    },
    routes: [
      { name: 'admin', upstream: 'svc', match: { prefix: '/admin' }, policies: ['auth'] },
      { name: 'admin-host', upstream: 'svc', match: { host: 'admin.test' }, policies: ['auth'] },
      { name: 'no-local', upstream: 'svc', match: { prefix: '/internal' }, policies: ['local'] },
      { name: 'no-ws', upstream: 'svc', match: { prefix: '/nows' }, websocket: false },
      { name: 'open', upstream: 'svc' },
    ],
  });
  return { gw, up };
}

test('Connection: X-User-Id cannot strip the identity header the gateway sets from the token', async (t) => {
  const { gw, up } = await setup(t);
  const r = await rawRequest({
    port: gw.port,
    path: '/admin/me',
    headers: { authorization: `Bearer ${await token('alice')}`, connection: 'keep-alive, X-User-Id, x-scopes', 'x-user-id': 'mallory' },
  });
  t.is(r.status, 200);
  t.is(up.seen.length, 1);
  t.is(up.seen[0]!.headers['x-user-id'], 'alice', 'from the verified token, not the client');
  t.is(up.seen[0]!.headers['x-scopes'], 'read');
  t.is(up.seen[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'x-user-id').length, 1, 'exactly one identity header');
});

test('Connection naming the forwarding and request-id headers cannot remove the gateway-set values', async (t) => {
  const { gw, up } = await setup(t);
  const r = await rawRequest({
    port: gw.port,
    path: '/open',
    headers: { connection: 'x-forwarded-for, x-forwarded-proto, x-forwarded-host, forwarded, x-request-id, host' },
  });
  t.is(r.status, 200);
  const h = up.seen[0]!.headers;
  t.is(h['x-forwarded-for'], '127.0.0.1');
  t.is(h['x-forwarded-proto'], 'http');
  t.regex(String(h.forwarded), /^for=127\.0\.0\.1;proto=http;host=/);
  t.regex(String(h['x-request-id']), /^[0-9a-f-]{36}$/);
  t.truthy(h.host);
  t.is(h.connection, 'keep-alive', "the client's Connection header is not passed on");
});

test('identity headers sent by the client never reach an upstream, on any route, however they are spelled or repeated', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    'GET /open HTTP/1.1\r\nHost: gw.test\r\nX-User-Id: mallory\r\nx-user-id: root\r\nX-USER-ID: admin\r\nX-Scopes: everything\r\nConnection: close\r\n\r\n',
    { end: false },
  );
  t.is(x.responses[0]!.status, 200);
  t.is(up.seen[0]!.headers['x-user-id'], undefined);
  t.is(up.seen[0]!.headers['x-scopes'], undefined);
});

test('spoofed X-Forwarded-*, Forwarded and X-Request-Id from an untrusted client are replaced, and do not decide policies', async (t) => {
  const { gw, up } = await setup(t);
  const spoof = {
    'x-forwarded-for': '10.0.0.1, 192.168.0.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'admin.test',
    forwarded: 'for=10.0.0.1;proto=https;host=admin.test',
    'x-request-id': 'attacker-chosen-id',
  };
  const r = await rawRequest({ port: gw.port, path: '/open', headers: spoof });
  t.is(r.status, 200);
  const h = up.seen[0]!.headers;
  t.is(h['x-forwarded-for'], '127.0.0.1');
  t.is(h['x-forwarded-proto'], 'http');
  t.is(h['x-forwarded-host'], h.host);
  t.regex(String(h.forwarded), /^for=127\.0\.0\.1;proto=http;host="?127\.0\.0\.1:\d+"?$/, 'one element, ours');
  t.not(h['x-request-id'], 'attacker-chosen-id');
  t.not(r.headers['x-request-id'], 'attacker-chosen-id');

  // ipFilter denies the real peer whatever X-Forwarded-For claims
  const denied = await rawRequest({ port: gw.port, path: '/internal', headers: spoof });
  t.is(denied.status, 403);
  t.is(up.seen.length, 1);

  // X-Forwarded-Host does not pick a host route either
  const hostRoute = await rawRequest({ port: gw.port, path: '/', headers: { 'x-forwarded-host': 'admin.test' } });
  t.is(hostRoute.status, 200, 'routed by Host, not X-Forwarded-Host');
  t.is(up.seen.length, 2);
});

test('Host and an absolute-form target that disagree: refused with 400, nothing upstream', async (t) => {
  const { gw, up } = await setup(t);
  for (const target of ['http://admin.test/', 'http://gw.test/admin', 'https://admin.test/x']) {
    const x = await exchange(gw.port, `GET ${target} HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n`, { end: false });
    t.is(x.responses[0]!.status, 400, target);
    t.is(JSON.parse(x.responses[0]!.body).error.code, 'CW_BAD_PATH');
  }
  t.is(up.seen.length, 0);
});

test('a host route is chosen by the Host header; its port, case and a trailing dot do not get around it', async (t) => {
  const { gw, up } = await setup(t);
  for (const host of ['admin.test', 'ADMIN.test', 'admin.test.', 'admin.test:80', 'Admin.Test.:8080']) {
    const x = await exchange(gw.port, `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, { end: false });
    t.is(x.responses[0]!.status, 401, host);
  }
  t.is(up.seen.length, 0);
});

test('duplicate Host: 400 CW_BAD_HOST (RFC 9112 §3.2), whatever the order, and nothing goes upstream', async (t) => {
  const { gw, up } = await setup(t);
  for (const lines of ['Host: admin.test\r\nHost: public.test', 'Host: public.test\r\nhost: admin.test', 'Host: public.test\r\nHOST: public.test']) {
    const x = await exchange(gw.port, `GET /x HTTP/1.1\r\n${lines}\r\nConnection: close\r\n\r\n`, { end: false });
    t.is(x.responses[0]!.status, 400, lines);
    t.true(x.raw.includes('CW_BAD_HOST'), lines);
  }
  t.is(up.seen.length, 0);
  t.is(up.wire(), '');
});

test('Expect: 100-continue on a protected route without a token: 401, the body never goes upstream', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    ['POST /admin/upload HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n', 'hello'],
    { end: false, gapMs: 100 },
  );
  t.is(x.responses.at(-1)!.status, 401, x.raw);
  t.true(x.responses.every((r) => r.status === 100 || r.status === 401));
  t.is(up.wire(), '');
});

test('Expect: 100-continue on an open route: the body is forwarded once and the client gets the final answer', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    ['POST /upload HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n', 'hello'],
    { end: false, gapMs: 100 },
  );
  t.is(x.responses.at(-1)!.status, 200, x.raw);
  t.is(up.seen.length, 1);
  t.is(up.seen[0]!.body, 'hello');
});

test('an Expect other than 100-continue: 417, nothing upstream', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(gw.port, 'POST /upload HTTP/1.1\r\nHost: gw.test\r\nExpect: 200-ok\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello', {
    end: false,
  });
  t.is(x.responses[0]!.status, 417);
  t.is(up.seen.length, 0);
});

const upgrade = (path: string, proto: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: ${proto}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

test('Upgrade: websocket on a route with websocket: false → 404; nothing upstream', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(gw.port, upgrade('/nows/chat', 'websocket'), { end: false });
  t.is(x.responses[0]!.status, 404);
  t.true(x.closedByPeer);
  t.is(up.wire(), '');
});

test('Upgrade to another protocol (h2c, TLS) → 400 CW_UPGRADE_NOT_SUPPORTED; nothing upstream', async (t) => {
  const { gw, up } = await setup(t);
  for (const proto of ['h2c', 'TLS/1.2', 'websocket2']) {
    const x = await exchange(gw.port, upgrade('/open', proto, 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'), { end: false });
    t.is(x.responses[0]!.status, 400, proto);
    t.is(JSON.parse(x.responses[0]!.body).error.code, 'CW_UPGRADE_NOT_SUPPORTED');
  }
  t.is(up.wire(), '');
});

test('Upgrade: websocket to a protected route without a token → 401 before the upstream is dialled', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(gw.port, upgrade('/admin/ws', 'websocket'), { end: false });
  t.is(x.responses[0]!.status, 401);
  t.is(up.wire(), '');
});

test('an Upgrade header without Connection: upgrade is an ordinary request; Upgrade is not passed on', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(gw.port, 'GET /open HTTP/1.1\r\nHost: gw.test\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n', { end: false });
  t.is(x.responses[0]!.status, 200);
  t.is(up.seen[0]!.headers.upgrade, undefined);
});

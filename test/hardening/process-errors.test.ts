// unhandledRejection and uncaughtException in the gateway process: logged with a code, counted
// in GET /config (processErrors), and an uncaught exception still ends the process non-zero.
//
// Test processes themselves: ava already fails the run on an unhandled rejection in a test
// worker (verified with ava 7: it prints "Unhandled rejection in <file>", the worker exits 1 and
// the summary counts "1 unhandled rejection"), so in-process gateways need nothing more. For
// gateways run as child processes, helpers/process.ts asserts at teardown that GET /config shows
// zero processErrors, and fails the test if the process died.
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { SignJWT } from 'jose';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream } from '../helpers/upstream.ts';
import { exchange } from './helpers/raw.ts';
import { startGatewayProcess } from './helpers/process.ts';

const FAULT = fileURLToPath(new URL('./fixtures/fault.mjs', import.meta.url));
const SECRET = 'a-hardening-secret-that-is-long-enough-0123456789';

const config = (url: string) => ({
  upstreams: { svc: { endpoints: [url] } },
  policies: { auth: { jwt: { issuer: 'https://idp.test/', audiences: ['api'], algorithms: ['HS256'], secret: SECRET } }, small: { bodyLimit: '1KiB' } },
  routes: [
    { name: 'admin', upstream: 'svc', match: { prefix: '/admin' }, policies: ['auth', 'small'] },
    { name: 'open', upstream: 'svc' },
  ],
});

test('hostile traffic leaves the gateway process without a single unhandled rejection or uncaught exception', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gp = await startGatewayProcess(t, config(up.url));
  const H = 'Host: gw.test\r\n';
  const hostile = [
    `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    `GET /public/..;/admin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    `GET /admin HTTP/1.1\r\n${H}Authorization: Bearer a.b.c\r\nConnection: close\r\n\r\n`,
    `POST /admin HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n${'x'.repeat(2000)}\r\n0\r\n\r\n`,
    `POST /upload HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`,
    `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    `GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(17_000)}\r\n\r\n`,
  ];
  for (const bytes of hostile) await exchange(gp.port, bytes, { end: false, safetyMs: 3000 });
  // a client that goes away in the middle of a request body
  await exchange(gp.port, `POST /open HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nabc`, { end: false, safetyMs: 200 });
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setIssuer('https://idp.test/').setAudience('api').setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
  const ok = await rawRequest({ port: gp.port, path: '/admin/x', headers: { authorization: `Bearer ${token}` } });
  t.is(ok.status, 200);
  t.deepEqual(await gp.processErrors(), { unhandledRejections: 0, uncaughtExceptions: 0 });
});

test('an unhandled rejection is logged with CW_UNHANDLED_REJECTION and counted; the gateway keeps serving', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gp = await startGatewayProcess(t, config(up.url), {
    env: { NODE_OPTIONS: `--import=${FAULT}`, CAUSEWAY_TEST_FAULT: 'reject' },
    expectProcessErrors: true,
  });
  t.deepEqual(await gp.processErrors(), { unhandledRejections: 0, uncaughtExceptions: 0 });
  process.kill(gp.cli.child.pid!, 'SIGUSR2');
  const line = await gp.cli.waitForLog((l) => l.code === 'CW_UNHANDLED_REJECTION');
  t.is(line.level, 50);
  t.is(line.err.message, 'injected rejection');
  t.deepEqual(await gp.processErrors(), { unhandledRejections: 1, uncaughtExceptions: 0 });
  t.is((await rawRequest({ port: gp.port, path: '/open' })).status, 200, 'still serving');
});

test('an uncaught exception is logged with CW_UNCAUGHT_EXCEPTION, then the process exits non-zero', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gp = await startGatewayProcess(t, config(up.url), {
    env: { NODE_OPTIONS: `--import=${FAULT}`, CAUSEWAY_TEST_FAULT: 'throw' },
    expectProcessErrors: true,
  });
  process.kill(gp.cli.child.pid!, 'SIGUSR2');
  const { code, signal } = await gp.cli.exited;
  t.is(signal, null);
  t.is(code, 70);
  const line = gp.cli.logs.find((l) => l.code === 'CW_UNCAUGHT_EXCEPTION');
  t.truthy(line, 'the fatal line was written before exiting');
  t.is(line!.level, 60);
  t.is(line!.err.message, 'injected exception');
});

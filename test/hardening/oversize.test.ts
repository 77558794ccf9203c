// Oversize and slow input: request line, headers, header count, bodies over a bodyLimit policy,
// and clients that trickle headers or bodies. Bounded: a few dozen connections on 127.0.0.1
// for about two seconds.
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { exchange, recordingUpstream, type RecordingUpstream } from './helpers/raw.ts';

async function setup(t: ExecutionContext): Promise<{ gw: TestGateway; up: RecordingUpstream }> {
  const up = await recordingUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: { small: { bodyLimit: '1KiB' } },
    routes: [
      { name: 'limited', upstream: 'svc', match: { prefix: '/limited' }, policies: ['small'] },
      { name: 'all', upstream: 'svc' },
    ],
  });
  return { gw, up };
}

const H = 'Host: gw.test\r\nConnection: close\r\n';

const TOO_LARGE: Record<string, string> = {
  'a request line over 16 KiB': `GET /${'a'.repeat(17_000)} HTTP/1.1\r\n${H}\r\n`,
  'one header over 16 KiB': `GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(17_000)}\r\n\r\n`,
  'headers adding up to over 16 KiB': `GET / HTTP/1.1\r\n${H}${Array.from({ length: 20 }, (_, i) => `X-H${i}: ${'c'.repeat(1000)}\r\n`).join('')}\r\n`,
  'a header name over 16 KiB': `GET / HTTP/1.1\r\n${H}X-${'n'.repeat(17_000)}: 1\r\n\r\n`,
};

for (const [name, bytes] of Object.entries(TOO_LARGE)) {
  test(`oversize: ${name} → 431, closed, nothing upstream`, async (t) => {
    const { gw, up } = await setup(t);
    const x = await exchange(gw.port, bytes, { end: false });
    t.is(x.responses.length, 1, x.raw.slice(0, 300));
    t.is(x.responses[0]!.status, 431);
    t.true(x.closedByPeer);
    t.is(up.wire(), '');
    t.is((await rawRequest({ port: gw.port, path: '/alive' })).status, 200);
  });
}

test('oversize: a request line just under the limit is served with its path intact', async (t) => {
  const { gw, up } = await setup(t);
  const path = `/${'a'.repeat(15_000)}`;
  const x = await exchange(gw.port, `GET ${path} HTTP/1.1\r\n${H}\r\n`, { end: false });
  t.is(x.responses[0]!.status, 200);
  t.is(up.seen[0]!.url, path);
});

test('oversize: header count: more header fields than gateway.maxHeaders (100) → 431 CW_TOO_MANY_HEADERS, never a silently shortened request', async (t) => {
  // Node alone keeps the first 2000 header fields and drops the rest without an error, so the
  // gateway could route on a set of headers the client did not send. Now the request is refused.
  const { gw, up } = await setup(t);
  const many = Array.from({ length: 1100 }, (_, i) => `h${i}: 1\r\n`).join('');
  const x = await exchange(gw.port, `GET /count HTTP/1.1\r\n${H}${many}X-Late: 1\r\nConnection: x-late\r\n\r\n`, { end: false });
  t.is(x.responses[0]!.status, 431);
  t.is(JSON.parse(x.responses[0]!.body).error.code, 'CW_TOO_MANY_HEADERS');
  t.is(up.wire(), '');
  const ok = Array.from({ length: 90 }, (_, i) => `h${i}: 1\r\n`).join('');
  const y = await exchange(gw.port, `GET /count HTTP/1.1\r\n${H}${ok}Connection: close\r\n\r\n`, { end: false });
  t.is(y.responses[0]!.status, 200);
  t.is(up.seen[0]!.headers.h89, '1', 'a request under the limit keeps every header');
});

test('oversize: a declared body over bodyLimit → 413 before anything goes upstream', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(gw.port, `POST /limited HTTP/1.1\r\n${H}Content-Length: 2000\r\n\r\n${'d'.repeat(2000)}`, { end: false });
  t.is(x.responses[0]!.status, 413);
  t.is(JSON.parse(x.responses[0]!.body).error.code, 'CW_BODY_TOO_LARGE');
  t.true(x.closedByPeer);
  t.is(up.wire(), '');
});

test('oversize: a chunked body over bodyLimit → 413 while streaming; the upstream never gets a complete request', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    `POST /limited HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n7d0\r\n${'d'.repeat(2000)}\r\n0\r\n\r\n`,
    { end: false },
  );
  t.is(x.responses[0]!.status, 413);
  t.true(x.closedByPeer);
  t.is(up.seen.length, 0, 'the upstream request was aborted, never completed');
  const ok = await exchange(gw.port, `POST /limited HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3e8\r\n${'d'.repeat(1000)}\r\n0\r\n\r\n`, {
    end: false,
  });
  t.is(ok.responses[0]!.status, 200, 'a body at the limit passes');
  t.is(up.seen.at(-1)!.body.length, 1000);
});

test('oversize: a Content-Length that is not a plain number on a bodyLimit route is refused by the parser', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(gw.port, `POST /limited HTTP/1.1\r\n${H}Content-Length: 0x10\r\n\r\n${'d'.repeat(16)}`, { end: false });
  t.is(x.responses[0]!.status, 400);
  t.is(up.wire(), '');
});

/** Open `n` connections that each send a little every `everyMs`, until stopped. */
function trickle(t: ExecutionContext, port: number, n: number, first: string, next: () => string, everyMs: number): () => void {
  const socks: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('connect', () => {
      s.write(first);
      timers.push(setInterval(() => s.writable && s.write(next()), everyMs));
    });
    socks.push(s);
  }
  const stop = () => {
    for (const tm of timers) clearInterval(tm);
    for (const s of socks) s.destroy();
  };
  t.teardown(stop);
  return stop;
}

test('slowloris: clients trickling headers do not starve other clients and never reach the upstream', async (t) => {
  const { gw, up } = await setup(t);
  let i = 0;
  const stop = trickle(t, gw.port, 40, 'GET /slow HTTP/1.1\r\nHost: gw.test\r\n', () => `X-${i++}: y\r\n`, 100);
  await new Promise((r) => setTimeout(r, 300));
  for (let k = 0; k < 20; k++) {
    const r = await rawRequest({ port: gw.port, path: `/fast/${k}` });
    t.is(r.status, 200);
  }
  stop();
  t.false(up.seen.some((s) => s.url === '/slow'), 'an incomplete request head is never forwarded');
  t.is(up.seen.length, 20);
});

test('slow body: clients trickling bodies do not starve other clients of other routes', async (t) => {
  const { gw, up } = await setup(t);
  const stop = trickle(t, gw.port, 20, 'POST /limited/slow HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n\r\n', () => 'x', 100);
  await new Promise((r) => setTimeout(r, 300));
  for (let k = 0; k < 20; k++) {
    const r = await rawRequest({ port: gw.port, path: `/fast/${k}` });
    t.is(r.status, 200);
  }
  stop();
  t.false(up.seen.some((s) => s.url === '/limited/slow'), 'the slow bodies never completed');
});

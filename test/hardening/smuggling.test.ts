// Request smuggling over raw sockets, checked on both sides: what the client gets back and what
// the upstream receives on the wire. Node's HTTP parser (llhttp, strict mode) refuses most of
// these before the gateway sees a request; these tests pin that down, so a change of parser
// settings (insecureHTTPParser, a lenient flag) or of the server would fail here.
import test, { type ExecutionContext } from 'ava';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { exchange, recordingUpstream, requestLines, type RecordingUpstream } from './helpers/raw.ts';

async function setup(t: ExecutionContext): Promise<{ gw: TestGateway; up: RecordingUpstream }> {
  const up = await recordingUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'all', upstream: 'svc' }],
  });
  return { gw, up };
}

/** The gateway still serves a plain request after whatever came before. */
async function stillServes(t: ExecutionContext, gw: TestGateway): Promise<void> {
  const r = await rawRequest({ port: gw.port, path: '/alive' });
  t.is(r.status, 200, 'the gateway keeps serving');
}

const H = 'Host: gw.test\r\n';

/** Malformed framing: each must be refused with 400, the connection closed, and nothing sent upstream. */
const REFUSED: Record<string, string> = {
  'Content-Length and Transfer-Encoding (CL.TE)': `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
  'Transfer-Encoding and Content-Length (TE.CL)': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
  'Transfer-Encoding with Content-Length: 0': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  'duplicate equal Content-Length': `POST /a HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`,
  'duplicate different Content-Length': `POST /a HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\n${H}\r\n`,
  'comma-joined Content-Length': `POST /a HTTP/1.1\r\n${H}Content-Length: 3, 3\r\n\r\nabc`,
  'signed Content-Length': `POST /a HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`,
  'non-hex chunk size': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
  'negative chunk size': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`,
  'overflowing chunk size': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n`,
  'chunk size with bare LF': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n`,
  'Transfer-Encoding: chunked, identity': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  'Transfer-Encoding: identity with Content-Length': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc`,
  'Transfer-Encoding sent twice': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  'unknown Transfer-Encoding (xchunked)': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  'space before the colon': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  'obs-fold in an ordinary header': `GET /a HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`,
  'obs-fold hiding Transfer-Encoding': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
  'header line starting with a space': `GET /a HTTP/1.1\r\n Host: gw.test\r\n\r\n`,
  'bare LF line endings': `GET /a HTTP/1.1\nHost: gw.test\n\n`,
  'bare LF between headers': `GET /a HTTP/1.1\r\nHost: gw.test\nX-A: b\r\n\r\n`,
  'bare CR between headers': `GET /a HTTP/1.1\r\nHost: gw.test\rX-A: b\r\n\r\n`,
  'CR inside a header value': `GET /a HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`,
  'NUL inside a header value': `GET /a HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`,
  'NUL inside a header name': `GET /a HTTP/1.1\r\n${H}X\x00A: b\r\n\r\n`,
  'no Host header on HTTP/1.1': `GET /a HTTP/1.1\r\n\r\n`,
  'unknown HTTP version': `GET /a HTTP/1.2\r\n${H}\r\n`,
  'lower-case method': `get /a HTTP/1.1\r\n${H}\r\n`,
};

for (const [name, bytes] of Object.entries(REFUSED)) {
  test(`smuggling: ${name} → 400, connection closed, upstream sees nothing`, async (t) => {
    const { gw, up } = await setup(t);
    const x = await exchange(gw.port, bytes);
    t.is(x.responses.length, 1, x.raw);
    t.is(x.responses[0]!.status, 400);
    t.true(x.closedByPeer, 'the gateway closes the connection');
    t.is(up.seen.length, 0);
    t.is(up.wire(), '', 'not one byte went upstream');
    await stillServes(t, gw);
  });
}

test('smuggling: a request pipelined after a malformed one is never parsed or forwarded', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    `POST /a HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxGET /smuggled HTTP/1.1\r\n${H}\r\nGET /smuggled2 HTTP/1.1\r\n${H}\r\n`,
  );
  t.is(x.responses.length, 1);
  t.is(x.responses[0]!.status, 400);
  t.true(x.closedByPeer);
  t.false(up.wire().includes('smuggled'));
  t.is(up.seen.length, 0);
  await stillServes(t, gw);
});

test('smuggling: a good request, then a malformed one on the same connection: the smuggled tail never reaches the upstream', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    `GET /first HTTP/1.1\r\n${H}\r\n` +
      `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
  );
  // Node's parser reads the whole pipeline at once: the malformed second request makes the
  // server write a 400 and destroy the connection, possibly before /first was answered.
  t.true(x.closedByPeer);
  t.true(x.responses.length >= 1 && x.responses.length <= 2, x.raw);
  t.is(x.responses.at(-1)!.status, 400);
  t.false(up.wire().includes('smuggled'));
  t.true(up.seen.every((s) => s.url === '/first'));
  await stillServes(t, gw);
});

test('smuggling: a body that carries a second request stays a body (Content-Length framing)', async (t) => {
  const { gw, up } = await setup(t);
  const inner = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  const x = await exchange(gw.port, `POST /a HTTP/1.1\r\n${H}Connection: close\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`, { end: false });
  t.is(x.responses.length, 1);
  t.is(x.responses[0]!.status, 200);
  t.is(up.seen.length, 1);
  t.is(up.seen[0]!.url, '/a');
  t.is(up.seen[0]!.body, inner, 'the embedded request arrives as the body of /a');
  t.regex(up.wire(), new RegExp(`^POST /a HTTP/1\\.1\r\n[^]*content-length: ${inner.length}\r\n`, 'i'), 'framed by Content-Length upstream');
});

test('smuggling: a chunked body with a request inside stays a body; the upstream gets one well-framed request', async (t) => {
  const { gw, up } = await setup(t);
  const inner = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  const x = await exchange(
    gw.port,
    `POST /a HTTP/1.1\r\n${H}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`,
    { end: false },
  );
  t.is(x.responses[0]!.status, 200);
  t.is(up.seen.length, 1);
  t.is(up.seen[0]!.body, inner);
  const h = up.seen[0]!.headers;
  t.false(h['content-length'] !== undefined && h['transfer-encoding'] !== undefined, 'never both framings upstream');
  t.true(up.wire().startsWith('POST /a HTTP/1.1\r\n'), 'the upstream parsed one request; the inner one is body bytes');
});

test('smuggling: accepted oddities (chunk extensions, CHUNKED in capitals) are re-framed cleanly upstream', async (t) => {
  const { gw, up } = await setup(t);
  const a = await exchange(gw.port, `POST /ext HTTP/1.1\r\n${H}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n3;name=x\r\nabc\r\n0\r\n\r\n`, { end: false });
  t.is(a.responses[0]!.status, 200);
  const b = await exchange(gw.port, `POST /caps HTTP/1.1\r\n${H}Connection: close\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, { end: false });
  t.is(b.responses[0]!.status, 200);
  t.deepEqual(
    up.seen.map((s) => [s.url, s.body]),
    [
      ['/ext', 'abc'],
      ['/caps', 'abc'],
    ],
  );
  const wire = up.wire();
  t.false(wire.includes('name=x'), 'chunk extensions are not passed on');
  t.false(/transfer-encoding: CHUNKED/i.test(wire) && wire.includes('CHUNKED'), 'the client framing header is not copied');
});

test('smuggling: pipelined well-formed requests are forwarded one by one, in order, each answered', async (t) => {
  const { gw, up } = await setup(t);
  const x = await exchange(
    gw.port,
    `POST /one HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc` +
      `POST /two HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n` +
      `GET /three HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    { end: false },
  );
  t.deepEqual(
    x.responses.map((r) => [r.status, JSON.parse(r.body).url]),
    [
      [200, '/one'],
      [200, '/two'],
      [200, '/three'],
    ],
  );
  t.deepEqual(
    up.seen.map((s) => [s.method, s.url, s.body]),
    [
      ['POST', '/one', 'abc'],
      ['POST', '/two', 'de'],
      ['GET', '/three', ''],
    ],
  );
});

test('smuggling: an HTTP/1.0 request without Host reaches the upstream as well-formed HTTP/1.1', async (t) => {
  const { gw, up } = await setup(t);
  const a = await exchange(gw.port, `GET /ten HTTP/1.0\r\n\r\n`, { end: false });
  t.is(a.responses[0]!.status, 200);
  t.true(a.closedByPeer);
  t.deepEqual(requestLines(up.wire()), ['GET /ten HTTP/1.1']);
  t.truthy(up.seen[0]!.headers.host, 'the upstream gets a Host header even when the client sent none');
});

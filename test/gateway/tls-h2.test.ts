// HTTP/2 to clients over ALPN on TLS listeners: the same routes, policies and proxying as
// HTTP/1.1, per-listener limits, WebSocket over http/1.1 on the same port.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import test from 'ava';
import WebSocket, { WebSocketServer } from 'ws';
import { startGateway } from '../helpers/gateway.ts';
import { makeCa, type TestCa } from '../helpers/tls.ts';
import { startRawUpstream, startUpstream } from '../helpers/upstream.ts';

const run = promisify(execFile);

async function h2Gateway(t: import('ava').ExecutionContext, upstreamUrl: string, http2: Record<string, unknown> = {}, extra: Record<string, any> = {}) {
  const ca = await makeCa();
  const c = await ca.issue({ names: ['gw.test'] });
  const g = await startGateway(t, {
    gateway: { listeners: [{ name: 'h2', listen: { host: '127.0.0.1', port: 0 }, tls: { cert: c.cert, key: c.key }, http2 }] },
    upstreams: { svc: { endpoints: [upstreamUrl] } },
    routes: [{ name: 'r', upstream: 'svc', ...(extra.route ?? {}) }],
    ...(extra.top ?? {}),
  });
  return { ...g, ca };
}

function session(t: import('ava').ExecutionContext, port: number, ca: TestCa): ClientHttp2Session {
  // gw.test resolves to 127.0.0.1 (SNI and certificate checks on the name).
  const s = connect(`https://gw.test:${port}`, {
    createConnection: () => tlsConnect({ host: '127.0.0.1', port, servername: 'gw.test', ca: ca.cert, ALPNProtocols: ['h2'] }),
  });
  s.on('error', () => undefined);
  t.teardown(() => s.destroy());
  return s;
}

function h2request(
  s: ClientHttp2Session,
  headers: Record<string, string>,
  body?: Buffer | ((write: (b: Buffer) => boolean, end: () => void) => void),
): Promise<{ headers: Record<string, any>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const st = s.request(headers, { endStream: body === undefined });
    let resHeaders: IncomingHttpHeaders & Record<string, any> = {};
    const chunks: Buffer[] = [];
    st.on('response', (h) => (resHeaders = h));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => resolve({ headers: resHeaders, body: Buffer.concat(chunks) }));
    st.on('error', reject);
    if (Buffer.isBuffer(body)) st.end(body);
    else if (body) body((b) => st.write(b), () => st.end());
  });
}

test('an HTTP/2 request reaches the upstream as HTTP/1.1 with the right headers and none of the pseudo-headers', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { port, ca } = await h2Gateway(t, up.url);
  const s = session(t, port, ca);
  const r = await h2request(s, { ':method': 'GET', ':path': '/items/7?q=1', ':authority': `gw.test:${port}`, 'x-custom': 'yes', cookie: 'a=1' });
  t.is(s.alpnProtocol, 'h2');
  t.is(r.headers[':status'], 200);
  t.is(r.headers['x-upstream'], 'svc');
  t.truthy(r.headers['x-request-id']);
  t.is(r.headers.connection, undefined);
  const seen = up.seen[0]!;
  t.is(seen.url, '/items/7?q=1');
  t.is(seen.headers.host, `gw.test:${port}`);
  t.is(seen.headers['x-custom'], 'yes');
  t.is(seen.headers['x-forwarded-proto'], 'https');
  t.is(seen.headers['x-forwarded-host'], `gw.test:${port}`);
  t.false(Object.keys(seen.headers).some((h) => h.startsWith(':')));
  t.false(seen.rawHeaders.some((h) => h.startsWith(':')));
});

test('HTTP/2 request and response bodies stream both ways, a large POST without content-length too', async (t) => {
  const up = await startRawUpstream(t, (req, res) => {
    const hash = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      n += c.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-received': String(n), 'x-sha': hash.digest('hex'), 'x-te': String(req.headers['transfer-encoding']) });
      // Stream a response in pieces.
      let left = 64;
      const piece = Buffer.alloc(16 * 1024, 7);
      const next = () => {
        while (left > 0) {
          left--;
          if (!res.write(piece)) return res.once('drain', next);
        }
        res.end();
      };
      next();
    });
  });
  const { port, ca } = await h2Gateway(t, up.url);
  const s = session(t, port, ca);
  const total = 8 * 1024 * 1024;
  const hash = createHash('sha256');
  const r = await h2request(s, { ':method': 'POST', ':path': '/upload', ':authority': 'gw.test' }, (write, end) => {
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const piece = Buffer.alloc(64 * 1024, sent % 251);
        hash.update(piece);
        sent += piece.length;
        if (!write(piece)) return setImmediate(pump);
      }
      end();
    };
    pump();
  });
  t.is(r.headers[':status'], 200);
  t.is(r.headers['x-received'], String(total));
  t.is(r.headers['x-sha'], hash.digest('hex'));
  t.is(r.headers['x-te'], 'chunked');
  t.is(r.body.length, 64 * 16 * 1024);
  // A request without a body is sent without one.
  const g = await h2request(s, { ':method': 'GET', ':path': '/', ':authority': 'gw.test' });
  t.is(g.headers['x-received'], '0');
  t.is(g.headers['x-te'], 'undefined');
});

test('HTTP/2 requests pass the route policies: a policy refusal is a proper h2 response', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { port, ca } = await h2Gateway(t, up.url, {}, { top: { policies: { small: { bodyLimit: 10 } } }, route: { policies: ['small'] } });
  const s = session(t, port, ca);
  const r = await h2request(s, { ':method': 'POST', ':path': '/x', ':authority': 'gw.test', 'content-length': '100' }, Buffer.alloc(100));
  t.is(r.headers[':status'], 413);
  t.is(JSON.parse(r.body.toString()).error.code, 'CW_BODY_TOO_LARGE');
  // The session stays usable.
  t.is((await h2request(s, { ':method': 'GET', ':path': '/ok', ':authority': 'gw.test' })).headers[':status'], 200);
});

test('HTTP/1.1 clients still work on the h2 listener, and WebSocket upgrades stay HTTP/1.1', async (t) => {
  const up = await startUpstream(t, 'svc');
  const wss = new WebSocketServer({ server: up.server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${String(m)}`)));
  const { port, ca } = await h2Gateway(t, up.url);
  const options = { ca: ca.cert, servername: 'gw.test' };
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, options);
  t.teardown(() => ws.terminate());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const reply = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))));
  ws.send('hi');
  t.is(await reply, 'echo hi');
});

test('curl --http2 gets through over ALPN h2', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { port, ca, dir } = await h2Gateway(t, up.url);
  await writeFile(join(dir, 'ca.pem'), ca.cert);
  const { stdout } = await run('curl', ['-sS', '--http2', '--cacert', join(dir, 'ca.pem'), '--resolve', `gw.test:${port}:127.0.0.1`, '-d', 'hello', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `https://gw.test:${port}/c`]);
  t.is(stdout, '200 2');
  t.is(up.seen[0]!.body, 'hello');
  t.is(up.seen[0]!.headers.host, `gw.test:${port}`);
});

test('h2 limits: streams over maxConcurrentStreams are refused, a header list over maxHeaderListSize resets the stream, settings are advertised', async (t) => {
  const waiting: Array<() => void> = [];
  const up = await startRawUpstream(t, (req, res) => {
    req.resume();
    if (req.url === '/slow') waiting.push(() => res.end('slow'));
    else res.end('fast');
  });
  const { port, ca } = await h2Gateway(t, up.url, { maxConcurrentStreams: 2, maxHeaderListSize: 4096, maxFrameSize: 32768 });
  // Three streams sent at once, before the client has the server's SETTINGS (so it cannot
  // hold the third back itself): the server refuses the one over the limit.
  const eager = session(t, port, ca);
  const all = [0, 1, 2].map((i) =>
    h2request(eager, { ':method': 'GET', ':path': i < 2 ? '/slow' : '/fast', ':authority': 'gw.test' }).catch((e: NodeJS.ErrnoException) => e),
  );
  const third = await all[2]!;
  t.true(third instanceof Error);
  t.regex((third as Error).message, /REFUSED_STREAM/);
  while (waiting.length < 2) await new Promise((r) => setTimeout(r, 20));
  for (const w of waiting) w();
  for (const r of await Promise.all(all.slice(0, 2))) t.is((r as { body: Buffer }).body.toString(), 'slow');

  const s = session(t, port, ca);
  await new Promise((resolve) => s.once('remoteSettings', resolve));
  t.is(s.remoteSettings.maxConcurrentStreams, 2);
  t.is(s.remoteSettings.maxHeaderListSize, 4096);
  t.is(s.remoteSettings.maxFrameSize, 32768);

  const big = await h2request(s, { ':method': 'GET', ':path': '/fast', ':authority': 'gw.test', 'x-big': 'a'.repeat(8000) }).catch((e: Error) => e);
  t.true(big instanceof Error);
  t.regex((big as Error).message, /ENHANCE_YOUR_CALM/);
  // Neither closes the connection: the next stream works.
  t.is((await h2request(s, { ':method': 'GET', ':path': '/fast', ':authority': 'gw.test' })).body.toString(), 'fast');
  void constants;
});

test('http2.enabled false: ALPN offers http/1.1 only', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { port, ca } = await h2Gateway(t, up.url, { enabled: false });
  const alpn = await new Promise<string | false>((resolve, reject) => {
    const so = tlsConnect({ host: '127.0.0.1', port, servername: 'gw.test', ca: ca.cert, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(so.alpnProtocol ?? false);
      so.end();
    });
    so.on('error', reject);
  });
  t.not(alpn, 'h2');
});

test('an HTTP/2 Host header that names another host than :authority is refused', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { port, ca } = await h2Gateway(t, up.url);
  const s = session(t, port, ca);
  const r = await h2request(s, { ':method': 'GET', ':path': '/', ':authority': 'gw.test', host: 'evil.test' });
  t.is(r.headers[':status'], 400);
  t.is(JSON.parse(r.body.toString()).error.code, 'CW_BAD_HOST');
  t.is(up.seen.length, 0);
  const same = await h2request(s, { ':method': 'GET', ':path': '/', ':authority': 'gw.test', host: 'GW.test' });
  t.is(same.headers[':status'], 200);
});

test('graceful shutdown: an HTTP/2 stream in flight finishes, the session gets a GOAWAY', async (t) => {
  const hold: { release?: () => void } = {};
  const up = await startRawUpstream(t, (req, res) => {
    req.resume();
    hold.release = () => res.end('finished');
  });
  const { port, ca, gw } = await h2Gateway(t, up.url);
  const s = session(t, port, ca);
  const goaway = new Promise((resolve) => s.once('goaway', resolve));
  const inflight = h2request(s, { ':method': 'GET', ':path': '/slow', ':authority': 'gw.test' });
  while (hold.release === undefined) await new Promise((r) => setTimeout(r, 20));
  const stopping = gw.shutdown();
  await goaway;
  hold.release();
  const r = await inflight;
  t.is(r.headers[':status'], 200);
  t.is(r.body.toString(), 'finished');
  t.deepEqual(await stopping, { drained: true });
});

test('no h2c on plain listeners: an Upgrade to h2c is refused, the prior-knowledge preface is not HTTP', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { port } = await startGateway(t, { upstreams: { svc: { endpoints: [up.url] } }, routes: [{ name: 'r', upstream: 'svc' }] });
  const { connect: netConnect } = await import('node:net');
  const send = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const so = netConnect(port, '127.0.0.1', () => so.write(text));
      let out = '';
      so.on('data', (c: Buffer) => (out += c.toString('latin1')));
      so.on('end', () => resolve(out));
      so.on('close', () => resolve(out));
      so.on('error', reject);
    });
  const upgrade = await send('GET / HTTP/1.1\r\nhost: gw.test\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n');
  t.regex(upgrade, /^HTTP\/1\.1 400 /);
  t.regex(upgrade, /CW_UPGRADE_NOT_SUPPORTED/);
  const preface = await send('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  t.notRegex(preface, /^HTTP\/1\.1 200/);
  t.false(preface.includes('\x00\x00'), 'no HTTP/2 frames came back');
  t.is(up.seen.length, 0);
});

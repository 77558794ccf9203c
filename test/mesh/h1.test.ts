// The upstream HTTP/1.1 client (mesh/h1.ts) against real sockets: framing of every kind split at
// every byte, keep-alive reuse and when a connection must not be reused, strict parsing of what an
// upstream sends, timeouts, the pool's limit and queue, request bodies, and refusing to write a
// request head a header value could split.
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { H1Pool, type H1Controller, type H1Handler, type H1Request } from '../../mesh/h1.ts';

interface Raw {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Every request head received, in order, with the connection number it came on. */
  heads: Array<{ conn: number; head: string }>;
  /** Bytes received on each connection. */
  received: string[];
  /** Connections closed by the client (by connection number). */
  closedByClient: Set<number>;
}

/**
 * A TCP server that answers each request head (no request bodies) with `answer(head, conn, n)`:
 * the bytes to write, written in pieces of `split` bytes (a write per piece, with a pause between).
 */
async function rawServer(
  t: ExecutionContext,
  answer: (head: string, conn: number, n: number, socket: Socket) => string | Buffer | null,
  split = 0,
): Promise<Raw> {
  const raw: Raw = { port: 0, connections: 0, heads: [], received: [], closedByClient: new Set() };
  const sockets = new Set<Socket>();
  const server: Server = createNetServer((socket) => {
    const conn = raw.connections++;
    raw.received[conn] = '';
    sockets.add(socket);
    let buf = '';
    let n = 0;
    socket.on('data', (d) => {
      raw.received[conn] += d.toString('latin1');
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        raw.heads.push({ conn, head });
        const out = answer(head, conn, n++, socket);
        if (out === null) continue;
        const bytes = Buffer.isBuffer(out) ? out : Buffer.from(out, 'latin1');
        if (split <= 0) socket.write(bytes);
        else void writeSplit(socket, bytes, split);
      }
    });
    socket.on('end', () => raw.closedByClient.add(conn));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  raw.port = (server.address() as AddressInfo).port;
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return raw;
}

async function writeSplit(socket: Socket, bytes: Buffer, size: number): Promise<void> {
  for (let i = 0; i < bytes.length && !socket.destroyed; i += size) {
    socket.write(bytes.subarray(i, i + size));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

interface Outcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  error: (Error & { code?: string }) | null;
  /** Whether onResponseStart came before the error. */
  started: boolean;
}

function send(pool: H1Pool, req: Partial<H1Request> = {}, hooks: Partial<H1Handler> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: 0, headers: {}, body: '', error: null, started: false };
    const chunks: Buffer[] = [];
    let calls = 0;
    pool.dispatch(
      { method: 'GET', path: '/', headers: { host: 'up.test' }, body: null, headersTimeout: 5000, bodyTimeout: 5000, ...req },
      {
        onRequestStart: (c) => hooks.onRequestStart?.(c),
        onResponseStart: (c, status, headers) => {
          out.status = status;
          out.headers = headers;
          out.started = true;
          hooks.onResponseStart?.(c, status, headers);
        },
        onResponseData: (c, chunk) => {
          chunks.push(Buffer.from(chunk));
          hooks.onResponseData?.(c, chunk);
        },
        onResponseEnd: () => {
          calls++;
          out.body = Buffer.concat(chunks).toString('latin1');
          // A second terminal call would be a bug: resolve after a turn so it would be seen.
          setImmediate(() => resolve(calls === 1 ? out : { ...out, error: new Error(`${calls} terminal calls`) }));
        },
        onResponseError: (_c, err) => {
          calls++;
          out.error = err;
          out.body = Buffer.concat(chunks).toString('latin1');
          setImmediate(() => resolve(calls === 1 ? out : { ...out, error: new Error(`${calls} terminal calls`) }));
        },
      },
    );
  });
}

function pool(t: ExecutionContext, port: number, opts: { connections?: number; connectTimeoutMs?: number; origin?: string } = {}): H1Pool {
  const p = new H1Pool(opts.origin ?? `http://127.0.0.1:${port}`, { connections: opts.connections ?? 4, connectTimeoutMs: opts.connectTimeoutMs ?? 2000 });
  t.teardown(() => p.destroy());
  return p;
}

const OK = (body: string, extra = '') => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${extra}\r\n${body}`;

test('keep-alive: sequential requests share one connection, and the request head is what was asked', async (t) => {
  const raw = await rawServer(t, () => OK('hello'));
  const p = pool(t, raw.port);
  for (let i = 0; i < 3; i++) {
    const r = await send(p, { path: `/items/${i}?q=1`, headers: { host: 'up.test', 'x-multi': ['a', 'b'] } });
    t.is(r.error, null);
    t.is(r.status, 200);
    t.is(r.body, 'hello');
    t.is(r.headers['content-type'], 'text/plain');
  }
  t.is(raw.connections, 1);
  t.is(raw.heads[2]!.head, 'GET /items/2?q=1 HTTP/1.1\r\nconnection: keep-alive\r\nhost: up.test\r\nx-multi: a\r\nx-multi: b');
  t.deepEqual(p.counts, { open: 1, idle: 1, queued: 0 });
});

const CHUNKED =
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n' +
  '5;ext=1\r\nhello\r\n1\r\n,\r\nA  \r\n world!!!!\r\n0\r\nx-trailer: yes\r\n\r\n';

for (const split of [1, 2, 7]) {
  test(`a chunked response arriving ${split} byte(s) at a time decodes, keeps duplicate headers, and the connection is reused`, async (t) => {
    const raw = await rawServer(t, () => CHUNKED, split);
    const p = pool(t, raw.port);
    const a = await send(p);
    t.is(a.error, null);
    t.is(a.body, 'hello, world!!!!');
    t.deepEqual(a.headers['set-cookie'], ['a=1', 'b=2']);
    const b = await send(p);
    t.is(b.body, 'hello, world!!!!');
    t.is(raw.connections, 1);
  });
}

/**
 * Sequential requests on one connection, each answered with `size` bytes of its own letter; the
 * handler keeps the chunks it is given as they are (views) and a copy of each, and says from `held`
 * whether it still holds them.
 */
async function keptChunks(
  t: ExecutionContext,
  size: number,
  held: (() => boolean) | undefined,
  count = 4,
): Promise<{ views: Buffer[][]; copies: string[] }> {
  const raw = await rawServer(t, (_head, _conn, n) => OK(String.fromCharCode(97 + n).repeat(size)));
  const p = pool(t, raw.port, { connections: 1 });
  const views: Buffer[][] = [];
  const copies: string[] = [];
  for (let i = 0; i < count; i++) {
    const mine: Buffer[] = [];
    views.push(mine);
    let copy = '';
    await new Promise<void>((resolve, reject) => {
      const handler: H1Handler = {
        onRequestStart: () => undefined,
        onResponseStart: () => undefined,
        onResponseData: (_c, chunk) => {
          mine.push(chunk);
          copy += chunk.toString('latin1');
        },
        onResponseEnd: () => resolve(),
        onResponseError: (_c, err) => reject(err),
      };
      if (held !== undefined) handler.chunksHeld = held;
      p.dispatch({ method: 'GET', path: `/${i}`, headers: { host: 'up.test' }, body: null, headersTimeout: 5000, bodyTimeout: 5000 }, handler);
    });
    copies.push(copy);
  }
  t.is(raw.connections, 1);
  return { views, copies };
}

const letters = (n: number, size: number) => String.fromCharCode(97 + n).repeat(size);

test('read buffers: chunks a handler holds (or may keep, without chunksHeld) keep their bytes while later responses are read', async (t) => {
  for (const held of [() => true, undefined]) {
    const { views } = await keptChunks(t, 200_000, held);
    views.forEach((chunks, n) => t.true(Buffer.concat(chunks).toString('latin1') === letters(n, 200_000), `response ${n} intact`));
    // Each read went into a buffer of its own.
    t.is(new Set(views.flat().map((c) => c.buffer)).size, views.flat().length);
  }
});

test('read buffers: a handler that holds nothing gets every read in the same buffer', async (t) => {
  const { views, copies } = await keptChunks(t, 100_000, () => false);
  copies.forEach((body, n) => t.true(body === letters(n, 100_000), `response ${n} whole`));
  t.true(views.flat().length > 4, 'several reads');
  t.is(new Set(views.flat().map((c) => c.buffer)).size, 1);
  // The views kept from the first response show a later one's bytes: the buffer was read into again.
  t.false(Buffer.concat(views[0]!).toString('latin1') === letters(0, 100_000));
});

test('no body for HEAD, 204 and 304 even with a Content-Length; 1xx heads are skipped', async (t) => {
  const raw = await rawServer(t, (head) => {
    if (head.startsWith('HEAD')) return 'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n';
    if (head.includes('/204')) return 'HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n';
    if (head.includes('/304')) return 'HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n';
    return 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n' + OK('final');
  });
  const p = pool(t, raw.port);
  const head = await send(p, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body, '');
  t.is((await send(p, { path: '/204' })).status, 204);
  t.is((await send(p, { path: '/304' })).status, 304);
  const final = await send(p, { path: '/hints' });
  t.is(final.status, 200);
  t.is(final.body, 'final');
  t.is(final.error, null);
  t.is(raw.connections, 1, 'every one of them left the connection reusable');
});

test('a body delimited by the connection closing is delivered; that connection is not reused', async (t) => {
  const raw = await rawServer(t, (_h, _c, _n, socket) => {
    socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end');
    return null;
  });
  const p = pool(t, raw.port);
  const a = await send(p);
  t.is(a.error, null);
  t.is(a.body, 'until the end');
  await send(p);
  t.is(raw.connections, 2);
});

test('Connection: close, HTTP/1.0 and a Keep-Alive timeout at or under a second each end reuse', async (t) => {
  const raw = await rawServer(t, (head) =>
    head.includes('/close') ? OK('x', 'connection: close\r\n') : head.includes('/ka') ? OK('x', 'keep-alive: timeout=1\r\n') : 'HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx',
  );
  const p = pool(t, raw.port);
  for (const path of ['/close', '/http10', '/ka']) {
    const r = await send(p, { path });
    t.is(r.body, 'x', path);
  }
  await send(p, { path: '/close' });
  t.is(raw.connections, 4);
});

const BROKEN: Array<[string, string]> = [
  ['Transfer-Encoding and Content-Length together', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
  ['differing Content-Lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd'],
  ['a signed Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc'],
  ['not HTTP', 'ICY 200 OK\r\ncontent-length: 0\r\n\r\n'],
  ['HTTP/2 in an HTTP/1 status line', 'HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n'],
  ['a status that is not three digits', 'HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n'],
  ['a space in a header name', 'HTTP/1.1 200 OK\r\nbad name: x\r\ncontent-length: 0\r\n\r\n'],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nx-a: 1\r\n folded: 2\r\ncontent-length: 0\r\n\r\n'],
  ['a bare LF inside the head', 'HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\ncontent-length: 0\r\n\r\n'],
  ['a bare CR inside a header value', 'HTTP/1.1 200 OK\r\nx-a: 1\rx-b: 2\r\ncontent-length: 0\r\n\r\n'],
  ['a bare CR in the reason phrase', 'HTTP/1.1 200 O\rK\r\ncontent-length: 0\r\n\r\n'],
  ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nx-a: 1\u00002\r\ncontent-length: 0\r\n\r\n'],
  ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
  ['a chunk not followed by CRLF', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n'],
  ['a 101 to a request that asked for no upgrade', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n'],
  ['a header line without a colon', 'HTTP/1.1 200 OK\r\njust words\r\ncontent-length: 0\r\n\r\n'],
];

for (const [what, response] of BROKEN) {
  test(`an invalid response is an error, and its connection is closed: ${what}`, async (t) => {
    const raw = await rawServer(t, (_h, conn) => (conn === 0 ? response : OK('fine')));
    const p = pool(t, raw.port);
    const r = await send(p);
    t.is(r.error?.code, 'CW_H1_BAD_RESPONSE');
    t.regex(r.error!.message, /invalid response from the upstream/);
    const next = await send(p);
    t.is(next.body, 'fine');
    t.is(raw.connections, 2, 'the next request got a new connection');
  });
}

test('a response head larger than 64 KiB is an error', async (t) => {
  const raw = await rawServer(t, () => `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70_000)}\r\ncontent-length: 0\r\n\r\n`);
  const r = await send(pool(t, raw.port));
  t.is(r.error?.code, 'CW_H1_BAD_RESPONSE');
});

test('bytes after the end of a response are never read as the next response', async (t) => {
  const smuggled = OK('smuggled');
  const raw = await rawServer(t, (_h, conn) => (conn === 0 ? OK('first') + smuggled : OK('clean')));
  const p = pool(t, raw.port);
  t.is((await send(p)).body, 'first');
  const second = await send(p);
  t.is(second.body, 'clean');
  t.is(raw.connections, 2);
});

test('bytes on an idle connection close it; the next request gets a new one', async (t) => {
  const raw = await rawServer(t, (_h, _c, _n, socket) => {
    socket.write(OK('one'));
    setTimeout(() => socket.write(OK('unsolicited')), 20);
    return null;
  });
  const p = pool(t, raw.port);
  t.is((await send(p)).body, 'one');
  await new Promise<void>((resolve) => {
    const check = () => (p.counts.open === 0 ? resolve() : setTimeout(check, 10));
    check();
  });
  t.is((await send(p)).body, 'one');
  t.is(raw.connections, 2);
});

test('timeouts: no response head, a silent body, a connection that never completes its handshake', async (t) => {
  const raw = await rawServer(t, (head) => (head.includes('/silent-body') ? 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc' : null));
  const p = pool(t, raw.port);
  const head = await send(p, { path: '/no-answer', headersTimeout: 150 });
  t.is(head.error?.code, 'CW_H1_HEADERS_TIMEOUT');
  t.false(head.started);
  const body = await send(p, { path: '/silent-body', bodyTimeout: 150 });
  t.is(body.error?.code, 'CW_H1_BODY_TIMEOUT');
  t.true(body.started);
  t.is(body.body, 'abc');
  // A TCP server that accepts and never answers a TLS ClientHello.
  const mute = await rawServer(t, () => null);
  const tls = pool(t, mute.port, { origin: `https://127.0.0.1:${mute.port}`, connectTimeoutMs: 150 });
  const connect = await send(tls);
  t.is(connect.error?.code, 'CW_H1_CONNECT_TIMEOUT');
});

test('a refused connection and a connection closed before any answer are errors with their codes', async (t) => {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  t.is((await send(pool(t, closedPort))).error?.code, 'ECONNREFUSED');
  const raw = await rawServer(t, (_h, _c, _n, socket) => {
    socket.destroy();
    return null;
  });
  const r = await send(pool(t, raw.port));
  t.true(r.error?.code === 'CW_H1_CLOSED' || r.error?.code === 'ECONNRESET', String(r.error?.code));
});

test('a header value with CR LF is never written: the exchange fails before a byte leaves', async (t) => {
  const raw = await rawServer(t, () => OK('x'));
  const p = pool(t, raw.port);
  for (const headers of [{ host: 'a', 'x-claim': 'v\r\nx-admin: 1' }, { host: 'a', 'x-claim': 'v\nx' }, { host: 'a', 'x-claim': 'v\rx' }, { host: 'a', 'x-claim': 'snow ☃' }]) {
    const r = await send(p, { headers });
    t.is(r.error?.code, 'CW_H1_BAD_REQUEST');
  }
  t.is((await send(p, { path: '/a b' })).error?.code, 'CW_H1_BAD_REQUEST');
  // The pool still works, and the server never saw any of the refused heads.
  t.is((await send(p)).body, 'x');
  t.is(raw.heads.length, 1);
  t.notRegex(raw.received.join(''), /x-admin|x-claim/);
});

test('request bodies: streamed as they are with a Content-Length, chunked without one', async (t) => {
  const seen: Array<{ te?: string; cl?: string; body: string }> = [];
  const server = createHttpServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      seen.push({ te: req.headers['transfer-encoding'], cl: req.headers['content-length'], body: Buffer.concat(parts).toString() });
      res.end('got it');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const p = pool(t, (server.address() as AddressInfo).port);
  const withLength = await send(p, { method: 'POST', headers: { host: 'a', 'content-length': '11' }, body: Readable.from([Buffer.from('hello '), Buffer.from('world')]) });
  t.is(withLength.body, 'got it');
  const chunked = await send(p, { method: 'POST', headers: { host: 'a' }, body: Readable.from([Buffer.from('a'.repeat(70_000)), Buffer.from('b')]) });
  t.is(chunked.body, 'got it');
  t.deepEqual(seen[0], { te: undefined, cl: '11', body: 'hello world' });
  t.is(seen[1]!.te, 'chunked');
  t.is(seen[1]!.body, 'a'.repeat(70_000) + 'b');
  // A body stream that fails fails the exchange with its error.
  const failing = new Readable({ read() {} });
  const pending = send(p, { method: 'POST', headers: { host: 'a' }, body: failing });
  failing.push('partial');
  setTimeout(() => failing.destroy(Object.assign(new Error('too large'), { code: 'BODY_LIMIT' })), 20);
  t.is((await pending).error?.code, 'BODY_LIMIT');
});

test('the pool opens at most `connections`; the rest wait in order, and one aborted while waiting leaves', async (t) => {
  let open = 0;
  let most = 0;
  const server = createHttpServer((req, res) => {
    setTimeout(() => res.end(req.url), 30);
  });
  server.on('connection', (s: Socket) => {
    most = Math.max(most, ++open);
    s.on('close', () => open--);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const p = pool(t, (server.address() as AddressInfo).port, { connections: 2 });
  let abortMe: H1Controller | null = null;
  const all = [1, 2, 3, 4, 5].map((i) =>
    send(p, { path: `/${i}` }, i === 4 ? { onRequestStart: (c) => (abortMe = c) } : {}),
  );
  t.is(p.counts.queued, 3);
  abortMe!.abort(Object.assign(new Error('client left'), { code: 'GONE' }));
  t.is(p.counts.queued, 2);
  const results = await Promise.all(all);
  t.deepEqual(
    results.map((r) => r.body || r.error?.code),
    ['/1', '/2', '/3', 'GONE', '/5'],
  );
  t.is(most, 2);
});

test('pause and resume: a 4 MiB body arrives whole through a handler that pauses on every chunk', async (t) => {
  const big = Buffer.alloc(4 * 1024 * 1024, 'x');
  const server = createHttpServer((_req, res) => res.end(big));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const p = pool(t, (server.address() as AddressInfo).port);
  let pauses = 0;
  const r = await send(p, {}, {
    onResponseData: (c) => {
      pauses++;
      c.pause();
      setImmediate(() => c.resume());
    },
  });
  t.is(r.error, null);
  t.is(r.body.length, big.length);
  t.true(pauses > 1);
});

test('a handler that throws fails its exchange instead of the process', async (t) => {
  const raw = await rawServer(t, () => OK('x'));
  const p = pool(t, raw.port);
  const r = await send(p, {}, {
    onResponseStart: () => {
      throw new Error('handler bug');
    },
  });
  t.is(r.error?.message, 'handler bug');
  t.is((await send(p)).body, 'x');
});

test('close(): idle connections close at once, an exchange in flight finishes first', async (t) => {
  const raw = await rawServer(t, (head, _c, _n, socket) => {
    if (head.includes('/slow')) setTimeout(() => socket.write(OK('slow')), 50);
    else return OK('quick');
    return null;
  });
  const p = pool(t, raw.port, { connections: 2 });
  await Promise.all([send(p), send(p)]);
  t.is(p.counts.idle, 2);
  const slow = send(p, { path: '/slow' });
  const closed = p.close();
  t.is(p.counts.idle, 0);
  t.is((await slow).body, 'slow');
  await closed;
  t.deepEqual(p.counts, { open: 0, idle: 0, queued: 0 });
  t.true(p.closed);
});

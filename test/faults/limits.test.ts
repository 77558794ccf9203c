// Resource limits: a connection flood meets maxConnections with a clean refusal, a full
// upstream pool answers 503 at once, a trickled body and a slowloris head are cut off, too many
// headers are a 431 (never silently cut), and a gateway process under 10× the normal load stays
// inside its memory budget.
import { connect, type Socket } from 'node:net';
import test from 'ava';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startRawUpstream, startUpstream } from '../helpers/upstream.ts';
import { startGatewayProcess } from '../hardening/helpers/process.ts';
import { exchange } from '../hardening/helpers/raw.ts';
import { load, memoryOf } from './helpers/load.ts';

/** Open a connection and send one keep-alive GET: "200" when answered, "closed" when refused. */
function probe(port: number, keep: Socket[]): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    let done = false;
    const finish = (v: string) => {
      if (!done) {
        done = true;
        resolve(v);
      }
    };
    s.on('error', () => undefined);
    s.on('connect', () => s.write('GET /flood HTTP/1.1\r\nHost: gw.test\r\n\r\n'));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m && got.includes('\r\n\r\n')) {
        keep.push(s); // held open: it keeps its place under the limit
        finish(m[1]!);
      }
    });
    s.on('close', () => finish('closed'));
  });
}

test('a flood of connections meets maxConnections: the ones beyond it are closed before any byte, the rest are served, and the listener recovers', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, maxConnections: 20 },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const held: Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const outcomes: string[] = [];
  // One after the other, each served connection staying open: exactly 20 fit.
  for (let i = 0; i < 60; i++) outcomes.push(await probe(gw.port, held));
  t.is(outcomes.filter((o) => o === '200').length, 20);
  t.is(outcomes.filter((o) => o === 'closed').length, 40);
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  t.regex(metrics, /causeway_connections_dropped_total\{listener="default"\} 40/);
  // Served connections still work; once they close, new ones are accepted again.
  for (const s of held.splice(0)) s.destroy();
  let after = 'closed';
  for (let i = 0; i < 200 && after !== '200'; i++) after = await probe(gw.port, held);
  t.is(after, '200');
});

test('an endpoint whose connections are busy and whose queue is full: 503 CW_UPSTREAM_POOL_FULL at once, nothing sent upstream', async (t) => {
  const waiting: Array<() => void> = [];
  let seen = 0;
  let arrived!: () => void;
  const first = new Promise<void>((r) => (arrived = r));
  const up = await startRawUpstream(t, (_req, res) => {
    seen++;
    arrived();
    waiting.push(() => res.end('done'));
  });
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url], connections: 1, maxPending: 1 } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const a = rawRequest({ port: gw.port, path: '/a' });
  await first; // one request holds the only connection
  const b = rawRequest({ port: gw.port, path: '/b' }); // queued
  const c = rawRequest({ port: gw.port, path: '/c' }); // one too many
  const d = rawRequest({ port: gw.port, path: '/d' });
  const refused = await Promise.race([c, d]);
  t.is(refused.status, 503);
  t.is(refused.json().error.code, 'CW_UPSTREAM_POOL_FULL');
  const other = await (refused === (await c) ? d : c);
  t.is(other.status, 503);
  while (waiting.length > 0 || seen < 2) {
    waiting.shift()?.();
    if (waiting.length === 0 && seen < 2) await new Promise<void>((r) => up.server.once('request', () => setImmediate(r)));
  }
  t.is((await a).status, 200);
  t.is((await b).status, 200);
  t.is(seen, 2, 'the refused requests never reached the upstream');
});

test('a body trickled steadily past requestTimeouts.body: 408 CW_REQUEST_TIMEOUT and the upstream request is aborted', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, requestTimeouts: { bodyIdle: '10s', body: '400ms' } },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  // One byte every 50 ms never trips bodyIdle; the total limit ends it.
  const chunks = ['POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n\r\n', ...Array.from({ length: 200 }, () => 'x')];
  const ex = await exchange(gw.port, chunks, { gapMs: 50, end: false, safetyMs: 20_000 });
  t.true(ex.closedByPeer, 'the gateway closed the connection');
  t.is(ex.responses[0]?.status, 408);
  t.true(ex.responses[0]!.body.includes('CW_REQUEST_TIMEOUT'));
  t.is(up.seen.length, 0, 'no truncated body was passed off as complete');
});

test('slowloris: a request head trickled past requestTimeouts.headers is closed, and other clients are served meanwhile', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, requestTimeouts: { headers: '500ms' }, maxConnections: 50 },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  // 20 connections that each send one more header line every 100 ms and never finish the head.
  const lines = ['GET / HTTP/1.1\r\nHost: gw.test\r\n', ...Array.from({ length: 600 }, (_, i) => `X-Slow-${i}: a\r\n`)];
  const slow = Array.from({ length: 20 }, () => exchange(gw.port, lines, { gapMs: 100, end: false, safetyMs: 60_000 }));
  const served = await rawRequest({ port: gw.port, path: '/meanwhile' });
  t.is(served.status, 200);
  for (const ex of await Promise.all(slow)) {
    t.true(ex.closedByPeer, 'the gateway closed the slow connection');
    t.true(ex.responses.every((r) => r.status === 408), ex.raw.slice(0, 60));
  }
  t.false(up.seen.some((s) => s.url === '/'), 'no slow request reached the upstream');
});

test('more header fields than gateway.maxHeaders: 431 CW_TOO_MANY_HEADERS, not a silently shortened request', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, maxHeaders: 50 },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const head = (n: number) => `GET /h HTTP/1.1\r\nHost: gw.test\r\n${Array.from({ length: n - 2 }, (_, i) => `X-H${i}: v\r\n`).join('')}Connection: close\r\n\r\n`;
  const atLimit = await exchange(gw.port, head(50), { end: false });
  t.is(atLimit.responses[0]?.status, 200, `exactly the limit passes: ${atLimit.raw.slice(0, 300)}`);
  t.is(Object.keys(up.seen[0]!.headers).filter((h) => h.startsWith('x-h')).length, 48, 'with every header');
  const over = await exchange(gw.port, head(51), { end: false });
  t.is(over.responses[0]?.status, 431);
  t.true(over.responses[0]!.body.includes('CW_TOO_MANY_HEADERS'));
  const flood = await exchange(gw.port, head(3000), { end: false });
  t.is(flood.responses[0]?.status, 431, 'far past node’s own 2000 too');
  t.is(up.seen.length, 1);
});

test('10× the normal load: the gateway process stays inside its memory budget and fails no request', async (t) => {
  const up = await startUpstream(t, 'svc', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('x'.repeat(4096));
  });
  const gp = await startGatewayProcess(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, accessLog: { enabled: false } },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const pid = gp.cli.child.pid!;
  // "Normal": 10 clients. Then 10×: 100 clients, each on its own connections.
  const normal = await load({ port: gp.port, total: 500, concurrency: 10 });
  t.deepEqual(normal.failed, []);
  const base = memoryOf(pid);
  const heavy = await load({ port: gp.port, total: 4000, concurrency: 100 });
  t.deepEqual(heavy.failed, [], JSON.stringify(heavy.tally));
  const peak = memoryOf(pid).peak;
  const BUDGET = 384 * 1024 * 1024; // docs/operations.md "Resource limits"
  t.true(peak < BUDGET, `peak RSS ${Math.round(peak / 1048576)} MiB (after normal load ${Math.round(base.rss / 1048576)} MiB)`);
  t.log(`peak RSS ${Math.round(peak / 1048576)} MiB; after normal load ${Math.round(base.rss / 1048576)} MiB`);
});

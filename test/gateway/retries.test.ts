// Retries in the upstream client: idempotent requests without a body go to another endpoint
// when a try fails before any response byte; everything else gets the failure; a budget bounds
// how many retries are made.
import test from 'ava';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { freePort, startRawUpstream, startUpstream } from '../helpers/upstream.ts';

/** The value of one sample line in Prometheus text format, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function metrics(adminUrl: string): Promise<string> {
  return (await fetch(`${adminUrl}/metrics`)).text();
}

/** An endpoint that closes every connection as soon as a request arrives, without answering. */
async function resetting(t: Parameters<typeof startRawUpstream>[0]) {
  let seen = 0;
  const up = await startRawUpstream(t, (req) => {
    seen++;
    req.socket.destroy();
  });
  return { ...up, seen: () => seen };
}

async function statuses(port: number, n: number, method = 'GET', body?: string): Promise<Array<{ status: number; code?: string; upstream?: string }>> {
  const out: Array<{ status: number; code?: string; upstream?: string }> = [];
  for (let i = 0; i < n; i++) {
    const r = await rawRequest({ port, path: `/r${i}`, method, ...(body !== undefined ? { body, headers: { 'content-type': 'text/plain' } } : {}) });
    const code = r.status >= 400 && r.text.startsWith('{"error"') ? r.json().error.code : undefined;
    out.push({ status: r.status, ...(code ? { code } : {}), ...(typeof r.headers['x-upstream'] === 'string' ? { upstream: r.headers['x-upstream'] } : {}) });
  }
  return out;
}

test('GET, HEAD, PUT and DELETE are retried on the other endpoint after a reset; POST and bodies are not', async (t) => {
  const bad = await resetting(t);
  const good = await startUpstream(t, 'good');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [bad.url, good.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']) {
    const got = await statuses(gw.port, 6, method);
    t.deepEqual(got.map((g) => g.status), [200, 200, 200, 200, 200, 200], method);
  }
  t.true(bad.seen() >= 5, 'the resetting endpoint was tried');
  const text = await metrics(gw.adminUrl);
  t.is(sample(text, 'causeway_upstream_retries_total', { upstream: 'svc', reason: 'reset' }), bad.seen());

  // Not idempotent, or a body that already streamed: the failure goes to the client.
  const posts = await statuses(gw.port, 4, 'POST');
  t.deepEqual(posts.filter((p) => p.status !== 200).map((p) => `${p.status} ${p.code}`), ['502 CW_UPSTREAM_RESET', '502 CW_UPSTREAM_RESET']);
  const puts = await statuses(gw.port, 4, 'PUT', 'payload');
  t.deepEqual(puts.filter((p) => p.status !== 200).map((p) => `${p.status} ${p.code}`), ['502 CW_UPSTREAM_RESET', '502 CW_UPSTREAM_RESET']);
  t.is(good.seen.filter((s) => s.method === 'PUT' && s.body === 'payload').length, 2, 'each body was sent once');
});

test('a refused connection is retried on another endpoint and ejects the refusing one; attempts: 0 turns retries off', async (t) => {
  const dead = await freePort();
  const dead2 = await freePort();
  const good = await startUpstream(t, 'good');
  const gw = await startGateway(t, {
    upstreams: {
      on: { endpoints: [`http://127.0.0.1:${dead}`, good.url], ejectFor: '0s' },
      off: { endpoints: [`http://127.0.0.1:${dead2}`, good.url], ejectFor: '0s', retries: { attempts: 0 } },
    },
    routes: [
      { name: 'on', upstream: 'on', match: { prefix: '/on' } },
      { name: 'off', upstream: 'off', match: { prefix: '/off' } },
    ],
  });
  for (let i = 0; i < 6; i++) t.is((await rawRequest({ port: gw.port, path: '/on/x' })).status, 200);
  const off: number[] = [];
  for (let i = 0; i < 6; i++) off.push((await rawRequest({ port: gw.port, path: '/off/x' })).status);
  t.deepEqual(off.sort(), [200, 200, 200, 502, 502, 502]);
  const text = await metrics(gw.adminUrl);
  // Round-robin puts the refusing endpoint first for every request (ejectFor 0 never skips it).
  t.is(sample(text, 'causeway_upstream_retries_total', { upstream: 'on', reason: 'connect-failure' }), 6);
  t.is(sample(text, 'causeway_upstream_retries_total', { upstream: 'off', reason: 'connect-failure' }), 0);
  t.is(sample(text, 'causeway_upstream_connect_failures', { upstream: 'on', endpoint: `http://127.0.0.1:${dead}` }), 6, 'the failed try still counts for ejection');
});

test('configured statuses are retried (the first body is dropped); unlisted ones pass through', async (t) => {
  let n503 = 0;
  const busy = await startUpstream(t, 'busy', (_req, res) => {
    n503++;
    res.writeHead(503, { 'content-type': 'text/plain', 'x-upstream': 'busy' });
    res.end('busy, try elsewhere');
  });
  const good = await startUpstream(t, 'good');
  const gw = await startGateway(t, {
    upstreams: {
      retried: { endpoints: [busy.url, good.url], retries: { on: ['connect-failure', 'reset', 503] } },
      plain: { endpoints: [busy.url, good.url] },
    },
    routes: [
      { name: 'retried', upstream: 'retried', match: { prefix: '/a' } },
      { name: 'plain', upstream: 'plain', match: { prefix: '/b' } },
    ],
  });
  for (let i = 0; i < 6; i++) {
    const r = await rawRequest({ port: gw.port, path: '/a/x' });
    t.is(r.status, 200);
    t.is(r.headers['x-upstream'], 'good');
  }
  t.is(n503, 6, 'round-robin puts the busy endpoint first for every request');
  const plain: number[] = [];
  for (let i = 0; i < 4; i++) plain.push((await rawRequest({ port: gw.port, path: '/b/x' })).status);
  t.deepEqual(plain.sort(), [200, 200, 503, 503]);
  t.is(sample(await metrics(gw.adminUrl), 'causeway_upstream_retries_total', { upstream: 'retried', reason: 'status' }), 6);
});

test('an empty retry budget makes no retry and counts the refusal', async (t) => {
  const bad = await resetting(t);
  const good = await startUpstream(t, 'good');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [bad.url, good.url], retries: { budget: { ratio: 0, minPerSecond: 0 } } } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const got = await statuses(gw.port, 4);
  t.deepEqual(got.map((g) => g.status).sort(), [200, 200, 502, 502]);
  const text = await metrics(gw.adminUrl);
  t.is(sample(text, 'causeway_upstream_retry_budget_exhausted_total', { upstream: 'svc' }), 2);
  t.is(sample(text, 'causeway_upstream_retries_total', { upstream: 'svc', reason: 'reset' }), 0);
});

test('with every endpoint failing, a retry ends in the last failure, not a loop', async (t) => {
  const a = await resetting(t);
  const b = await resetting(t);
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [a.url, b.url], retries: { attempts: 3 } } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const r = await rawRequest({ port: gw.port, path: '/x' });
  t.is(r.status, 502);
  t.is(r.json().error.code, 'CW_UPSTREAM_RESET');
  t.is(a.seen() + b.seen(), 4, 'one try and three retries');
});

import test from 'ava';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { freePort, startUpstream } from '../helpers/upstream.ts';

test('proxies a request and sets forwarding headers and a request id', async (t) => {
  const up = await startUpstream(t, 'mono');
  const gw = await startGateway(t, { upstreams: { mono: { endpoints: [up.url] } }, routes: [{ name: 'all', upstream: 'mono' }] });
  const res = await rawRequest({ port: gw.port, path: '/hello?x=1&y=%2F', headers: { host: 'shop.example.com' } });
  t.is(res.status, 200);
  const id = res.headers['x-request-id'];
  t.regex(String(id), /^[0-9a-f-]{36}$/);
  const seen = up.seen[0]!;
  t.is(seen.url, '/hello?x=1&y=%2F');
  t.is(seen.headers.host, 'shop.example.com');
  t.is(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.is(seen.headers['x-forwarded-proto'], 'http');
  t.is(seen.headers['x-forwarded-host'], 'shop.example.com');
  t.is(seen.headers.forwarded, 'for=127.0.0.1;proto=http;host=shop.example.com');
  t.is(seen.headers['x-request-id'], id);
});

test('paths are normalised before matching and forwarding; hostile paths get 400', async (t) => {
  const up = await startUpstream(t, 'public');
  const gw = await startGateway(t, {
    upstreams: { public: { endpoints: [up.url] } },
    routes: [{ name: 'public', upstream: 'public', match: { prefix: '/public' } }],
  });
  const ok = async (path: string, expected: string) => {
    const res = await rawRequest({ port: gw.port, path });
    t.is(res.status, 200, path);
    t.is(res.json().url, expected, path);
  };
  await ok('/admin/../public', '/public');
  await ok('//public//a', '/public/a');
  await ok('/public/%2e%2e/public/x', '/public/x');
  await ok('/public/%7Euser', '/public/~user');
  await ok('/public/caf%c3%a9', '/public/caf%C3%A9');
  for (const path of ['/public/../../etc/passwd', '/public/a%2Fb', '/public/a%2fb', '/%2e%2e/public', '/public/%zz', '/public/a\\b']) {
    const res = await rawRequest({ port: gw.port, path });
    t.is(res.status, 400, path);
    t.is(res.json().error.code, 'CW_BAD_PATH', path);
    t.is(typeof res.json().error.message, 'string');
  }
  t.is(up.seen.length, 5, 'rejected paths never reach the upstream');
  const miss = await rawRequest({ port: gw.port, path: '/admin' });
  t.is(miss.status, 404);
  t.is(miss.json().error.code, 'CW_ROUTE_NOT_FOUND');
  t.is(miss.json().error.requestId, miss.headers['x-request-id']);
});

test('header rules, hop-by-hop removal and response headers', async (t) => {
  const up = await startUpstream(t, 'svc', (_req, res) => {
    res.writeHead(200, { 'x-internal': 'secret', 'x-keep': 'yes', connection: 'x-drop-me', 'x-drop-me': '1', 'keep-alive': 'timeout=5' });
    res.end('ok');
  });
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [
      {
        name: 'svc',
        upstream: 'svc',
        requestHeaders: { set: { 'X-Env': 'prod' }, add: { 'X-Tag': 'edge' }, remove: ['X-Debug'] },
        responseHeaders: { remove: ['x-internal'], set: { 'Cache-Control': 'no-store' } },
      },
    ],
  });
  const res = await rawRequest({
    port: gw.port,
    path: '/',
    headers: {
      'x-env': 'dev',
      'x-tag': 'client',
      'x-debug': '1',
      connection: 'keep-alive, x-hop',
      'x-hop': 'should not pass',
      te: 'trailers',
      'proxy-authorization': 'Basic abc',
      'keep-alive': 'timeout=100',
    },
  });
  t.is(res.status, 200);
  const h = up.seen[0]!.headers;
  t.is(h['x-env'], 'prod');
  t.is(h['x-tag'], 'client, edge');
  t.is(h['x-debug'], undefined);
  t.is(h['x-hop'], undefined);
  t.is(h.te, undefined);
  t.is(h['proxy-authorization'], undefined);
  t.is(h['keep-alive'], undefined);
  t.is(res.headers['x-internal'], undefined);
  t.is(res.headers['x-keep'], 'yes');
  t.is(res.headers['x-drop-me'], undefined);
  t.is(res.headers['cache-control'], 'no-store');
});

test('forwarded headers from an untrusted client are replaced; from a trusted proxy they are extended', async (t) => {
  const up = await startUpstream(t, 'svc');
  const spoof = {
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.example',
    forwarded: 'for=6.6.6.6',
    'x-request-id': 'client-chosen-id',
  };
  const untrusted = await startGateway(t, { upstreams: { svc: { endpoints: [up.url] } }, routes: [{ name: 'r', upstream: 'svc' }] });
  const a = await rawRequest({ port: untrusted.port, path: '/', headers: { ...spoof, host: 'real.example' } });
  t.not(a.headers['x-request-id'], 'client-chosen-id');
  let h = up.seen.at(-1)!.headers;
  t.is(h['x-forwarded-for'], '127.0.0.1');
  t.is(h['x-forwarded-proto'], 'http');
  t.is(h['x-forwarded-host'], 'real.example');
  t.is(h.forwarded, 'for=127.0.0.1;proto=http;host=real.example');
  t.not(h['x-request-id'], 'client-chosen-id');

  const trusted = await startGateway(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, trustedProxies: ['127.0.0.0/8'] },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const b = await rawRequest({ port: trusted.port, path: '/', headers: { ...spoof, host: 'real.example' } });
  t.is(b.headers['x-request-id'], 'client-chosen-id');
  h = up.seen.at(-1)!.headers;
  t.is(h['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
  t.is(h['x-forwarded-proto'], 'https');
  t.is(h['x-forwarded-host'], 'evil.example');
  t.regex(String(h.forwarded), /^for=6\.6\.6\.6, for=6\.6\.6\.6;proto=https;host=evil\.example$/);
  t.is(h['x-request-id'], 'client-chosen-id');
});

test('path rewrites: replace prefix, strip prefix, template with params', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [
      { name: 'v2', upstream: 'svc', match: { prefix: '/api/v1' }, rewrite: { prefix: '/v2' } },
      { name: 'strip', upstream: 'svc', match: { prefix: '/strip/' }, rewrite: { prefix: '/' } },
      { name: 'tpl', upstream: 'svc', match: { path: '/u/:id/o/:oid' }, rewrite: { path: '/orders/:oid/by/:id' } },
    ],
  });
  const path = async (p: string) => (await rawRequest({ port: gw.port, path: p })).json().url;
  t.is(await path('/api/v1/users?q=1'), '/v2/users?q=1');
  t.is(await path('/api/v1'), '/v2');
  t.is(await path('/strip/a/b'), '/a/b');
  t.is(await path('/strip'), '/');
  t.is(await path('/u/7/o/99'), '/orders/99/by/7');
});

test('round-robin over endpoints and weighted backends', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const c = await startUpstream(t, 'c');
  const gw = await startGateway(t, {
    upstreams: { ab: { endpoints: [a.url, b.url] }, c: { endpoints: [c.url] } },
    routes: [
      { name: 'rr', upstream: 'ab', match: { prefix: '/rr' } },
      { name: 'split', backends: [{ upstream: 'ab', weight: 0 }, { upstream: 'c', weight: 5 }], match: { prefix: '/split' } },
    ],
  });
  const names: string[] = [];
  for (let i = 0; i < 6; i++) names.push((await rawRequest({ port: gw.port, path: '/rr' })).json().upstream);
  t.deepEqual(names.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
  for (let i = 0; i < 5; i++) t.is((await rawRequest({ port: gw.port, path: '/split' })).json().upstream, 'c');
});

test('upstream refused → 502, then the endpoint is ejected → 503', async (t) => {
  const port = await freePort();
  const gw = await startGateway(t, {
    upstreams: { gone: { endpoints: [`http://127.0.0.1:${port}`], ejectFor: '1m' } },
    routes: [{ name: 'gone', upstream: 'gone' }],
  });
  const first = await rawRequest({ port: gw.port, path: '/' });
  t.is(first.status, 502);
  t.is(first.json().error.code, 'CW_UPSTREAM_REFUSED');
  t.is(first.json().error.requestId, first.headers['x-request-id']);
  const second = await rawRequest({ port: gw.port, path: '/' });
  t.is(second.status, 503);
  t.is(second.json().error.code, 'CW_NO_HEALTHY_ENDPOINT');
});

test('upstream too slow → 504; upstream resets → 502', async (t) => {
  const up = await startUpstream(t, 'bad', (req, res) => {
    if (req.url === '/slow') {
      const timer = setTimeout(() => res.end('late'), 5000);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    req.socket.destroy();
  });
  const gw = await startGateway(t, {
    upstreams: { bad: { endpoints: [up.url], timeouts: { response: '200ms' } } },
    routes: [{ name: 'bad', upstream: 'bad' }],
  });
  const slow = await rawRequest({ port: gw.port, path: '/slow' });
  t.is(slow.status, 504);
  t.is(slow.json().error.code, 'CW_UPSTREAM_TIMEOUT');
  const reset = await rawRequest({ port: gw.port, path: '/reset' });
  t.is(reset.status, 502);
  t.is(reset.json().error.code, 'CW_UPSTREAM_RESET');
});

test('request and response bodies pass through; methods without a route condition work', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, { upstreams: { svc: { endpoints: [up.url] } }, routes: [{ name: 'r', upstream: 'svc' }] });
  const res = await rawRequest({
    port: gw.port,
    path: '/items',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ a: 1 }),
  });
  t.is(res.status, 200);
  t.is(res.json().body, '{"a":1}');
  t.is(res.json().method, 'POST');
  const patch = await rawRequest({ port: gw.port, path: '/items/1', method: 'PATCH', body: 'x' });
  t.is(patch.json().method, 'PATCH');
});

test('an endpoint that accepts TCP but never completes the TLS handshake → 504 connect timeout', async (t) => {
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        silent.close(() => r());
      }),
  );
  const port = (silent.address() as import('node:net').AddressInfo).port;
  const gw = await startGateway(t, {
    upstreams: { tls: { endpoints: [`https://127.0.0.1:${port}`], timeouts: { connect: '200ms' } } },
    routes: [{ name: 'r', upstream: 'tls' }],
  });
  const res = await rawRequest({ port: gw.port, path: '/' });
  t.is(res.status, 504);
  t.is(res.json().error.code, 'CW_UPSTREAM_CONNECT_TIMEOUT');
});

import test from 'ava';
import { bearerMatches, isLoopback, routesAnswer } from '../../gateway/admin.ts';
import { mergeRawStats } from '../../gateway/stats.ts';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { freePort, startUpstream } from '../helpers/upstream.ts';

const TOKEN = 'admin-token-0123456789abcdef';

test('GET /api/routes: live stats per route and backend; /api/upstreams, /api/policies, /api/snapshot', async (t) => {
  const mono = await startUpstream(t, 'monolith');
  const svc = await startUpstream(t, 'orders-svc', (_req, res) => {
    res.writeHead(503);
    res.end('down');
  });
  const dead = await freePort();
  const gw = await startGateway(t, {
    upstreams: {
      monolith: { endpoints: [mono.url] },
      'orders-svc': { endpoints: [svc.url] },
      gone: { endpoints: [`http://127.0.0.1:${dead}`] },
    },
    policies: { keys: { apiKey: {} }, limit: { rateLimit: { limits: [{ requests: 100, per: '1m' }] } } },
    consumers: { acme: { keys: ['acme-key-0123456789abcdef'] } },
    defaultPolicies: ['limit'],
    routes: [
      { name: 'orders', match: { prefix: '/orders' }, backends: [{ upstream: 'monolith', weight: 3 }, { upstream: 'orders-svc', weight: 1 }] },
      { name: 'private', match: { prefix: '/private' }, upstream: 'monolith', policies: ['keys'] },
      { name: 'broken', match: { prefix: '/broken' }, upstream: 'gone', useDefaultPolicies: false },
    ],
  });
  const api = async (path: string) => {
    const res = await fetch(`${gw.adminUrl}${path}`);
    t.is(res.status, 200, path);
    t.regex(res.headers.get('content-type') ?? '', /application\/json/);
    return (await res.json()) as any;
  };
  const before = await api('/api/routes');
  t.deepEqual(before.routes.map((r: any) => r.name).sort(), ['broken', 'orders', 'private']);
  const orders0 = before.routes.find((r: any) => r.name === 'orders');
  t.is(orders0.window.requests, 0);
  t.is(orders0.migration, null);
  t.deepEqual(orders0.policies, ['limit']);
  t.deepEqual(orders0.match, [{ host: '*', path: '/orders/*' }]);
  t.deepEqual(
    orders0.backends.map((b: any) => [b.upstream, b.weight, b.configuredShare, b.actualShare]),
    [['monolith', 3, 0.75, null], ['orders-svc', 1, 0.25, null]],
  );

  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) statuses.push((await rawRequest({ port: gw.port, path: `/orders/${i}` })).status);
  t.is((await rawRequest({ port: gw.port, path: '/private' })).status, 401);
  t.is((await rawRequest({ port: gw.port, path: '/broken' })).status, 502);
  t.is((await rawRequest({ port: gw.port, path: '/nowhere' })).status, 404);

  const after = await api('/api/routes');
  const orders = after.routes.find((r: any) => r.name === 'orders');
  const fromSvc = statuses.filter((s) => s === 503).length;
  t.is(orders.window.requests, 40);
  t.is(orders.total.requests, 40);
  t.is(orders.total.status5xx, fromSvc);
  t.is(orders.window.errorRate5xx, Math.round((fromSvc / 40) * 10000) / 10000);
  t.true(orders.window.rate > 0);
  t.true(orders.window.p50Ms > 0 && orders.window.p99Ms >= orders.window.p50Ms);
  const [m, s] = orders.backends;
  t.is(m.window.requests + s.window.requests, 40);
  t.is(s.window.requests, fromSvc);
  t.is(m.actualShare, Math.round(((40 - fromSvc) / 40) * 10000) / 10000);
  t.is(s.window.errorRate5xx, fromSvc > 0 ? 1 : 0);
  const priv = after.routes.find((r: any) => r.name === 'private');
  t.is(priv.answeredByGateway, 1);
  t.is(priv.window.errorRate4xx, 1);
  const broken = after.routes.find((r: any) => r.name === 'broken');
  t.is(broken.window.errorRate5xx, 1);
  t.is(after.unmatched.total, 1);

  const ups = await api('/api/upstreams');
  const gone = ups.upstreams.find((u: any) => u.name === 'gone');
  t.deepEqual(gone.routes, ['broken']);
  t.is(gone.endpoints[0].ejected, true);
  t.is(gone.endpoints[0].connectFailures, 1);
  const monoUp = ups.upstreams.find((u: any) => u.name === 'monolith');
  t.deepEqual(monoUp.routes.sort(), ['orders', 'private']);
  t.is(monoUp.endpoints[0].ejected, false);
  t.is(monoUp.endpoints[0].inflight, 0);
  t.is(monoUp.endpoints[0].pending, 0);
  t.true(monoUp.endpoints[0].connections >= 1, 'the keep-alive connection the requests used is still open');

  const pol = await api('/api/policies');
  const limit = pol.policies.find((p: any) => p.name === 'limit');
  t.like(limit, { kind: 'rateLimit', default: true, store: 'memory' });
  t.deepEqual(limit.routes.sort(), ['orders', 'private']);
  t.is(limit.stats.allowed, 40, 'the 401 on /private came before the limit (authentication runs first)');
  t.like(pol.policies.find((p: any) => p.name === 'keys'), { kind: 'apiKey', default: false, routes: ['private'] });

  const snap = await api('/api/snapshot');
  t.is(snap.version, gw.gw.snapshot.version);
  t.is(snap.reloads, 0);
  t.is(typeof snap.loadedAt, 'string');
  t.is(snap.routes, 3);
});

test('stats survive a reload for routes that keep their name; removed routes go', async (t) => {
  const up = await startUpstream(t, 'svc');
  const config = (names: string[]) => ({
    upstreams: { svc: { endpoints: [up.url] } },
    routes: names.map((name) => ({ name, match: { prefix: `/${name}` }, upstream: 'svc' })),
  });
  const gw = await startGateway(t, config(['a', 'b']));
  for (const p of ['/a', '/a', '/b']) t.is((await rawRequest({ port: gw.port, path: p })).status, 200);
  await gw.rewrite(config(['a', 'c']));
  const r = await gw.gw.reload('test');
  t.true(r.ok);
  const routes = ((await (await fetch(`${gw.adminUrl}/api/routes`)).json()) as any).routes;
  t.deepEqual(routes.map((x: any) => [x.name, x.total.requests]), [['a', 2], ['c', 0]]);
  t.false(JSON.stringify(gw.gw.rawStats()).includes('"b"'));
  const snap = (await (await fetch(`${gw.adminUrl}/api/snapshot`)).json()) as any;
  t.is(snap.reloads, 1);
});

test('GET /api/ratelimit shows a key\'s budget; unknown policy and missing key are 400', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      limit: { rateLimit: { limits: [{ requests: 5, per: '1m' }, { requests: 100, per: '1h' }] } },
      keys: { apiKey: {} },
    },
    routes: [{ name: 'api', match: { prefix: '/' }, upstream: 'svc', policies: ['limit'] }],
  });
  for (let i = 0; i < 3; i++) t.is((await rawRequest({ port: gw.port, path: '/x' })).status, 200);
  const res = await fetch(`${gw.adminUrl}/api/ratelimit?policy=limit&key=127.0.0.1`);
  t.is(res.status, 200);
  const body = (await res.json()) as any;
  t.like(body, { policy: 'limit', key: '127.0.0.1', store: 'memory', override: '' });
  t.like(body.limits[0], { name: 'limit-1m', limit: 5, windowSeconds: 60, consumed: 3, remaining: 2 });
  t.true(body.limits[0].resetMs > 0 && body.limits[0].resetMs <= 60_000);
  t.like(body.limits[1], { name: 'limit-1h', limit: 100, consumed: 3, remaining: 97 });
  const other = (await (await fetch(`${gw.adminUrl}/api/ratelimit?policy=limit&key=10.9.9.9`)).json()) as any;
  t.like(other.limits[0], { consumed: 0, remaining: 5, resetMs: 0 });

  const bad = async (query: string, code: string, message: RegExp) => {
    const r = await fetch(`${gw.adminUrl}/api/ratelimit${query}`);
    t.is(r.status, 400, query);
    const b = (await r.json()) as any;
    t.is(b.error.code, code);
    t.regex(b.error.message, message);
  };
  await bad('?policy=limit', 'CW_ADMIN_BAD_REQUEST', /"key"/);
  await bad('?key=1.2.3.4', 'CW_ADMIN_BAD_REQUEST', /"policy"/);
  await bad('?policy=nope&key=1.2.3.4', 'CW_ADMIN_UNKNOWN_POLICY', /"nope".*limit/);
  await bad('?policy=keys&key=1.2.3.4', 'CW_ADMIN_UNKNOWN_POLICY', /"keys"/);
});

test('admin.token: every admin endpoint but /healthz, /readyz and the dashboard files needs the bearer token', async (t) => {
  const gw = await startGateway(t, { admin: { token: '${ADMIN_TOKEN}' }, routes: [] }).catch(async () => null);
  t.is(gw, null, 'an unset ${ADMIN_TOKEN} is a config error');
  process.env.CW_TEST_ADMIN_TOKEN = TOKEN;
  t.teardown(() => delete process.env.CW_TEST_ADMIN_TOKEN);
  const g = await startGateway(t, { admin: { token: '${CW_TEST_ADMIN_TOKEN}' }, routes: [] });
  for (const path of ['/api/routes', '/api/upstreams', '/api/policies', '/api/snapshot', '/api/ratelimit?policy=x&key=y', '/metrics', '/config']) {
    for (const auth of [undefined, 'Bearer wrong-token-0123456789abcd', `Basic ${TOKEN}`, 'Bearer ', `Bearer ${TOKEN}x`]) {
      const r = await rawRequest({ port: g.adminPort, path, headers: auth ? { authorization: auth } : {} });
      t.is(r.status, 401, `${path} ${auth}`);
      t.is(r.json().error.code, 'CW_ADMIN_UNAUTHORIZED');
      t.regex(String(r.headers['www-authenticate']), /^Bearer/);
    }
    const ok = await rawRequest({ port: g.adminPort, path, headers: { authorization: `Bearer ${TOKEN}` } });
    t.not(ok.status, 401, path);
  }
  const reload = await rawRequest({ port: g.adminPort, path: '/reload', method: 'POST' });
  t.is(reload.status, 401);
  for (const path of ['/healthz', '/readyz']) t.is((await rawRequest({ port: g.adminPort, path })).status, 200, path);
  // The token is never echoed by /config.
  const cfg = await rawRequest({ port: g.adminPort, path: '/config', headers: { authorization: `bearer ${TOKEN}` } });
  t.is(cfg.status, 200);
  t.false(cfg.text.includes(TOKEN));
});

test('admin.token shorter than 16 characters is rejected with its place in the file', async (t) => {
  const err = await startGateway(t, { admin: { token: 'short' }, routes: [] }).catch((e: Error) => e);
  t.true(err instanceof Error);
  t.regex(String((err as Error).message), /causeway\.json:\d+.*admin\.token/s);
  t.false(String((err as Error).message).includes('"short"'), 'the message does not echo the token');
});

test('bearer token comparison and loopback detection', (t) => {
  t.true(bearerMatches(`Bearer ${TOKEN}`, TOKEN));
  t.true(bearerMatches(`bearer  ${TOKEN}`, TOKEN));
  t.false(bearerMatches(`Bearer ${TOKEN.slice(1)}`, TOKEN));
  t.false(bearerMatches(undefined, TOKEN));
  t.false(bearerMatches('Bearer', TOKEN));
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) t.true(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1']) t.false(isLoopback(h), h);
});

test('an admin listener on a non-loopback address without admin.token logs CW_ADMIN_EXPOSED at start', async (t) => {
  const { pino } = await import('pino');
  const { Writable } = await import('node:stream');
  const { writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { Gateway } = await import('../../gateway/server.ts');
  const { tempDir } = await import('../helpers/gateway.ts');
  const dir = await tempDir(t);
  const start = async (admin: Record<string, unknown>) => {
    const lines: any[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        cb();
      },
    });
    const file = join(dir, `c${Math.random()}.json`);
    await writeFile(file, JSON.stringify({ gateway: { listen: { host: '127.0.0.1', port: 0 } }, admin: { listen: { host: '0.0.0.0', port: 0 }, ...admin }, routes: [] }));
    const gw = await Gateway.start({ config: file, watch: false, logger: pino({ level: 'info' }, sink) as any });
    t.teardown(() => gw.close());
    return lines;
  };
  const open = await start({});
  const warn = open.find((l) => l.code === 'CW_ADMIN_EXPOSED');
  t.truthy(warn);
  t.is(warn.level, 40);
  t.regex(warn.msg, /0\.0\.0\.0.*admin\.token/);
  const guarded = await start({ token: TOKEN });
  t.falsy(guarded.find((l) => l.code === 'CW_ADMIN_EXPOSED'));
});

test('a cluster primary merges the raw stats of its workers into one /api/routes answer', async (t) => {
  const up = await startUpstream(t, 'svc');
  const config = { upstreams: { svc: { endpoints: [up.url] } }, routes: [{ name: 'api', match: { prefix: '/' }, upstream: 'svc' }] };
  // Two gateways stand in for two worker processes; their raw stats go through JSON as over IPC.
  const workers = [await startGateway(t, config), await startGateway(t, config)];
  for (let i = 0; i < 3; i++) t.is((await rawRequest({ port: workers[0]!.port, path: '/' })).status, 200);
  for (let i = 0; i < 2; i++) t.is((await rawRequest({ port: workers[1]!.port, path: '/nowhere/%2F' })).status, 400);
  t.is((await rawRequest({ port: workers[1]!.port, path: '/x' })).status, 200);
  const raws = workers.map((w) => JSON.parse(JSON.stringify(w.gw.rawStats())));
  const answer = routesAnswer(workers[0]!.gw, mergeRawStats(raws));
  const api = answer.routes.find((r) => r.name === 'api')!;
  t.is(api.total.requests, 4);
  t.is(api.window.requests, 4);
  t.is(api.backends[0]!.actualShare, 1);
  t.is(answer.unmatched.total, 2);
  t.deepEqual(api.match, [{ host: '*', path: '/*' }]);
});

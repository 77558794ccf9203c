import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import test from 'ava';
import type { ReloadResult } from '../../gateway/server.ts';
import { startGateway, withTestListeners } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream } from '../helpers/upstream.ts';

const config = (url: string, extra: Record<string, any> = {}) => ({
  upstreams: { svc: { endpoints: [url] } },
  routes: [{ name: 'r', upstream: 'svc', ...extra }],
});

test('a valid change to the watched file takes effect', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const gw = await startGateway(t, config(a.url), { watch: true });
  t.is((await rawRequest({ port: gw.port, path: '/' })).json().upstream, 'a');
  const v1 = gw.gw.snapshot.version;
  const reloaded = once(gw.gw, 'reload');
  await gw.rewrite(config(b.url));
  const [result] = (await reloaded) as [ReloadResult];
  t.true(result.ok);
  t.not(gw.gw.snapshot.version, v1);
  t.is((await rawRequest({ port: gw.port, path: '/' })).json().upstream, 'b');
  const cfg = await fetch(`${gw.adminUrl}/config`).then((r) => r.json());
  t.is(cfg.version, gw.gw.snapshot.version);
  t.deepEqual(cfg.sources, [gw.file]);
});

test('an invalid change is rejected while traffic keeps flowing with no failed request', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const gw = await startGateway(t, config(a.url), { watch: true });
  const v1 = gw.gw.snapshot.version;
  const statuses: number[] = [];
  let stop = false;
  // Four clients send requests back to back until the reloads are done (bounded: 2000 each).
  const clients = Array.from({ length: 4 }, async () => {
    for (let i = 0; i < 2000 && !stop; i++) {
      statuses.push(await rawRequest({ port: gw.port, path: '/' }).then((r) => r.status, () => -1));
    }
  });
  const rejected = once(gw.gw, 'reload');
  await writeFile(gw.file, '{"upstreams": {"svc": {"endpoints": ["http://127.0.0.1:1"]}}, "routes": [{"name": "r", "upstream": "nope"}]}');
  const [bad] = (await rejected) as [ReloadResult];
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.message, /causeway\.json:1:\d+ routes\[0\]\.upstream: .*unknown upstream "nope"/);
  t.is(gw.gw.snapshot.version, v1, 'the old snapshot keeps serving');
  t.is(gw.gw.reloadFailures, 1);

  const broken = once(gw.gw, 'reload');
  await writeFile(gw.file, 'routes: [ {name: r');
  t.false(((await broken) as [ReloadResult])[0].ok);

  const good = once(gw.gw, 'reload');
  await gw.rewrite(config(b.url));
  t.true(((await good) as [ReloadResult])[0].ok);
  // Wait for requests to reach the new upstream, bounded by the clients' own request budget.
  while (b.seen.length === 0 && statuses.length < 8000) await rawRequest({ port: gw.port, path: '/' }).then((r) => statuses.push(r.status));
  stop = true;
  await Promise.all(clients);
  t.true(statuses.length > 0);
  t.deepEqual([...new Set(statuses)], [200], 'every request during the reloads succeeded');
  t.true(a.seen.length > 0);
  t.true(b.seen.length > 0);
});

test('POST /reload on the admin port: 400 with issues for a bad config, the new version for a good one', async (t) => {
  const a = await startUpstream(t, 'a');
  const gw = await startGateway(t, config(a.url));
  const health = await fetch(`${gw.adminUrl}/healthz`);
  t.is(health.status, 200);
  const ready = await fetch(`${gw.adminUrl}/readyz`).then((r) => r.json());
  t.deepEqual(ready, { ready: true, version: gw.gw.snapshot.version });

  await writeFile(gw.file, JSON.stringify(withTestListeners({ routes: [{ name: 'r', upstream: 'missing' }, { name: 'r', upstream: 'missing' }] })));
  const bad = await fetch(`${gw.adminUrl}/reload`, { method: 'POST' });
  t.is(bad.status, 400);
  const body = await bad.json();
  t.is(body.error.code, 'CW_CONFIG_INVALID');
  t.true(body.issues.length >= 2, 'all issues are reported');
  t.true(body.issues.every((i: { file?: string; line?: number }) => i.file === gw.file && typeof i.line === 'number'));

  await gw.rewrite(config(a.url, { responseHeaders: { set: { 'x-version': '2' } } }));
  const good = await fetch(`${gw.adminUrl}/reload`, { method: 'POST' });
  t.is(good.status, 200);
  const result = await good.json();
  t.true(result.changed);
  t.is(result.version, gw.gw.snapshot.version);
  t.is((await rawRequest({ port: gw.port, path: '/' })).headers['x-version'], '2');

  const again = await fetch(`${gw.adminUrl}/reload`, { method: 'POST' }).then((r) => r.json());
  t.false(again.changed, 'reloading the same config changes nothing');
});

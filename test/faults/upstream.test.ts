// Upstream faults under bounded load, against a real gateway process: an instance killed in the
// middle of the load (retries take its requests elsewhere), and an upstream that hangs
// (timeouts fire, other routes keep answering, memory stays bounded).
import type { IncomingMessage, ServerResponse } from 'node:http';
import test from 'ava';
import { rawRequest } from '../helpers/http.ts';
import { closeServer, startRawUpstream, startUpstream } from '../helpers/upstream.ts';
import { startGatewayProcess } from '../hardening/helpers/process.ts';
import { load, memoryOf } from './helpers/load.ts';

const quiet = { listen: { host: '127.0.0.1', port: 0 }, accessLog: { enabled: false } };

test('an upstream instance killed mid-load: no failed GET; its in-flight and later requests go to the other one', async (t) => {
  // Answers on the next turn of the event loop, so requests are in flight when it dies.
  const slowEcho = (name: string) => (_req: IncomingMessage, res: ServerResponse) => {
    setImmediate(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
      res.end(name);
    });
  };
  const a = await startUpstream(t, 'a', slowEcho('a'));
  const b = await startUpstream(t, 'b', slowEcho('b'));
  const gp = await startGatewayProcess(t, {
    gateway: quiet,
    upstreams: { svc: { endpoints: [a.url, b.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  let seenByAAtKill = -1;
  const result = await load({
    port: gp.port,
    total: 2000,
    concurrency: 16,
    at: {
      600: async () => {
        seenByAAtKill = a.seen.length;
        await closeServer(a.server); // stops listening and destroys every connection, in flight or idle
      },
    },
  });
  await result.hooks;
  t.deepEqual(result.failed, [], JSON.stringify(result.tally));
  t.is(result.answers.length, 2000);
  t.true(seenByAAtKill > 0, 'the killed instance took traffic before it died');
  t.true(a.seen.length - seenByAAtKill < 16, 'after its death it saw at most what was already in flight');
  const metrics = await (await fetch(`${gp.adminUrl}/metrics`)).text();
  const retried = /causeway_upstream_retries_total\{[^}]*\} (\d+)/g;
  let retries = 0;
  for (const m of metrics.matchAll(retried)) retries += Number(m[1]);
  t.true(retries > 0, 'requests were retried on the surviving instance');
});

test('an upstream that hangs: 504 CW_UPSTREAM_TIMEOUT within its timeout, other routes keep answering, memory and sockets stay bounded', async (t) => {
  const held = new Set<ServerResponse>();
  const hang = await startRawUpstream(t, (_req, res) => {
    held.add(res); // never answered
    res.once('close', () => held.delete(res));
  });
  const ok = await startUpstream(t, 'ok');
  const gp = await startGatewayProcess(t, {
    gateway: quiet,
    upstreams: {
      hang: { endpoints: [hang.url], timeouts: { response: '300ms' } },
      ok: { endpoints: [ok.url] },
    },
    routes: [
      { name: 'hang', upstream: 'hang', match: { prefix: '/hang' } },
      { name: 'ok', upstream: 'ok', match: { prefix: '/ok' } },
    ],
  });
  const pid = gp.cli.child.pid!;
  // Warm up, then take the baseline.
  await load({ port: gp.port, total: 200, concurrency: 8, path: (i) => `/ok/${i}` });
  const before = memoryOf(pid);
  const result = await load({ port: gp.port, total: 1200, concurrency: 60, path: (i) => (i % 3 === 0 ? `/ok/${i}` : `/hang/${i}`) });
  const byRoute = (p: string) => result.answers.filter((a) => a.path.startsWith(p));
  t.deepEqual(
    [...new Set(byRoute('/hang').map((a) => `${a.status} ${a.code}`))],
    ['504 CW_UPSTREAM_TIMEOUT'],
    'every request to the hung upstream timed out with its code',
  );
  t.is(byRoute('/hang').length, 800);
  t.deepEqual(
    byRoute('/ok').filter((a) => a.status !== 200),
    [],
    'the event loop kept serving the healthy route while 60 clients waited on the hung one',
  );
  // The timed-out upstream requests were aborted: the hung upstream is not left holding them.
  while (held.size > 0) await new Promise<void>((r) => [...held][0]!.once('close', () => r()));
  const after = memoryOf(pid);
  t.true(after.rss - before.rss < 64 * 1024 * 1024, `RSS grew by ${Math.round((after.rss - before.rss) / 1048576)} MiB`);
  t.is((await rawRequest({ port: gp.port, path: '/ok/after' })).status, 200);
});

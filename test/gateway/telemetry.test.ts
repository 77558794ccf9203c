// Trace context and the access log, through a real gateway process.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { tempDir, withTestListeners } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startCli } from '../helpers/process.ts';
import { startUpstream } from '../helpers/upstream.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

test('traceparent is continued or created and sent upstream; one access log line per request carries the ids', async (t) => {
  const up = await startUpstream(t, 'svc');
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  await writeFile(
    file,
    JSON.stringify(
      withTestListeners({
        upstreams: { svc: { endpoints: [up.url] } },
        consumers: { acme: { keys: ['acme-key-0123456789abcdef'] } },
        policies: { keys: { apiKey: { optional: true } } },
        routes: [{ name: 'api', upstream: 'svc', policies: ['keys'] }],
      }),
    ),
  );
  const gw = startCli(t, ['gateway', '-c', file]);
  const ready = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  const port: number = ready.address.port;

  // Continued: same trace id, the caller's span becomes the parent, a new span id, tracestate kept.
  const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const a = await rawRequest({ port, path: '/orders?secret=1', headers: { traceparent: incoming, tracestate: 'vendor=x', 'x-api-key': 'acme-key-0123456789abcdef' } });
  t.is(a.status, 200);
  const sentA = up.seen.at(-1)!.headers;
  const ma = TRACEPARENT.exec(String(sentA.traceparent))!;
  t.truthy(ma);
  t.is(ma[1], '4bf92f3577b34da6a3ce929d0e0e4736');
  t.not(ma[2], '00f067aa0ba902b7');
  t.is(ma[3], '01');
  t.is(sentA.tracestate, 'vendor=x');

  // Created: no (or an invalid) traceparent gives a new trace, and a foreign tracestate is dropped.
  const b = await rawRequest({ port, path: '/x', headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', tracestate: 'vendor=y' } });
  t.is(b.status, 200);
  const sentB = up.seen.at(-1)!.headers;
  const mb = TRACEPARENT.exec(String(sentB.traceparent))!;
  t.truthy(mb);
  t.not(mb[1], '00000000000000000000000000000000');
  t.is(sentB.tracestate, undefined);

  const c = await rawRequest({ port, path: '/y', headers: { 'x-api-key': 'wrong-key-0000000000000000' } });
  t.is(c.status, 401);

  const lineA = await gw.waitForLog((l) => l.log === 'access' && l.requestId === a.headers['x-request-id']);
  t.is(lineA.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  t.is(lineA.route, 'api');
  t.is(lineA.backend, 'svc');
  t.is(lineA.status, 200);
  t.is(lineA.path, '/orders', 'the query string is not logged');
  t.is(lineA.subject, 'acme');
  t.is(lineA.clientIp, '127.0.0.1');
  t.is(typeof lineA.ms, 'number');
  t.is(typeof lineA.upstreamMs, 'number');
  t.true(lineA.responseBytes > 0);
  t.false(JSON.stringify(lineA).includes('acme-key-0123456789abcdef'), 'credentials never reach the log');
  const lineC = await gw.waitForLog((l) => l.log === 'access' && l.requestId === c.headers['x-request-id']);
  t.is(lineC.status, 401);
  t.is(lineC.code, 'CW_AUTH_BAD_KEY');
  t.is(lineC.backend, undefined);
  t.is(gw.logs.filter((l) => l.log === 'access').length, 3);
});

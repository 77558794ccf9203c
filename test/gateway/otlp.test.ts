// OTLP/HTTP span export against a real HTTP server acting as the collector.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { OtlpExporter, otlpSettings, sampled, type SpanRecord } from '../../plugins/otlp.ts';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { closeServer, startUpstream } from '../helpers/upstream.ts';

interface Export {
  url: string;
  headers: IncomingHttpHeaders;
  body: any;
}

/** A collector on port 0: records every export; `status` is what it answers. */
async function startCollector(t: ExecutionContext, status = 200) {
  const exports: Export[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const spans = () => exports.flatMap((e) => e.body.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans)));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      exports.push({ url: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString()) });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{}' : '{"error":"nope"}');
      const n = spans().length;
      for (const w of [...waiters]) if (n >= w.n) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => closeServer(server));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports,
    spans,
    /** Resolves once n spans have arrived. */
    waitFor(n: number): Promise<void> {
      return spans().length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

const attr = (span: any, key: string) => {
  const a = span.attributes.find((x: any) => x.key === key);
  return a ? (a.value.stringValue ?? a.value.intValue ?? a.value.doubleValue) : undefined;
};

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

test('each request becomes a server span whose ids match the traceparent the upstream saw', async (t) => {
  const collector = await startCollector(t);
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    telemetry: { otlp: { endpoint: collector.url, headers: { 'x-collector-token': 'secret-1' }, batch: { interval: '50ms' }, serviceName: 'edge' } },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'orders', match: { prefix: '/orders' }, upstream: 'svc' }],
  });
  t.is((await rawRequest({ port: gw.port, path: '/orders/1?secret=x', headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } })).status, 200);
  t.is((await rawRequest({ port: gw.port, path: '/orders/2' })).status, 200);
  await collector.waitFor(2);

  const e = collector.exports[0]!;
  t.is(e.url, '/v1/traces');
  t.regex(String(e.headers['content-type']), /^application\/json/);
  t.is(e.headers['x-collector-token'], 'secret-1');
  const resource = e.body.resourceSpans[0].resource;
  t.deepEqual(resource.attributes.find((a: any) => a.key === 'service.name'), { key: 'service.name', value: { stringValue: 'edge' } });

  const seen = up.seen.map((s) => String(s.headers.traceparent).split('-'));
  const spans = collector.spans();
  const continued = spans.find((s: any) => s.traceId === CLIENT_TRACE);
  t.truthy(continued, 'the client trace is continued');
  t.is(seen[0]![1], CLIENT_TRACE);
  t.is(continued.spanId, seen[0]![2], "the gateway's span is the upstream's parent");
  t.is(continued.parentSpanId, CLIENT_SPAN);
  t.is(continued.kind, 2);
  t.is(continued.name, 'GET orders');
  t.is(attr(continued, 'url.path'), '/orders/1', 'never the query');
  t.is(attr(continued, 'http.response.status_code'), '200');
  t.is(attr(continued, 'causeway.route'), 'orders');
  t.is(attr(continued, 'causeway.backend'), 'svc');
  t.is(typeof attr(continued, 'causeway.upstream.duration_ms'), 'number');
  t.true(BigInt(continued.endTimeUnixNano) >= BigInt(continued.startTimeUnixNano));
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  t.true(nowNs - BigInt(continued.startTimeUnixNano) < 60_000_000_000n, 'start time is epoch nanoseconds');
  t.deepEqual(continued.status, { code: 0 });

  const fresh = spans.find((s: any) => s.traceId !== CLIENT_TRACE);
  t.is(fresh.traceId, seen[1]![1]);
  t.is(fresh.spanId, seen[1]![2]);
  t.is(fresh.parentSpanId, undefined, 'a new trace: the gateway span is the root');

  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  t.regex(metrics, /causeway_otlp_spans\{result="dropped"\} 0/);
});

test('spans still queued are sent at shutdown; unsampled parents and sampleRatio are honoured', async (t) => {
  const collector = await startCollector(t);
  const up = await startUpstream(t, 'svc', (_req, res) => {
    res.writeHead(502);
    res.end();
  });
  const gw = await startGateway(t, {
    telemetry: { otlp: { endpoint: `${collector.url}/v1/traces`, batch: { interval: '1h', maxSize: 1000 } } },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'api', match: { prefix: '/' }, upstream: 'svc' }],
  });
  t.is((await rawRequest({ port: gw.port, path: '/a', headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00` } })).status, 502);
  for (let i = 0; i < 3; i++) t.is((await rawRequest({ port: gw.port, path: `/b${i}` })).status, 502);
  t.is(collector.exports.length, 0, 'nothing sent before the interval or a full batch');
  await gw.gw.close();
  t.is(collector.exports.length, 1);
  t.is(collector.exports[0]!.url, '/v1/traces');
  const spans = collector.spans();
  t.is(spans.length, 3, 'the request whose traceparent said "not sampled" is not exported');
  t.false(spans.some((s: any) => s.traceId === CLIENT_TRACE));
  for (const s of spans) t.is(s.status.code, 2, '5xx is an error on a server span');

  t.false(sampled(CLIENT_TRACE, '00', 1));
  t.true(sampled(CLIENT_TRACE, '01', 1));
  t.false(sampled(CLIENT_TRACE, '01', 0));
  t.true(sampled('0123456789abcdef0000000000000000', '01', 0.001));
  t.false(sampled('0123456789abcdefffffffffffffffff', '01', 0.999));
});

const span = (i: number): SpanRecord => ({
  traceId: CLIENT_TRACE,
  spanId: `${i}`.padStart(16, '0'),
  parentSpanId: '',
  startMs: Date.now(),
  endMs: Date.now() + 1,
  method: 'GET',
  path: '/',
  host: 'h',
  route: 'r',
  backend: 'b',
  status: 200,
  code: '',
  clientIp: '127.0.0.1',
  requestId: 'x',
  upstreamMs: -1,
});

test('a full queue drops and counts; failed exports are counted and logged at most once per interval', async (t) => {
  const collector = await startCollector(t);
  const ex = new OtlpExporter(otlpSettings({ endpoint: collector.url, batch: { maxQueue: 2, interval: '1h', maxSize: 100 } }), { warn: () => t.fail('no warning') });
  for (let i = 0; i < 5; i++) ex.add(span(i));
  await ex.close();
  t.deepEqual(ex.counts, { exported: 2, dropped: 3, failed: 0 });
  t.deepEqual(collector.spans().map((s: any) => s.spanId), [span(0).spanId, span(1).spanId]);

  const broken = await startCollector(t, 500);
  const warnings: any[] = [];
  const bad = new OtlpExporter(otlpSettings({ endpoint: broken.url, batch: { interval: '1h' } }), { warn: (o) => warnings.push(o) });
  t.teardown(() => bad.close());
  bad.add(span(1));
  await bad.flush();
  bad.add(span(2));
  bad.add(span(3));
  await bad.flush();
  t.deepEqual(bad.counts, { exported: 0, dropped: 0, failed: 3 });
  t.is(warnings.length, 1);
  t.is(warnings[0].code, 'CW_OTLP_EXPORT_FAILED');
  t.regex(warnings[0].error, /HTTP 500/);
});

test('without telemetry.otlp nothing is exported and no span metric appears', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, { upstreams: { svc: { endpoints: [up.url] } }, routes: [{ name: 'api', upstream: 'svc' }] });
  t.is((await rawRequest({ port: gw.port, path: '/' })).status, 200);
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  t.false(metrics.includes('causeway_otlp_spans{'));
});

test('a reload turns export on and off', async (t) => {
  const collector = await startCollector(t);
  const up = await startUpstream(t, 'svc');
  const base = { upstreams: { svc: { endpoints: [up.url] } }, routes: [{ name: 'api', upstream: 'svc' }] };
  const gw = await startGateway(t, base);
  t.is((await rawRequest({ port: gw.port, path: '/before' })).status, 200);
  await gw.rewrite({ ...base, telemetry: { otlp: { endpoint: collector.url, batch: { interval: '50ms' } } } });
  t.true((await gw.gw.reload('test')).ok);
  t.is((await rawRequest({ port: gw.port, path: '/on' })).status, 200);
  await collector.waitFor(1);
  await gw.rewrite(base);
  t.true((await gw.gw.reload('test')).ok);
  t.is((await rawRequest({ port: gw.port, path: '/off' })).status, 200);
  await gw.gw.close();
  t.deepEqual(collector.spans().map((s: any) => attr(s, 'url.path')), ['/on']);
});

import { readFileSync } from 'node:fs';
import test from 'ava';
import { Metrics, type MetricSources } from '../../plugins/metrics.ts';

function sources(over: Partial<MetricSources> = {}): MetricSources {
  return {
    configVersion: () => 'abc123def456',
    reloads: () => ({ ok: 2, failed: 1 }),
    rateLimit: () => [{ policy: 'per-ip', allowed: 7, limited: 3, storeFailures: 0 }],
    endpoints: () => [{ upstream: 'orders', endpoint: 'http://127.0.0.1:1', ejected: true, connectFailures: 4 }],
    certificates: () => [{ listener: 'public', subject: 'CN=shop.example.com', notAfter: Date.now() + 86_400_000 }],
    ...over,
  };
}

/** The value of one sample line in Prometheus text format, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

test('requests, latency and bytes are counted by route, backend, method and status class', async (t) => {
  const m = new Metrics('gateway', sources());
  m.observe({ route: 'orders', backend: 'orders', method: 'GET', status: 200, seconds: 0.002, requestBytes: 0, responseBytes: 120 });
  m.observe({ route: 'orders', backend: 'orders', method: 'GET', status: 204, seconds: 0.2, requestBytes: 0, responseBytes: 0 });
  m.observe({ route: 'orders', backend: 'orders', method: 'POST', status: 502, seconds: 0.01, requestBytes: 40, responseBytes: 80 });
  m.observe({ route: '', backend: '', method: 'PROPFIND', status: 404, seconds: 0.0001, requestBytes: 0, responseBytes: 0 });
  m.policyDenied('orders', 'CW_AUTH_MISSING');
  const text = await m.text();
  const get = { route: 'orders', backend: 'orders', method: 'GET', status_class: '2xx', reporter: 'gateway' };
  t.is(sample(text, 'causeway_requests_total', get), 2);
  t.is(sample(text, 'causeway_request_duration_seconds_count', get), 2);
  t.is(sample(text, 'causeway_request_duration_seconds_bucket', { ...get, le: '0.0025' }), 1);
  t.is(sample(text, 'causeway_request_duration_seconds_bucket', { ...get, le: '0.25' }), 2);
  t.is(sample(text, 'causeway_response_bytes_total', get), 120);
  t.is(sample(text, 'causeway_request_bytes_total', { method: 'POST', status_class: '5xx' }), 40);
  t.is(sample(text, 'causeway_requests_total', { route: '-', method: 'OTHER', status_class: '4xx' }), 1, 'unknown methods and no route stay bounded');
  t.is(sample(text, 'causeway_policy_denials_total', { route: 'orders', code: 'CW_AUTH_MISSING' }), 1);
  t.is(sample(text, 'causeway_config_info', { version: 'abc123def456' }), 1);
  t.is(sample(text, 'causeway_config_reloads', { result: 'failed' }), 1);
  t.is(sample(text, 'causeway_ratelimit_decisions', { policy: 'per-ip', decision: 'limited' }), 3);
  t.is(sample(text, 'causeway_upstream_endpoint_ejected', { upstream: 'orders' }), 1);
  t.is(sample(text, 'causeway_upstream_connect_failures', { upstream: 'orders' }), 4);
  const expiry = sample(text, 'causeway_tls_certificate_expiry_seconds', { listener: 'public', subject: 'CN=shop.example.com' })!;
  t.true(expiry > 86_000 && expiry <= 86_400, String(expiry));
  t.truthy(sample(text, 'causeway_process_resident_memory_bytes', {}));
});

test('docs/observability.md documents every causeway_ metric family and no others', async (t) => {
  const m = new Metrics('gateway', sources());
  const families = new Set(
    (await m.registry.getMetricsAsJSON()).map((f) => f.name).filter((n) => n.startsWith('causeway_') && !/^causeway_(process|nodejs)_/.test(n)),
  );
  const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(causeway_[a-z_]+)` \|/gm)].map((x) => x[1]!));
  t.deepEqual([...documented].sort(), [...families].sort());
});

test('the request histogram and counters read out exactly as prom-client would count them itself', async (t) => {
  const { Histogram, Registry } = await import('prom-client');
  const { LATENCY_BUCKETS } = await import('../../plugins/metrics.ts');
  const fc = (await import('fast-check')).default;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.double({ min: 0, max: 60, noNaN: true }), { minLength: 1, maxLength: 60 }), async (durations) => {
      const m = new Metrics('gateway', sources());
      const reference = new Registry();
      const h = new Histogram({ name: 'causeway_request_duration_seconds', help: 'x', labelNames: ['route'], buckets: LATENCY_BUCKETS, registers: [reference] });
      for (const seconds of durations) {
        m.observe({ route: 'r', backend: 'b', method: 'GET', status: 200, seconds, requestBytes: 1, responseBytes: 2 });
        h.observe({ route: 'r' }, seconds);
      }
      const ours = await m.text();
      const theirs = await reference.metrics();
      for (const le of [...LATENCY_BUCKETS.map(String), '+Inf']) {
        if (sample(ours, 'causeway_request_duration_seconds_bucket', { route: 'r', le }) !== sample(theirs, 'causeway_request_duration_seconds_bucket', { route: 'r', le })) return false;
      }
      const sumOk = Math.abs(sample(ours, 'causeway_request_duration_seconds_sum', { route: 'r' })! - sample(theirs, 'causeway_request_duration_seconds_sum', { route: 'r' })!) < 1e-6;
      return (
        sumOk &&
        sample(ours, 'causeway_request_duration_seconds_count', { route: 'r' }) === durations.length &&
        sample(ours, 'causeway_requests_total', { route: 'r' }) === durations.length &&
        sample(ours, 'causeway_request_bytes_total', { route: 'r' }) === durations.length &&
        sample(ours, 'causeway_response_bytes_total', { route: 'r' }) === 2 * durations.length
      );
    }),
    { numRuns: 100 },
  );
  t.pass();
});

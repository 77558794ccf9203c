import test from 'ava';
import fc from 'fast-check';
import { LATENCY_BOUNDS_MS, LATENCY_BUCKETS, latencyBucket, LiveStats, mergeRawStats, SLOT_MS, SLOTS, statsView, type ConfiguredRoute } from '../../gateway/stats.ts';

const T0 = 1_800_000_000_000; // a slot boundary (divisible by 5000)
const routes: ConfiguredRoute[] = [
  { name: 'orders', backends: [{ upstream: 'monolith', weight: 90 }, { upstream: 'orders-svc', weight: 10 }] },
  { name: 'idle', backends: [{ upstream: 'monolith', weight: 1 }] },
];

test('a duration falls in the bucket whose bounds hold it', (t) => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 100_000, noNaN: true }), (ms) => {
      const b = latencyBucket(ms);
      t.true(b >= 0 && b < LATENCY_BUCKETS);
      if (b < LATENCY_BUCKETS - 1) t.true(ms <= LATENCY_BOUNDS_MS[b]! * (1 + 1e-9));
      if (b > 0) t.true(ms > LATENCY_BOUNDS_MS[b - 1]! * (1 - 1e-9));
    }),
  );
  t.is(latencyBucket(0.01), 0);
  t.is(latencyBucket(1e9), LATENCY_BUCKETS - 1);
});

test('the view counts requests, error rates, shares and percentiles in the window', (t) => {
  const s = new LiveStats();
  for (let i = 0; i < 90; i++) s.record('orders', 'monolith', 200, 2, T0 + i);
  for (let i = 0; i < 8; i++) s.record('orders', 'orders-svc', 200, 40, T0 + 10);
  for (let i = 0; i < 2; i++) s.record('orders', 'orders-svc', 502, 40, T0 + 20);
  s.record('orders', '', 429, 0.1, T0 + 30);
  s.record('', '', 404, 0.1, T0 + 30);
  const v = statsView(s.raw(T0 + 10_000), routes, T0 + 10_000);
  const orders = v.routes.find((r) => r.name === 'orders')!;
  t.is(orders.window.requests, 101);
  t.deepEqual(orders.total, { requests: 101, status4xx: 1, status5xx: 2 });
  t.is(orders.answeredByGateway, 1);
  t.is(orders.window.errorRate5xx, Math.round((2 / 101) * 10000) / 10000);
  t.is(orders.window.errorRate4xx, Math.round((1 / 101) * 10000) / 10000);
  // 90 of 101 took 2 ms: the median is in 2 ms's bucket; the p99 is in 40 ms's.
  const b2 = latencyBucket(2);
  t.true(orders.window.p50Ms! > LATENCY_BOUNDS_MS[b2 - 1]! && orders.window.p50Ms! <= LATENCY_BOUNDS_MS[b2]!);
  const b40 = latencyBucket(40);
  t.true(orders.window.p99Ms! > LATENCY_BOUNDS_MS[b40 - 1]! && orders.window.p99Ms! <= LATENCY_BOUNDS_MS[b40]!);
  const [mono, svc] = orders.backends;
  t.is(mono!.configuredShare, 0.9);
  t.is(mono!.actualShare, 0.9);
  t.is(svc!.actualShare, 0.1);
  t.is(svc!.window.errorRate5xx, 0.2);
  t.is(v.unmatched.total, 1);
  const idle = v.routes.find((r) => r.name === 'idle')!;
  t.is(idle.window.requests, 0);
  t.is(idle.window.p99Ms, null);
  t.is(idle.backends[0]!.actualShare, null);
  t.is(orders.migration, null);
});

test('requests older than the window leave the rate but stay in the totals', (t) => {
  const s = new LiveStats();
  s.record('orders', 'monolith', 200, 1, T0);
  const later = T0 + SLOT_MS * SLOTS + 1;
  s.record('orders', 'monolith', 200, 1, later);
  const orders = statsView(s.raw(later), routes, later).routes[0]!;
  t.is(orders.window.requests, 1);
  t.is(orders.total.requests, 2);
});

test('merging the raw stats of several workers equals recording everything in one', (t) => {
  let workers = [new LiveStats()];
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          w: fc.integer({ min: 0, max: 2 }),
          route: fc.constantFrom('orders', 'idle', ''),
          backend: fc.constantFrom('monolith', 'orders-svc', ''),
          status: fc.constantFrom(0, 200, 404, 503),
          ms: fc.double({ min: 0, max: 5000, noNaN: true }),
          at: fc.integer({ min: 0, max: 70_000 }),
        }),
        { maxLength: 50 },
      ),
      (reqs) => {
        // Each process records in time order.
        reqs.sort((a, b) => a.at - b.at);
        const one = new LiveStats();
        workers = [new LiveStats(), new LiveStats(), new LiveStats()];
        for (const r of reqs) {
          one.record(r.route, r.backend, r.status, r.ms, T0 + r.at);
          workers[r.w]!.record(r.route, r.backend, r.status, r.ms, T0 + r.at);
        }
        const now = T0 + 70_000;
        const merged = mergeRawStats(workers.map((w) => w.raw(now)));
        t.deepEqual(statsView(merged, routes, now), statsView(one.raw(now), routes, now));
      },
    ),
    { numRuns: 20 },
  );
  // The merge does not change its inputs.
  const a = workers[0]!.raw(T0 + 70_000);
  const copy = JSON.parse(JSON.stringify(a));
  mergeRawStats([a, a]);
  t.deepEqual(a, copy);
  // Raw stats survive JSON (IPC between a cluster primary and its workers).
  t.deepEqual(JSON.parse(JSON.stringify(a)), a);
});

test('merging stats of different layouts is refused', (t) => {
  const a = new LiveStats().raw();
  t.throws(() => mergeRawStats([a, { ...a, slotMs: 1000 }]), { message: /different layouts/ });
});

test('after a reload, routes that are gone are dropped; the others keep all their data', (t) => {
  const s = new LiveStats();
  s.record('orders', 'monolith', 200, 1, T0);
  s.record('orders', 'orders-svc', 200, 1, T0);
  s.record('gone', 'monolith', 200, 1, T0);
  s.retain([{ name: 'orders' }]);
  const raw = s.raw(T0 + 1);
  t.deepEqual(
    raw.routes.map((r) => [r.route, r.backends.map((b) => b.backend)]),
    [['orders', ['monolith', 'orders-svc']]],
  );
  const orders = statsView(raw, [{ name: 'orders', backends: [{ upstream: 'monolith', weight: 1 }] }], T0 + 1).routes[0]!;
  t.is(orders.total.requests, 2, 'a backend the route no longer uses still counts in its totals');
  t.is(orders.backends.length, 1);
});

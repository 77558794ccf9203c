// Micro-benchmark of the rateLimit policy's run() with the memory store: N calls in a row, each
// awaited only when run() returns a promise (as the gateway's chain does); and of newContext,
// which every request on a route with policies pays. One process, one core:
//   npx tsx bench/micro/rate-limit.ts [calls=200000] [rounds=5]
import { isPromise, newContext, SharedResources, type PolicyContext } from '../../plugins/policy.ts';
import { compileRateLimit } from '../../plugins/rate-limit.ts';

const calls = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 5);
const log = { info() {}, warn() {}, error() {} };
const ips = Array.from({ length: 256 }, (_, i) => `192.0.2.${i}`);

const cases = {
  'one limit, headers all': { limits: [{ requests: 1_000_000_000, per: '1s' }] },
  'two limits, headers all': { limits: [{ requests: 1_000_000_000, per: '1s' }, { requests: 1_000_000_000, per: '1h' }] },
  'one limit, all denied (429)': { limits: [{ requests: 1, per: '1h' }] },
};

// Contexts made beforehand (newContext is not what is measured); the headers a call adds are
// dropped before the next call on the same context.
const contexts: PolicyContext[] = ips.map((clientIp) => newContext({ method: 'GET', path: '/', query: '', host: 'api.test', headers: {}, clientIp, route: 'r' }));
const ctx = (i: number): PolicyContext => {
  const c = contexts[i & 255]!;
  c.responseHeaders = null;
  return c;
};

{
  // What every request on a route with policies pays before its chain runs.
  const times: number[] = [];
  let keep: PolicyContext | null = null;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) keep = newContext({ method: 'GET', path: '/', query: '', host: 'api.test', headers: {}, clientIp: ips[i & 255]!, route: 'r' });
    times.push(Number(process.hrtime.bigint() - t0) / calls);
  }
  times.sort((a, b) => a - b);
  console.log(`${'newContext'.padEnd(30)} median ${times[rounds >> 1]!.toFixed(0)} ns/call (best ${times[0]!.toFixed(0)}, ${rounds}×${calls}${keep ? '' : '?'})`);
}

for (const [label, cfg] of Object.entries(cases)) {
  const shared = new SharedResources();
  const p = compileRateLimit('bench', cfg, { consumers: new Map(), shared, log, redis: null });
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) {
      const out = p.run(ctx(i));
      if (isPromise(out)) await out;
    }
    times.push(Number(process.hrtime.bigint() - t0) / calls);
  }
  times.sort((a, b) => a - b);
  console.log(`${label.padEnd(30)} median ${times[rounds >> 1]!.toFixed(0)} ns/call (best ${times[0]!.toFixed(0)}, ${rounds}×${calls})`);
  await shared.close();
}

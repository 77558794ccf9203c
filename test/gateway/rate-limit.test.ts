// Rate limits across gateway processes: two real gateways share one real redis-server, which is
// then killed (failOpen and failClosed routes) and restarted.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { tempDir, withTestListeners } from '../helpers/gateway.ts';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import { startCli, type RunningCli } from '../helpers/process.ts';
import { startRedis } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';

const LIMIT = 10;

async function startGatewayProcess(t: ExecutionContext, file: string): Promise<{ cli: RunningCli; port: number }> {
  const cli = startCli(t, ['gateway', '-c', file, '--no-watch']);
  const ready = await cli.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  await cli.waitForLog((l) => l.msg === 'redis connected');
  return { cli, port: ready.address.port };
}

/** Bounded poll: returns when `check` is true, fails the test after `attempts` tries. */
async function until(t: ExecutionContext, what: string, check: () => Promise<boolean>, attempts = 200, delayMs = 50): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  t.fail(`timed out waiting for: ${what}`);
  throw new Error(`timed out waiting for: ${what}`);
}

test('two gateway processes share one Redis budget; Redis killed: failOpen limits per process, failClosed answers 503; Redis back: shared again', async (t) => {
  const redis = await startRedis(t);
  const up = await startUpstream(t, 'svc');
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  const limits = [{ requests: LIMIT, per: '1m' }];
  await writeFile(
    file,
    JSON.stringify(
      withTestListeners({
        redis: { url: redis.url, timeout: '5s' }, // generous: a loaded CI machine must not turn into store failures
        upstreams: { svc: { endpoints: [up.url] } },
        policies: {
          limit: { rateLimit: { limits } },
          strict: { rateLimit: { limits, onStoreFailure: 'failClosed' } },
        },
        routes: [
          { name: 'open', match: { prefix: '/open' }, upstream: 'svc', policies: ['limit'] },
          { name: 'closed', match: { prefix: '/closed' }, upstream: 'svc', policies: ['strict'] },
        ],
      }),
    ),
  );
  const [g1, g2] = await Promise.all([startGatewayProcess(t, file), startGatewayProcess(t, file)]);
  const ports = [g1.port, g2.port];
  const spread = async (path: string, n: number): Promise<RawResponse[]> => {
    const out: RawResponse[] = [];
    for (let i = 0; i < n; i++) out.push(await rawRequest({ port: ports[i % 2]!, path }));
    return out;
  };
  const count = (rs: RawResponse[], status: number) => rs.filter((r) => r.status === status).length;

  // One budget across both processes.
  const shared = await spread('/open/a', 25);
  t.is(count(shared, 200), LIMIT);
  t.is(count(shared, 429), 25 - LIMIT);
  const firstOk = shared[0]!;
  t.is(firstOk.headers['ratelimit-policy'], `"limit-1m";q=${LIMIT};w=60`);
  t.regex(String(firstOk.headers.ratelimit), new RegExp(`^"limit-1m";r=${LIMIT - 1};t=\\d+$`));
  for (const r of shared.filter((x) => x.status === 429)) {
    t.is(r.json().error.code, 'CW_RATE_LIMITED');
    t.is(r.headers['ratelimit-policy'], `"limit-1m";q=${LIMIT};w=60`);
    const retry = Number(r.headers['retry-after']);
    t.true(Number.isInteger(retry) && retry >= 1 && retry <= 60);
    t.is(r.headers.ratelimit, `"limit-1m";r=0;t=${retry}`);
  }
  t.deepEqual((await spread('/closed/a', 4)).map((r) => r.status), [200, 200, 200, 200]);
  const seenBefore = up.seen.length;

  // Redis dies while both gateways keep taking traffic.
  await redis.stop();
  // failOpen: each process limits on its own, in memory, with the same limit.
  for (const port of ports) {
    const rs: RawResponse[] = [];
    for (let i = 0; i < LIMIT + 3; i++) rs.push(await rawRequest({ port, path: '/open/b' }));
    t.deepEqual(rs.map((r) => r.status), [...Array(LIMIT).fill(200), 429, 429, 429], `gateway on port ${port}`);
    t.regex(String(rs[0]!.headers.ratelimit), new RegExp(`^"limit-1m";r=${LIMIT - 1};t=\\d+$`));
  }
  t.is(up.seen.length, seenBefore + 2 * LIMIT);
  // failClosed: 503 from both.
  const closed = await spread('/closed/b', 4);
  t.deepEqual(closed.map((r) => r.status), [503, 503, 503, 503]);
  t.deepEqual([...new Set(closed.map((r) => r.json().error.code))], ['CW_RATE_LIMIT_UNAVAILABLE']);
  t.is(up.seen.length, seenBefore + 2 * LIMIT, 'nothing reached the upstream on the failClosed route');
  for (const g of [g1, g2]) {
    await g.cli.waitForLog((l) => l.msg === 'rate limit store unavailable: limiting per replica in memory' && l.policy === 'limit');
    await g.cli.waitForLog((l) => l.msg === 'rate limit store unavailable: answering 503 CW_RATE_LIMIT_UNAVAILABLE' && l.policy === 'strict');
  }

  // Redis comes back (empty): both processes use it again without a restart or reload.
  await redis.start();
  for (const port of ports) {
    await until(t, `gateway on port ${port} uses Redis again`, async () => (await rawRequest({ port, path: '/closed/c' })).status !== 503);
  }
  for (const g of [g1, g2]) await g.cli.waitForLog((l) => l.msg === 'rate limit store available again' && l.policy === 'strict');
  const again = await spread('/open/c', 25);
  t.is(count(again, 200), LIMIT);
  t.is(count(again, 429), 25 - LIMIT);
  t.is(count(again, 503), 0);
});

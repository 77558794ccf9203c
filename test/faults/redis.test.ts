// Redis killed (SIGKILL) and restarted while a real gateway process is under load: the
// failOpen route keeps answering 200, the failClosed route answers 200 or the configured
// 503 CW_RATE_LIMIT_UNAVAILABLE and nothing else, the process counts no unhandled rejection
// (checked at teardown by startGatewayProcess) and Redis decides again once it is back, without
// a restart or reload.
import test from 'ava';
import { startRedis } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';
import type { RunningCli } from '../helpers/process.ts';
import { startGatewayProcess } from '../hardening/helpers/process.ts';
import { load, type LoadResult } from './helpers/load.ts';

/** The first log line from index `from` on that the predicate accepts. */
function logAfter(cli: RunningCli, from: number, pred: (l: Record<string, any>) => boolean) {
  return cli.waitForLog((l) => cli.logs.indexOf(l) >= from && pred(l));
}

const only = (r: LoadResult, prefix: string) => {
  const tally: Record<string, number> = {};
  for (const a of r.answers.filter((x) => x.path.startsWith(prefix))) {
    const key = a.error !== undefined ? `error ${a.error}` : a.code !== undefined ? `${a.status} ${a.code}` : String(a.status);
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return Object.keys(tally).sort();
};

test('Redis killed and restarted under load: failOpen keeps serving, failClosed gives only the configured 503, recovery without restart', async (t) => {
  const redis = await startRedis(t);
  const up = await startUpstream(t, 'svc');
  const gp = await startGatewayProcess(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, accessLog: { enabled: false } },
    redis: { url: redis.url, timeout: '2s' },
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      open: { rateLimit: { limits: [{ requests: 1_000_000, per: '1m' }], onStoreFailure: 'failOpen' } },
      closed: { rateLimit: { limits: [{ requests: 1_000_000, per: '1m' }], onStoreFailure: 'failClosed' } },
    },
    routes: [
      { name: 'open', upstream: 'svc', match: { prefix: '/open' }, policies: ['open'] },
      { name: 'closed', upstream: 'svc', match: { prefix: '/closed' }, policies: ['closed'] },
    ],
  });
  const cli = gp.cli;
  await cli.waitForLog((l) => l.msg === 'redis connected');
  const path = (i: number) => (i % 2 === 0 ? `/open/${i}` : `/closed/${i}`);

  // 1. Redis dies in the middle of the load.
  let mark = cli.logs.length;
  const killed = await load({ port: gp.port, total: 1000, concurrency: 12, path, at: { 300: () => redis.stop() } });
  await killed.hooks;
  t.deepEqual(only(killed, '/open'), ['200']);
  t.true(only(killed, '/closed').every((k) => k === '200' || k === '503 CW_RATE_LIMIT_UNAVAILABLE'), JSON.stringify(killed.tally));
  await logAfter(cli, mark, (l) => l.msg === 'redis connection lost; reconnecting');

  // 2. While it is down: exactly what the config says.
  const down = await load({ port: gp.port, total: 400, concurrency: 12, path });
  t.deepEqual(only(down, '/open'), ['200']);
  t.deepEqual(only(down, '/closed'), ['503 CW_RATE_LIMIT_UNAVAILABLE']);

  // 3. It comes back in the middle of the load.
  mark = cli.logs.length;
  const back = await load({ port: gp.port, total: 1000, concurrency: 12, path, at: { 300: () => redis.start() } });
  await back.hooks;
  t.deepEqual(only(back, '/open'), ['200']);
  t.true(only(back, '/closed').every((k) => k === '200' || k === '503 CW_RATE_LIMIT_UNAVAILABLE'), JSON.stringify(back.tally));
  await logAfter(cli, mark, (l) => l.msg === 'redis connected');

  // 4. Recovered, same process: Redis decides again.
  const after = await load({ port: gp.port, total: 400, concurrency: 12, path });
  t.deepEqual(after.failed, [], JSON.stringify(after.tally));
  t.is(cli.child.exitCode, null, 'the gateway process never exited');
});

// gateway.workers / --workers: N processes share the listeners (node:cluster); the primary owns
// the admin API, restarts workers that die, replaces them one at a time on SIGUSR2, and drains
// them all on SIGTERM. Rolling restarts under load lose no request.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Pool } from 'undici';
import { tempDir, withTestListeners } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startCli, type RunningCli } from '../helpers/process.ts';
import { startUpstream } from '../helpers/upstream.ts';

interface Cluster {
  gw: RunningCli;
  port: number;
  adminPort: number;
  file: string;
}

async function startCluster(t: ExecutionContext, config: Record<string, any>, args: string[] = []): Promise<Cluster> {
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  await writeFile(file, JSON.stringify(withTestListeners(config)));
  const gw = startCli(t, ['gateway', '-c', file, ...args]);
  const ready = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  return { gw, port: ready.address.port, adminPort: ready.admin.port, file };
}

/** The pids of the workers, from the primary's admin API. */
async function workerPids(c: Cluster): Promise<number[]> {
  const config = (await rawRequest({ port: c.adminPort, path: '/config' })).json();
  return config.workers.list.map((w: { pid: number }) => w.pid).sort();
}

/**
 * Keep-alive GET load from `concurrency` loops until stop() (bounded by maxRequests): counts
 * of statuses and of failed requests (connection errors included).
 */
function load(port: number, concurrency: number, maxRequests = 50_000) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency });
  let stopped = false;
  let sent = 0;
  const statuses = new Map<number, number>();
  const errors: string[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped && sent < maxRequests) {
      sent++;
      try {
        const res = await pool.request({ method: 'GET', path: `/load/${sent}` });
        await res.body.text();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      } catch (err) {
        errors.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      }
    }
  });
  return {
    get sent() {
      return sent;
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
      await pool.close();
      return { statuses: Object.fromEntries(statuses), errors };
    },
  };
}

/** Wait until the load has sent `n` more requests than now. */
async function moreRequests(l: { sent: number }, n: number): Promise<void> {
  const target = l.sent + n;
  while (l.sent < target) await new Promise((r) => setImmediate(r));
}

test('--workers 2: both workers serve, the primary merges metrics and config, reload reaches every worker', async (t) => {
  const up = await startUpstream(t, 'up');
  const c = await startCluster(t, { upstreams: { u: { endpoints: [up.url] } }, routes: [{ name: 'all', upstream: 'u' }] }, ['--workers', '2']);
  const pids = await workerPids(c);
  t.is(pids.length, 2);

  // New connections are spread over the workers: every access-log line names its process.
  for (let i = 0; i < 40; i++) t.is((await rawRequest({ port: c.port, path: `/x/${i}` })).status, 200);
  const served = new Set<number>();
  await c.gw.waitForLog(() => c.gw.logs.filter((l) => l.log === 'access').length >= 40);
  for (const l of c.gw.logs) if (l.log === 'access') served.add(l.pid);
  t.deepEqual([...served].sort(), pids);

  // /metrics on the primary is the sum over the workers.
  const metrics = (await rawRequest({ port: c.adminPort, path: '/metrics' })).text;
  const line = metrics.split('\n').find((l) => l.startsWith('causeway_requests_total{') && l.includes('route="all"') && l.includes('status_class="2xx"'));
  t.truthy(line, metrics.slice(0, 2000));
  t.is(Number(line!.split(' ').pop()), 40);
  t.regex(metrics, /causeway_cluster_workers\{state="ready"\} 2/);
  // /api/routes: the live stats of both workers, merged.
  const routes = (await rawRequest({ port: c.adminPort, path: '/api/routes' })).json();
  t.is(routes.routes.find((r: { name: string }) => r.name === 'all').total.requests, 40);

  const before = (await rawRequest({ port: c.adminPort, path: '/config' })).json();
  t.deepEqual(before.processErrors, { unhandledRejections: 0, uncaughtExceptions: 0 });
  t.is(before.workers.versions.length, 1);

  // POST /reload on the primary reloads every worker.
  const cfg = JSON.parse(await readFile(c.file, 'utf8'));
  cfg.routes[0].name = 'renamed';
  await writeFile(c.file, JSON.stringify(cfg));
  const reloaded = await rawRequest({ port: c.adminPort, path: '/reload', method: 'POST' });
  t.is(reloaded.status, 200, reloaded.text);
  t.is(reloaded.json().workers, 2);
  const after = (await rawRequest({ port: c.adminPort, path: '/config' })).json();
  t.deepEqual(after.workers.versions, [reloaded.json().version]);
  t.not(after.version, before.version);
});

test('a worker that dies is replaced and the others keep serving; SIGTERM on the primary drains all and exits 0', async (t) => {
  const up = await startUpstream(t, 'up');
  const c = await startCluster(t, { upstreams: { u: { endpoints: [up.url] } }, routes: [{ name: 'all', upstream: 'u' }] }, ['--workers', '2']);
  const [victim, survivor] = await workerPids(c);
  process.kill(victim!, 'SIGKILL');
  await c.gw.waitForLog((l) => l.code === 'CW_WORKER_EXITED' && l.pid === victim);
  // Requests during and after the restart are answered.
  for (let i = 0; i < 10; i++) t.is((await rawRequest({ port: c.port, path: '/during' })).status, 200);
  await c.gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway worker') && l.pid !== victim && l.pid !== survivor);
  const now = await workerPids(c);
  t.is(now.length, 2);
  t.true(now.includes(survivor!));
  t.false(now.includes(victim!));
  const metrics = (await rawRequest({ port: c.adminPort, path: '/metrics' })).text;
  t.regex(metrics, /causeway_cluster_worker_restarts 1/);

  c.gw.child.kill('SIGTERM');
  t.deepEqual(await c.gw.exited, { code: 0, signal: null });
  // The workers went with it.
  for (const pid of now) t.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
});

test('rolling restart under keep-alive load: SIGTERM each worker in turn, then SIGUSR2; no request fails', async (t) => {
  const up = await startUpstream(t, 'up');
  const c = await startCluster(t, { upstreams: { u: { endpoints: [up.url] } }, routes: [{ name: 'all', upstream: 'u' }] }, ['--workers', '2']);
  const first = await workerPids(c);
  const l = load(c.port, 8);
  await moreRequests(l, 200);

  // By hand: one worker at a time, each replaced before the next goes.
  for (const pid of first) {
    const readyBefore = c.gw.logs.filter((x) => typeof x.msg === 'string' && x.msg.startsWith('causeway worker')).length;
    process.kill(pid, 'SIGTERM');
    await c.gw.waitForLog((x) => x.msg === 'stopped' && x.pid === pid);
    await c.gw.waitForLog(() => c.gw.logs.filter((x) => typeof x.msg === 'string' && x.msg.startsWith('causeway worker')).length > readyBefore);
    await moreRequests(l, 200);
  }
  const second = await workerPids(c);
  t.is(second.length, 2);
  t.deepEqual(second.filter((p) => first.includes(p)), []);

  // SIGUSR2: the primary does the same by itself, starting each successor first.
  c.gw.child.kill('SIGUSR2');
  await c.gw.waitForLog((x) => x.msg === 'rolling restart done');
  await moreRequests(l, 200);
  const third = await workerPids(c);
  t.is(third.length, 2);
  t.deepEqual(third.filter((p) => second.includes(p)), []);

  const result = await l.stop();
  t.deepEqual(result.errors, []);
  t.deepEqual(Object.keys(result.statuses), ['200']);
  t.true(result.statuses[200]! >= 1000);
});

test('gateway.workers in the config; a worker that cannot start stops the whole gateway with exit 1', async (t) => {
  const up = await startUpstream(t, 'up');
  // Two workers from the config file.
  const c = await startCluster(t, { gateway: { workers: 2 }, upstreams: { u: { endpoints: [up.url] } }, routes: [{ name: 'all', upstream: 'u' }] });
  t.is((await workerPids(c)).length, 2);
  t.is((await rawRequest({ port: c.adminPort, path: '/readyz' })).json().workers.ready, 2);

  // The same edge port again: the workers cannot listen, the primary says so and exits 1.
  const dir = await tempDir(t);
  const file = join(dir, 'busy.json');
  await writeFile(
    file,
    JSON.stringify({
      gateway: { workers: 2, listen: { host: '127.0.0.1', port: c.port } },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      upstreams: { u: { endpoints: [up.url] } },
      routes: [{ name: 'all', upstream: 'u' }],
    }),
  );
  const busy = startCli(t, ['gateway', '-c', file]);
  const exit = await busy.exited;
  t.is(exit.code, 1);
  t.regex(busy.stderr(), /cannot listen on 127\.0\.0\.1:\d+ \(gateway\.listen\): the address is already in use/);
});

test('--workers with an invalid config: every error with file and line, exit 1, no worker started', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'bad.json');
  await writeFile(file, JSON.stringify({ gateway: { workers: 0 }, upstreams: {}, routes: [{ name: 'r', upstream: 'missing' }] }, null, 2));
  for (const args of [['--workers', '2'], []]) {
    const run = startCli(t, ['gateway', '-c', file, ...args]);
    t.is((await run.exited).code, 1);
    t.regex(run.stderr(), /the config is invalid \(\d+ errors?\):/);
    t.regex(run.stderr(), /bad\.json:\d+:\d+ routes\[0\]\.upstream/);
    t.false(run.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway worker')), 'no worker started');
  }
});

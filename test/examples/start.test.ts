// `npm start` end to end, from source: examples/demo/start.ts runs the monolith, the orders
// service and the real gateway (cli/main.ts) with the demo config, on free ports.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { portIsFree } from '../../examples/demo/supervisor.ts';
import { freePort } from '../helpers/upstream.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const startScript = fileURLToPath(new URL('../../examples/demo/start.ts', import.meta.url));


interface Demo {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function runStart(env: Record<string, string>): Demo {
  const proc = spawn(process.execPath, ['--import', 'tsx', startScript], {
    cwd: root,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

/**
 * Stop a demo that is still running (a failed test): SIGTERM first, so start.ts stops the
 * children it runs in their own process groups (a SIGKILL would orphan them), then SIGKILL if it
 * has not exited within 15 s.
 */
async function stopDemo(demo: Demo): Promise<void> {
  if (demo.proc.exitCode !== null || demo.proc.signalCode !== null) return;
  demo.proc.kill('SIGTERM');
  const timer = setTimeout(() => demo.proc.kill('SIGKILL'), 15_000);
  await demo.exited;
  clearTimeout(timer);
}

/** Resolves true once `text` appears in the demo's output, false if it exits or 60s pass first. */
async function waitFor(demo: Demo, text: string): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  let gone = false;
  void demo.exited.then(() => (gone = true));
  while (!demo.output().includes(text)) {
    if (gone || Date.now() > deadline) return demo.output().includes(text);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

test('a port already in use stops the demo before it starts anything, with a hint', async (t) => {
  const blocker = createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.teardown(() => blocker.close());
  const taken = (blocker.address() as AddressInfo).port;
  const demo = runStart({
    CAUSEWAY_PORT: String(await freePort()),
    CAUSEWAY_ADMIN_PORT: String(await freePort()),
    MONOLITH_PORT: String(taken),
    ORDERS_PORT: String(await freePort()),
  });
  t.teardown(() => stopDemo(demo));
  t.is(await demo.exited, 1);
  t.regex(demo.output(), new RegExp(`port ${taken} \\(monolith\\) is already in use.*MONOLITH_PORT=`));
  t.notRegex(demo.output(), /\[monolith\]/);
});

test('a bad port variable is refused', async (t) => {
  const demo = runStart({ CAUSEWAY_PORT: 'eighty' });
  t.teardown(() => stopDemo(demo));
  t.is(await demo.exited, 1);
  t.regex(demo.output(), /CAUSEWAY_PORT must be a port number/);
});

test('npm start: the whole demo through the gateway, then SIGTERM stops everything', async (t) => {
  const ports = {
    CAUSEWAY_PORT: await freePort(),
    CAUSEWAY_ADMIN_PORT: await freePort(),
    MONOLITH_PORT: await freePort(),
    ORDERS_PORT: await freePort(),
  };
  const demo = runStart(Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])));
  t.teardown(() => stopDemo(demo));
  const up = await waitFor(demo, 'Ctrl-C stops everything');
  if (!up) t.log(demo.output());
  t.true(up, 'the banner appears');
  // The gateway logs asynchronously: its line may follow the banner, which waits on the ports.
  t.true(await waitFor(demo, 'causeway gateway listening'), 'the gateway logs that it listens');
  t.regex(demo.output(), /\[gateway\] .*causeway gateway listening/);
  t.regex(demo.output(), new RegExp(`curl -i localhost:${ports.CAUSEWAY_PORT}/orders`));

  const gw = `http://127.0.0.1:${ports.CAUSEWAY_PORT}`;
  const admin = `http://127.0.0.1:${ports.CAUSEWAY_ADMIN_PORT}`;

  const index = await fetch(`${gw}/`);
  t.is(index.status, 200);
  t.is(index.headers.get('x-served-by'), 'monolith');
  t.is(((await index.json()) as { service: string }).service, 'monolith');

  const orders = await fetch(`${gw}/orders/1001`);
  t.is(orders.status, 200);
  t.is(orders.headers.get('x-served-by'), 'orders-service');
  t.is(orders.headers.get('x-migration-stage'), 'orders-service');
  t.is(((await orders.json()) as { id: number }).id, 1001);

  const plain = (await (await fetch(`${gw}/users/1`)).json()) as { preview?: string };
  t.is(plain.preview, undefined);
  const preview = (await (await fetch(`${gw}/users/1`, { headers: { 'x-preview': '1' } })).json()) as { preview?: string };
  t.is(preview.preview, 'users-v2-preview');

  const product = await fetch(`${gw}/api/catalog/KB-101`);
  t.is(product.status, 200);
  t.is(product.headers.get('x-served-by'), 'monolith');
  t.is(((await product.json()) as { sku: string }).sku, 'KB-101');

  const echo = (await (await fetch(`${gw}/debug/request`, { headers: { 'x-forwarded-for': '203.0.113.9' } })).json()) as {
    url: string;
    headers: Record<string, string>;
  };
  t.is(echo.url, '/debug/request');
  t.truthy(echo.headers['x-request-id']);
  t.truthy(echo.headers['x-forwarded-for']);
  t.false(echo.headers['x-forwarded-for']!.includes('203.0.113.9'), 'a client-supplied X-Forwarded-For is not believed');

  t.is((await fetch(`${admin}/readyz`)).status, 200);
  // The banner's dashboard and live-stats lines answer.
  t.regex(demo.output(), /dashboard: http:\/\/localhost:\d+\/dashboard\//);
  const page = await fetch(`${admin}/dashboard/`);
  t.is(page.status, 200);
  t.regex(await page.text(), /<html/i);
  const stats = (await (await fetch(`${admin}/api/routes`)).json()) as { routes: Array<{ name: string; total: { requests: number } }> };
  t.true(stats.routes.some((r) => r.total.requests > 0), 'the requests above are counted');

  demo.proc.kill('SIGTERM');
  t.is(await demo.exited, 0);
  t.regex(demo.output(), /everything stopped/);
  for (const [name, port] of Object.entries(ports)) {
    t.true(await portIsFree('127.0.0.1', port), `${name} ${port} is free again`);
  }
});

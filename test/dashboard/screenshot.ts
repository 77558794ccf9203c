// `npm run screenshot`: regenerate docs/dashboard.png from a real gateway with a little traffic.
// Not a test (the tests take their screenshots into a temp dir); run it when the page changes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gateway } from '../../gateway/server.ts';
import { launchChromium } from '../helpers/browser.ts';

const OUT = fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url));

async function upstream(name: string, slowMs: number, failShare = 0): Promise<Server> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    const fail = failShare > 0 && ++n % Math.round(1 / failShare) === 0;
    setTimeout(() => {
      res.writeHead(fail ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ upstream: name }));
    }, Math.random() * slowMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const url = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

function get(port: number, path: string): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', () => resolve());
    req.end();
  });
}

const monolith = await upstream('monolith', 25);
const orders = await upstream('orders-svc', 8, 0.02);
const users = await upstream('users-svc', 4);
const dir = await mkdtemp(join(tmpdir(), 'causeway-screenshot-'));
const file = join(dir, 'causeway.json');
await writeFile(
  file,
  JSON.stringify({
    gateway: { listen: { host: '127.0.0.1', port: 0 }, accessLog: { enabled: false } },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    upstreams: {
      monolith: { endpoints: [url(monolith)] },
      'orders-svc': { endpoints: [url(orders)] },
      'users-svc': { endpoints: [url(users)] },
      reports: { endpoints: ['http://127.0.0.1:9'] },
    },
    policies: { 'per-ip': { rateLimit: { limits: [{ requests: 100000, per: '1m' }] } }, keys: { apiKey: {} } },
    consumers: { shop: { keys: ['shop-key-0123456789abcdef'] } },
    defaultPolicies: ['per-ip'],
    routes: [
      { name: 'orders', match: { prefix: '/api/orders' }, backends: [{ upstream: 'monolith', weight: 80 }, { upstream: 'orders-svc', weight: 20 }] },
      { name: 'users', match: { prefix: '/api/users' }, upstream: 'users-svc' },
      { name: 'admin-panel', match: { prefix: '/admin' }, upstream: 'monolith', policies: ['keys'] },
      { name: 'reports', match: { prefix: '/reports' }, upstream: 'reports' },
      { name: 'catch-all', match: { prefix: '/' }, upstream: 'monolith' },
    ],
  }),
);
const gw = await Gateway.start({ config: file, logger: 'warn', watch: false });
const port = gw.address().port;
const browser = await launchChromium();
let running = true;
const load = (async () => {
  const paths = ['/api/orders/1', '/api/orders/2', '/api/orders/3', '/api/users/7', '/api/users/8', '/', '/about', '/admin'];
  let i = 0;
  while (running) {
    await Promise.all(Array.from({ length: 8 }, () => get(port, paths[i++ % paths.length]!)));
    if (i % 200 === 0) await get(port, '/reports/q3');
  }
})();
try {
  // Let a few slots of traffic build up so the rates and percentiles settle.
  await new Promise((r) => setTimeout(r, 12_000));
  const page = await (await browser.newContext({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 })).newPage();
  await page.goto(`${gw.adminUrl()}/dashboard/`);
  await page.locator('#routes tr[data-route="orders"]').waitFor();
  await page.waitForFunction(() => Number(document.querySelector('#status')?.getAttribute('data-polls')) >= 2);
  await page.screenshot({ path: OUT, fullPage: true });
  console.log(`wrote ${OUT}`);
} finally {
  running = false;
  await load;
  await browser.close();
  await gw.close();
  for (const s of [monolith, orders, users]) s.close();
  await rm(dir, { recursive: true, force: true });
}

// The dashboard in a real browser (Debian's chromium) against a real gateway: it shows the
// routes, the numbers move with traffic, upstream health and the snapshot version show, and
// with admin.token the page works from ?token= only.
import { existsSync, statSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Page } from 'playwright-core';
import { dashboardDir } from '../../gateway/dashboard.ts';
import { launchChromium } from '../helpers/browser.ts';
import { startGateway, tempDir } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { freePort, startUpstream } from '../helpers/upstream.ts';

const TOKEN = 'dashboard-token-0123456789abcdef';

/** The built dashboard must exist and be newer than its sources (`npm run build`). */
async function builtDashboard(t: ExecutionContext): Promise<void> {
  const dir = dashboardDir();
  t.truthy(dir, 'dist/dashboard is missing: run npm run build');
  const built = statSync(join(dir!, 'index.html')).mtimeMs;
  const src = new URL('../../dashboard/', import.meta.url);
  const files = ['index.html', ...(await readdir(new URL('src/', src))).map((f) => `src/${f}`)];
  for (const f of files) {
    const changed = (await stat(new URL(f, src))).mtimeMs;
    t.true(changed <= built + 1000, `dashboard/${f} changed after the last build: run npm run build`);
  }
}

/** A page in a fresh browser; `problems` collects script errors and CSP violations. */
async function openBrowser(t: ExecutionContext): Promise<{ page: Page; problems: string[] }> {
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return { page, problems };
}

const cell = (route: string, field: string) => `#routes tr[data-route="${route}"] [data-field="${field}"]`;

test.serial('the dashboard shows the routes and its numbers move with traffic', async (t) => {
  await builtDashboard(t);
  const shots = await tempDir(t);
  const mono = await startUpstream(t, 'monolith');
  const svc = await startUpstream(t, 'orders-svc', (_req, res) => {
    res.writeHead(500);
    res.end('broken');
  });
  const dead = await freePort();
  const gw = await startGateway(t, {
    upstreams: { monolith: { endpoints: [mono.url] }, 'orders-svc': { endpoints: [svc.url] }, gone: { endpoints: [`http://127.0.0.1:${dead}`] } },
    routes: [
      { name: 'orders', match: { prefix: '/orders' }, backends: [{ upstream: 'monolith', weight: 9 }, { upstream: 'orders-svc', weight: 1 }] },
      { name: 'users', match: { prefix: '/users' }, upstream: 'monolith' },
      { name: 'legacy', match: { prefix: '/legacy' }, upstream: 'gone' },
    ],
  });
  const { page, problems } = await openBrowser(t);
  const res = await page.goto(`${gw.adminUrl}/`);
  t.is(new URL(page.url()).pathname, '/dashboard/', '/ redirects to the dashboard');
  t.regex(res?.headers()['content-security-policy'] ?? '', /default-src 'none'/);

  await page.locator(cell('orders', 'name')).waitFor();
  t.deepEqual(await page.locator('#routes tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-route'))), ['orders', 'users', 'legacy']);
  t.is(await page.locator(cell('orders', 'total')).textContent(), '0');
  t.is(await page.locator(cell('orders', 'rate')).textContent(), '0.00');
  t.is(await page.locator('#snap-version').textContent(), gw.gw.snapshot.version);
  t.is(await page.locator('#migration tr[data-route="orders"][data-backend="monolith"] [data-field="configured"]').textContent(), ' 90%');
  t.is(await page.locator('#migration tr[data-route="orders"][data-backend="monolith"] [data-field="rollout"]').textContent(), 'no rollout');
  t.is(await page.locator('#upstreams tr[data-upstream="gone"] [data-field="state"]').textContent(), 'healthy');
  await page.screenshot({ path: join(shots, '1-idle.png'), fullPage: true });

  const statuses: number[] = [];
  for (let i = 0; i < 30; i++) statuses.push((await rawRequest({ port: gw.port, path: `/orders/${i}` })).status);
  t.is((await rawRequest({ port: gw.port, path: '/legacy' })).status, 502);
  const errors = statuses.filter((s) => s === 500).length;

  // Wait for the page's next polls to show the traffic (no sleeps: the DOM is watched).
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === '30', cell('orders', 'total'), { timeout: 15_000 });
  t.not(await page.locator(cell('orders', 'rate')).textContent(), '0.00');
  t.not(await page.locator(cell('orders', 'p99')).textContent(), '–');
  t.is(await page.locator(cell('orders', '5xx')).textContent(), errors === 0 ? '0%' : `${((errors / 30) * 100).toFixed(errors / 30 < 0.1 ? 1 : 0)}%`);
  t.is(await page.locator(cell('users', 'total')).textContent(), '0');
  const share = `${(((30 - errors) / 30) * 100).toFixed(0)}%`;
  t.is(await page.locator(`${cell('orders', 'backends')} [data-backend="monolith"] b`).textContent(), share);
  await page.waitForFunction(() => document.querySelector('#upstreams tr[data-upstream="gone"] [data-field="state"]')?.textContent?.startsWith('ejected'), undefined, { timeout: 15_000 });
  t.is(await page.locator('#upstreams tr[data-upstream="gone"] [data-field="connectFailures"]').textContent(), '1');
  await page.screenshot({ path: join(shots, '2-traffic.png'), fullPage: true });

  // A reload shows the new version; the stats of routes that stayed are kept.
  await gw.rewrite({
    upstreams: { monolith: { endpoints: [mono.url] } },
    routes: [
      { name: 'orders', match: { prefix: '/orders' }, upstream: 'monolith' },
      { name: 'users', match: { prefix: '/users' }, upstream: 'monolith' },
    ],
  });
  t.true((await gw.gw.reload('test')).ok);
  const version = gw.gw.snapshot.version;
  await page.waitForFunction((v) => document.querySelector('#snap-version')?.textContent === v, version, { timeout: 15_000 });
  t.is(await page.locator('#snap-reloads').textContent(), '1');
  t.is(await page.locator(cell('orders', 'total')).textContent(), '30');
  t.is(await page.locator('#routes tr[data-route="legacy"]').count(), 0);
  await page.screenshot({ path: join(shots, '3-reloaded.png'), fullPage: true });
  for (const f of ['1-idle.png', '2-traffic.png', '3-reloaded.png']) t.true(existsSync(join(shots, f)) && statSync(join(shots, f)).size > 1000, f);
  t.deepEqual(problems, [], 'no script errors and no CSP violations on the page');
});

test.serial('with admin.token the page asks for the token, then takes it from ?token= into sessionStorage', async (t) => {
  await builtDashboard(t);
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    admin: { token: TOKEN },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'api', match: { prefix: '/' }, upstream: 'svc' }],
  });
  const { page, problems } = await openBrowser(t);
  // The static files need no token; the data does.
  await page.goto(`${gw.adminUrl}/dashboard/`);
  await page.locator('#auth').waitFor({ state: 'visible' });
  t.is(await page.locator('#routes tbody tr').count(), 0);

  await page.goto(`${gw.adminUrl}/dashboard/?token=${TOKEN}`);
  await page.locator(cell('api', 'name')).waitFor();
  t.true(await page.locator('#auth').isHidden());
  t.is(new URL(page.url()).search, '', 'the token leaves the address bar');
  t.is(await page.evaluate(() => sessionStorage.getItem('causeway.adminToken')), TOKEN);
  // Later loads of the same tab keep working without ?token=.
  await page.reload();
  await page.locator(cell('api', 'name')).waitFor();
  t.true(await page.locator('#auth').isHidden());
  t.deepEqual(problems, [], 'no script errors and no CSP violations on the page');
});

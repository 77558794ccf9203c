// The dashboard's static files on the admin port: a fixed map, right types, no traversal.
import test from 'ava';
import Fastify from 'fastify';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { dashboardDir, registerDashboard } from '../../gateway/dashboard.ts';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';

test('the built files are served with their types and security headers; anything else is a 404', async (t) => {
  const dir = dashboardDir();
  t.truthy(dir, 'dist/dashboard is missing: run npm run build');
  const gw = await startGateway(t, { admin: { token: 'static-token-0123456789abcdef' }, routes: [] });
  const index = await rawRequest({ port: gw.adminPort, path: '/dashboard/' });
  t.is(index.status, 200, 'the static files need no token');
  t.regex(String(index.headers['content-type']), /^text\/html/);
  t.regex(String(index.headers['content-security-policy']), /script-src 'self'/);
  t.is(index.headers['referrer-policy'], 'no-referrer');
  t.is(index.headers['x-content-type-options'], 'nosniff');
  t.is(index.headers['cache-control'], 'no-cache');
  const assets = readdirSync(join(dir!, 'assets'));
  const js = assets.find((f) => f.endsWith('.js'))!;
  const css = assets.find((f) => f.endsWith('.css'))!;
  t.true(index.text.includes(`/dashboard/assets/${js}`));
  const script = await rawRequest({ port: gw.adminPort, path: `/dashboard/assets/${js}` });
  t.is(script.status, 200);
  t.regex(String(script.headers['content-type']), /^text\/javascript/);
  t.regex(String(script.headers['cache-control']), /immutable/);
  t.regex(String((await rawRequest({ port: gw.adminPort, path: `/dashboard/assets/${css}` })).headers['content-type']), /^text\/css/);
  const root = await rawRequest({ port: gw.adminPort, path: '/' });
  t.is(root.status, 302);
  t.is(root.headers.location, '/dashboard/');
  for (const path of ['/dashboard/nope.js', '/dashboard/../package.json', '/dashboard/%2e%2e/package.json', '/dashboard/..%2f..%2fpackage.json', '/dashboard/assets/../../../../etc/passwd', '/dashboard/assets']) {
    const r = await rawRequest({ port: gw.adminPort, path });
    t.true(r.status === 404 || r.status === 401, `${path} → ${r.status}`);
    t.false(r.text.includes('"name": "causeway"') || r.text.includes('root:'), path);
    if (r.status === 404 && r.text.startsWith('{')) t.regex(r.json().error.code, /CW_ADMIN_NOT_FOUND|FST_ERR_NOT_FOUND/);
  }
});

test('without a build, /dashboard/ says so in a 503', async (t) => {
  const app = Fastify();
  registerDashboard(app, null);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  const r = await rawRequest({ port, path: '/dashboard/' });
  t.is(r.status, 503);
  t.is(r.json().error.code, 'CW_DASHBOARD_NOT_BUILT');
  t.regex(r.json().error.message, /npm run build/);
});

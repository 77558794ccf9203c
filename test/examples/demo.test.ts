// The demo's two applications, started in-process on port 0 and exercised over real HTTP,
// and the demo's gateway config checked against the config model.
import test, { type ExecutionContext } from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIssues } from '../../config/issues.ts';
import { loadConfig } from '../../config/load.ts';
import type { ConfigModel } from '../../config/model.ts';
import { startMonolith } from '../../examples/demo/monolith.ts';
import { startOrdersService } from '../../examples/demo/orders-service.ts';

const demoDir = fileURLToPath(new URL('../../examples/demo/', import.meta.url));

async function monolith(t: ExecutionContext): Promise<string> {
  const server = await startMonolith({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
  t.true(server.port > 0);
  return `http://127.0.0.1:${server.port}`;
}

async function ordersService(t: ExecutionContext): Promise<string> {
  const server = await startOrdersService({ port: 0, host: '127.0.0.1' });
  t.teardown(() => server.close());
  t.true(server.port > 0);
  return `http://127.0.0.1:${server.port}`;
}

async function getJson(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const body = (await res.json()) as any;
  return { res, body };
}

const postJson = (url: string, body: unknown) =>
  getJson(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

// ---------------------------------------------------------------- monolith

test('monolith: index and health, JSON with x-served-by', async (t) => {
  const base = await monolith(t);
  const index = await getJson(`${base}/`);
  t.is(index.res.status, 200);
  t.is(index.res.headers.get('x-served-by'), 'monolith');
  t.regex(index.res.headers.get('content-type') ?? '', /^application\/json/);
  t.is(index.body.service, 'monolith');
  t.true(index.body.endpoints.includes('GET /debug/request'));

  const health = await getJson(`${base}/health`);
  t.is(health.res.status, 200);
  t.is(health.body.status, 'ok');
  t.is(health.res.headers.get('x-served-by'), 'monolith');
});

test('monolith: lists users and fetches one; unknown ids are 404 JSON', async (t) => {
  const base = await monolith(t);
  const list = await getJson(`${base}/users`);
  t.is(list.res.status, 200);
  t.is(list.body.count, 3);
  t.deepEqual(
    list.body.users.map((u: { email: string }) => u.email),
    ['ada@example.com', 'grace@example.com', 'alan@example.com'],
  );

  const one = await getJson(`${base}/users/2`);
  t.is(one.res.status, 200);
  t.is(one.body.name, 'Grace Hopper');
  t.is(one.body.preview, undefined);

  for (const path of ['/users/99', '/users/abc', '/users/0']) {
    const missing = await getJson(`${base}${path}`);
    t.is(missing.res.status, 404, path);
    t.is(missing.body.error, 'not_found', path);
    t.is(missing.res.headers.get('x-served-by'), 'monolith', path);
  }
});

test('monolith: POST /users creates a user (201, Location) that can then be read', async (t) => {
  const base = await monolith(t);
  const created = await postJson(`${base}/users`, { name: '  Katherine Johnson ', email: 'Katherine@Example.com' });
  t.is(created.res.status, 201);
  t.is(created.res.headers.get('x-served-by'), 'monolith');
  t.is(created.body.id, 4);
  t.is(created.body.name, 'Katherine Johnson');
  t.is(created.body.email, 'katherine@example.com');
  t.is(created.body.role, 'customer');
  t.is(created.res.headers.get('location'), '/users/4');

  const read = await getJson(`${base}/users/4`);
  t.is(read.res.status, 200);
  t.deepEqual(read.body, created.body);
  t.is((await getJson(`${base}/users`)).body.count, 4);
});

test('monolith: POST /users rejects invalid bodies with 400 and says why', async (t) => {
  const base = await monolith(t);

  const invalid = await postJson(`${base}/users`, { name: '', email: 'not-an-email', role: 'root', extra: true });
  t.is(invalid.res.status, 400);
  t.is(invalid.body.error, 'invalid_user');
  t.deepEqual(
    invalid.body.details.map((d: { field: string }) => d.field),
    ['name', 'email', 'role', 'extra'],
  );

  const notObject = await postJson(`${base}/users`, ['Ada']);
  t.is(notObject.res.status, 400);
  t.is(notObject.body.details[0].field, '(body)');

  const badJson = await getJson(`${base}/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"name": "Ada",',
  });
  t.is(badJson.res.status, 400);
  t.is(badJson.body.error, 'invalid_json');

  const empty = await getJson(`${base}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' });
  t.is(empty.res.status, 400);
  t.is(empty.body.error, 'invalid_json');

  const notJson = await getJson(`${base}/users`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'name=Ada' });
  t.is(notJson.res.status, 415);
  t.is(notJson.body.error, 'unsupported_media_type');

  const tooBig = await postJson(`${base}/users`, { name: 'x'.repeat(70_000), email: 'big@example.com' });
  t.is(tooBig.res.status, 413);

  const taken = await postJson(`${base}/users`, { name: 'Ada again', email: 'ADA@example.com' });
  t.is(taken.res.status, 409);
  t.is(taken.body.error, 'email_taken');

  // Nothing invalid was stored.
  t.is((await getJson(`${base}/users`)).body.count, 3);
});

test('monolith: marks users with the preview route the gateway sets', async (t) => {
  const base = await monolith(t);
  const one = await getJson(`${base}/users/1`, { headers: { 'x-preview-route': 'users-v2-preview' } });
  t.is(one.res.status, 200);
  t.is(one.body.preview, 'users-v2-preview');
  const list = await getJson(`${base}/users`, { headers: { 'x-preview-route': 'users-v2-preview' } });
  t.true(list.body.users.every((u: { preview?: string }) => u.preview === 'users-v2-preview'));
});

test('monolith: legacy orders and the catalog', async (t) => {
  const base = await monolith(t);
  const orders = await getJson(`${base}/orders`);
  t.is(orders.res.status, 200);
  t.deepEqual(
    orders.body.orders.map((o: { id: number }) => o.id),
    [1001, 1002, 1003],
  );
  const order = await getJson(`${base}/orders/1001`);
  t.is(order.body.totalCents, 11300);
  t.is(order.body.userId, 1);
  t.is((await fetch(`${base}/orders/999`)).status, 404);

  const catalog = await getJson(`${base}/catalog`);
  t.is(catalog.body.count, 4);
  const product = await getJson(`${base}/catalog/kb-101`);
  t.is(product.res.status, 200);
  t.is(product.body.sku, 'KB-101');
  t.is(product.body.priceCents, 8900);
  const missing = await getJson(`${base}/catalog/NOPE-1`);
  t.is(missing.res.status, 404);
  t.is(missing.body.error, 'not_found');
});

test('monolith: /debug/request echoes method, url and headers as received', async (t) => {
  const base = await monolith(t);
  const { res, body } = await getJson(`${base}/debug/request?x=1&y=two`, {
    headers: { 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'req-123', 'X-Custom-Thing': 'yes' },
  });
  t.is(res.status, 200);
  t.is(res.headers.get('x-served-by'), 'monolith');
  t.is(body.receivedBy, 'monolith');
  t.is(body.method, 'GET');
  t.is(body.url, '/debug/request?x=1&y=two');
  t.is(body.headers['x-forwarded-for'], '203.0.113.7');
  t.is(body.headers['x-request-id'], 'req-123');
  t.is(body.headers['x-custom-thing'], 'yes');
  t.is(body.headers.host, new URL(base).host);
});

test('monolith: unknown paths are 404 JSON, wrong methods 405 with Allow, HEAD works', async (t) => {
  const base = await monolith(t);
  const missing = await getJson(`${base}/nope/nothing`);
  t.is(missing.res.status, 404);
  t.is(missing.res.headers.get('x-served-by'), 'monolith');
  t.deepEqual(missing.body, { error: 'not_found', message: 'Nothing here: /nope/nothing' });

  const wrong = await getJson(`${base}/orders`, { method: 'DELETE' });
  t.is(wrong.res.status, 405);
  t.is(wrong.res.headers.get('allow'), 'GET, HEAD');
  t.is(wrong.body.error, 'method_not_allowed');

  const head = await fetch(`${base}/catalog`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('x-served-by'), 'monolith');
  t.is(await head.text(), '');

  const badEncoding = await getJson(`${base}/users/%E0%A4%A`);
  t.is(badEncoding.res.status, 400);
});

test('monolith: instances do not share state, and close() frees the port', async (t) => {
  const a = await startMonolith({ port: 0, host: '127.0.0.1' });
  const b = await startMonolith({ port: 0, host: '127.0.0.1' });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const created = await postJson(`http://127.0.0.1:${a.port}/users`, { name: 'Only in A', email: 'a@example.com' });
  t.is(created.res.status, 201);
  t.is((await getJson(`http://127.0.0.1:${b.port}/users`)).body.count, 3);

  await a.close();
  await a.close(); // idempotent
  await t.throwsAsync(fetch(`http://127.0.0.1:${a.port}/health`));
});

// ---------------------------------------------------------------- orders service

test('orders-service: index, health and the seeded orders, all with x-served-by', async (t) => {
  const base = await ordersService(t);
  const index = await getJson(`${base}/`);
  t.is(index.res.status, 200);
  t.is(index.body.service, 'orders-service');
  t.is(index.res.headers.get('x-served-by'), 'orders-service');
  t.is((await getJson(`${base}/health`)).body.status, 'ok');

  const list = await getJson(`${base}/orders`);
  t.is(list.res.status, 200);
  t.is(list.res.headers.get('x-served-by'), 'orders-service');
  t.is(list.body.count, 3);

  const one = await getJson(`${base}/orders/1002`);
  t.is(one.res.status, 200);
  t.is(one.body.status, 'shipped');
  t.is(one.body.items[0].sku, 'MN-303');

  const missing = await getJson(`${base}/orders/4242`);
  t.is(missing.res.status, 404);
  t.is(missing.body.error, 'not_found');
  t.is(missing.res.headers.get('x-served-by'), 'orders-service');

  // The monolith's other resources are not here.
  const users = await getJson(`${base}/users`);
  t.is(users.res.status, 404);
  t.is(users.res.headers.get('x-served-by'), 'orders-service');
});

test('orders-service: filters by userId and status, rejects bad filters', async (t) => {
  const base = await ordersService(t);
  const mine = await getJson(`${base}/orders?userId=1`);
  t.deepEqual(
    mine.body.orders.map((o: { id: number }) => o.id),
    [1001, 1003],
  );
  const shipped = await getJson(`${base}/orders?status=shipped`);
  t.deepEqual(
    shipped.body.orders.map((o: { id: number }) => o.id),
    [1002],
  );
  t.is((await getJson(`${base}/orders?userId=1&status=shipped`)).body.count, 0);

  const badUser = await getJson(`${base}/orders?userId=me`);
  t.is(badUser.res.status, 400);
  t.is(badUser.body.error, 'invalid_query');
  const badStatus = await getJson(`${base}/orders?status=lost`);
  t.is(badStatus.res.status, 400);
});

test('orders-service: POST /orders prices the items from the catalog and stores the order', async (t) => {
  const base = await ordersService(t);
  const created = await postJson(`${base}/orders`, {
    userId: 3,
    items: [
      { sku: 'KB-101', quantity: 2 },
      { sku: 'CB-404', quantity: 3 },
    ],
  });
  t.is(created.res.status, 201);
  t.is(created.res.headers.get('x-served-by'), 'orders-service');
  t.is(created.body.id, 1004);
  t.is(created.res.headers.get('location'), '/orders/1004');
  t.is(created.body.status, 'pending');
  t.is(created.body.totalCents, 2 * 8900 + 3 * 1200);
  t.deepEqual(created.body.items[0], { sku: 'KB-101', name: 'Mechanical keyboard', quantity: 2, unitPriceCents: 8900 });

  const read = await getJson(`${base}/orders/1004`);
  t.deepEqual(read.body, created.body);
  t.deepEqual(
    (await getJson(`${base}/orders?userId=3`)).body.orders.map((o: { id: number }) => o.id),
    [1004],
  );
});

test('orders-service: POST /orders rejects invalid orders with 400 and details', async (t) => {
  const base = await ordersService(t);
  const invalid = await postJson(`${base}/orders`, {
    userId: 0,
    items: [{ sku: 'NOPE-1', quantity: 1 }, { sku: 'KB-101', quantity: 0, colour: 'red' }, 'KB-101'],
    coupon: 'FREE',
  });
  t.is(invalid.res.status, 400);
  t.is(invalid.body.error, 'invalid_order');
  t.deepEqual(
    invalid.body.details.map((d: { field: string }) => d.field),
    ['userId', 'items[0].sku', 'items[1].quantity', 'items[1].colour', 'items[2]', 'coupon'],
  );
  t.regex(invalid.body.details[1].problem, /unknown product "NOPE-1"/);

  const noItems = await postJson(`${base}/orders`, { userId: 1, items: [] });
  t.is(noItems.res.status, 400);
  t.deepEqual(noItems.body.details, [{ field: 'items', problem: 'required, a list of 1 to 50 items' }]);

  const badJson = await getJson(`${base}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'nope' });
  t.is(badJson.res.status, 400);
  t.is(badJson.body.error, 'invalid_json');

  t.is((await getJson(`${base}/orders`)).body.count, 3);
});

// ---------------------------------------------------------------- gateway config

async function loadDemo(env: Record<string, string | undefined> = {}): Promise<ConfigModel> {
  const loaded = await loadConfig(demoDir, env);
  if (!loaded.ok) throw new Error(`the demo config is invalid:\n${formatIssues(loaded.issues)}`);
  return loaded.model;
}

test('demo config: four YAML files, each with the schema comment, valid for the real loader', async (t) => {
  const files = readdirSync(demoDir).filter((f) => f.endsWith('.yaml')).sort();
  t.deepEqual(files, ['gateway.yaml', 'policies.yaml', 'routes.yaml', 'upstreams.yaml']);
  for (const file of files) {
    t.is(readFileSync(join(demoDir, file), 'utf8').split('\n')[0], '# yaml-language-server: $schema=../../config/causeway.schema.json', file);
  }
  const loaded = await loadConfig(demoDir, {});
  t.true(loaded.ok, loaded.ok ? '' : formatIssues(loaded.issues));
});

test('demo config: ports and endpoints follow the environment, with the documented defaults', async (t) => {
  const merged = await loadDemo();
  t.deepEqual(merged.gateway?.listen, { host: '0.0.0.0', port: 8080 });
  t.deepEqual(merged.admin?.listen, { host: '127.0.0.1', port: 9901 });
  t.deepEqual(merged.upstreams?.monolith?.endpoints, ['http://127.0.0.1:3001']);
  t.deepEqual(merged.upstreams?.orders?.endpoints, ['http://127.0.0.1:3002']);

  const env = { CAUSEWAY_PORT: '18080', CAUSEWAY_ADMIN_PORT: '19901', MONOLITH_PORT: '13001', ORDERS_PORT: '13002' };
  const custom = await loadDemo(env);
  t.is(custom.gateway?.listen?.port, 18080);
  t.is(custom.admin?.listen?.port, 19901);
  t.deepEqual(custom.upstreams?.monolith?.endpoints, ['http://127.0.0.1:13001']);
  t.deepEqual(custom.upstreams?.orders?.endpoints, ['http://127.0.0.1:13002']);
});

test('demo config: the routes show catch-all, migration, header routing, rewriting and policies', async (t) => {
  const merged = await loadDemo();
  const routes = new Map((merged.routes ?? []).map((r) => [r.name, r]));
  t.deepEqual([...routes.keys()].sort(), ['catalog-api', 'monolith', 'orders', 'orders-write', 'users-v2-preview']);
  t.deepEqual(routes.get('orders-write')?.policies, ['partner-key']);
  t.deepEqual(routes.get('catalog-api')?.policies, ['catalog-limit']);
  t.deepEqual(merged.defaultPolicies, ['web-apps']);
  for (const route of routes.values()) t.truthy(merged.upstreams?.[route.upstream ?? ''], `${route.name} names a known upstream`);

  t.deepEqual(routes.get('monolith')?.match, { prefix: '/' });
  t.is(routes.get('monolith')?.upstream, 'monolith');

  t.deepEqual(routes.get('orders')?.match, { prefix: '/orders' });
  t.is(routes.get('orders')?.upstream, 'orders');
  t.truthy(routes.get('orders')?.responseHeaders?.set);

  const preview = routes.get('users-v2-preview');
  t.deepEqual(preview?.match?.headers, { 'x-preview': '1' });
  t.is(preview?.upstream, 'monolith');
  t.is(preview?.requestHeaders?.set?.['x-preview-route'], 'users-v2-preview');

  const catalog = routes.get('catalog-api');
  t.is(catalog?.match?.prefix, '/api/catalog');
  t.deepEqual(catalog?.rewrite, { prefix: '/catalog' });
  t.is(catalog?.upstream, 'monolith');
});

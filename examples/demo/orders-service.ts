// The demo "orders" service: the first piece carved out of the monolith. The gateway's `orders`
// route sends /orders and /orders/... here unchanged; everything else still goes to the monolith.
//
//   node dist/examples/demo/orders-service.js --port 3002
//
// Every response carries `x-served-by: orders-service`. Compared with the monolith it can also
// create orders (POST /orders) and filter the list (GET /orders?userId=1&status=shipped).
import { seedCatalog, seedOrders, type Order } from './data.ts';
import {
  createApp,
  HttpError,
  isMain,
  listen,
  readJsonBody,
  runMain,
  sendJson,
  type RouteDef,
  type RunningServer,
  type ServerOptions,
} from './http.ts';

export const ORDERS_DEFAULT_PORT = 3002;

const STATUSES = new Set<Order['status']>(['pending', 'processing', 'shipped', 'delivered']);
const ORDER_FIELDS = new Set(['userId', 'items']);
const ITEM_FIELDS = new Set(['sku', 'quantity']);

type Details = Array<{ field: string; problem: string }>;

/** Validate a POST /orders body against the known SKUs; returns the problems found (empty when valid). */
export function validateNewOrder(body: unknown, knownSkus: ReadonlySet<string>): Details {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return [{ field: '(body)', problem: 'must be a JSON object like {"userId": 1, "items": [{"sku": "KB-101", "quantity": 1}]}' }];
  }
  const b = body as Record<string, unknown>;
  const details: Details = [];
  if (!Number.isInteger(b.userId) || (b.userId as number) < 1) details.push({ field: 'userId', problem: 'required, a positive integer' });
  if (!Array.isArray(b.items) || b.items.length === 0 || b.items.length > 50) {
    details.push({ field: 'items', problem: 'required, a list of 1 to 50 items' });
  } else {
    b.items.forEach((item: unknown, i) => {
      const at = `items[${i}]`;
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        details.push({ field: at, problem: 'must be an object {"sku", "quantity"}' });
        return;
      }
      const it = item as Record<string, unknown>;
      if (typeof it.sku !== 'string' || it.sku === '') details.push({ field: `${at}.sku`, problem: 'required, a product SKU' });
      else if (!knownSkus.has(it.sku)) details.push({ field: `${at}.sku`, problem: `unknown product ${JSON.stringify(it.sku)}` });
      if (!Number.isInteger(it.quantity) || (it.quantity as number) < 1 || (it.quantity as number) > 100) {
        details.push({ field: `${at}.quantity`, problem: 'required, an integer from 1 to 100' });
      }
      for (const key of Object.keys(it)) if (!ITEM_FIELDS.has(key)) details.push({ field: `${at}.${key}`, problem: 'unknown field' });
    });
  }
  for (const key of Object.keys(b)) if (!ORDER_FIELDS.has(key)) details.push({ field: key, problem: 'unknown field' });
  return details;
}

/** Start the demo orders service. Port 0 (default) picks a free port. */
export function startOrdersService(options: ServerOptions = {}): Promise<RunningServer> {
  const orders = seedOrders();
  const prices = new Map(seedCatalog().map((p) => [p.sku, p]));
  const knownSkus = new Set(prices.keys());
  const startedAt = Date.now();

  const routes: RouteDef[] = [
    {
      method: 'GET',
      path: '/',
      handler: ({ res }) =>
        sendJson(res, 200, {
          service: 'orders-service',
          description: 'Orders, carved out of the monolith. Reached through the gateway route "orders".',
          endpoints: ['GET /orders', 'GET /orders?userId=&status=', 'GET /orders/:id', 'POST /orders', 'GET /health'],
        }),
    },
    {
      method: 'GET',
      path: '/health',
      handler: ({ res }) =>
        sendJson(res, 200, { status: 'ok', service: 'orders-service', uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000) }),
    },
    {
      method: 'GET',
      path: '/orders',
      handler: ({ res, query }) => {
        let list = orders;
        const userId = query.get('userId');
        if (userId !== null) {
          if (!/^[1-9][0-9]{0,8}$/.test(userId)) {
            throw new HttpError(400, 'invalid_query', 'userId must be a positive integer.', [{ field: 'userId', problem: 'a positive integer' }]);
          }
          list = list.filter((o) => o.userId === Number(userId));
        }
        const status = query.get('status');
        if (status !== null) {
          if (!STATUSES.has(status as Order['status'])) {
            throw new HttpError(400, 'invalid_query', `status must be one of ${[...STATUSES].join(', ')}.`, [
              { field: 'status', problem: `one of ${[...STATUSES].join(', ')}` },
            ]);
          }
          list = list.filter((o) => o.status === status);
        }
        sendJson(res, 200, { orders: list, count: list.length });
      },
    },
    {
      method: 'GET',
      path: '/orders/:id',
      handler: ({ res, params }) => {
        const id = params.id !== undefined && /^[1-9][0-9]{0,8}$/.test(params.id) ? Number(params.id) : NaN;
        const order = orders.find((o) => o.id === id);
        if (!order) throw new HttpError(404, 'not_found', `No order ${JSON.stringify(params.id)}.`);
        sendJson(res, 200, order);
      },
    },
    {
      method: 'POST',
      path: '/orders',
      handler: async ({ req, res }) => {
        const body = await readJsonBody(req);
        const details = validateNewOrder(body, knownSkus);
        if (details.length > 0) throw new HttpError(400, 'invalid_order', 'The order is not valid.', details);
        const b = body as { userId: number; items: Array<{ sku: string; quantity: number }> };
        const items = b.items.map(({ sku, quantity }) => {
          const product = prices.get(sku)!;
          return { sku, name: product.name, quantity, unitPriceCents: product.priceCents };
        });
        const order: Order = {
          id: Math.max(1000, ...orders.map((o) => o.id)) + 1,
          userId: b.userId,
          items,
          totalCents: items.reduce((sum, it) => sum + it.quantity * it.unitPriceCents, 0),
          currency: 'EUR',
          status: 'pending',
          createdAt: new Date().toISOString(),
        };
        orders.push(order);
        sendJson(res, 201, order, { location: `/orders/${order.id}` });
      },
    },
  ];

  return listen(createApp('orders-service', routes, options.log), options);
}

if (isMain(import.meta.url)) {
  await runMain('orders-service', startOrdersService, ORDERS_DEFAULT_PORT, 'ORDERS_PORT');
}

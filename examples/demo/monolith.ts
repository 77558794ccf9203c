// The demo "monolith": the legacy app the gateway sits in front of. Plain node:http, in-memory data.
//
//   node dist/examples/demo/monolith.js --port 3001
//
// Every response carries `x-served-by: monolith`, so you can see through the gateway which
// service answered. GET /debug/request echoes the request as received, to show what the gateway
// adds on the way (X-Forwarded-For, X-Request-Id, headers set by a route, a rewritten path).
import type { IncomingMessage } from 'node:http';
import { seedCatalog, seedOrders, seedUsers, type User } from './data.ts';
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

export const MONOLITH_DEFAULT_PORT = 3001;

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const USER_FIELDS = new Set(['name', 'email', 'role']);
const ROLES = new Set(['customer', 'admin']);

type Details = Array<{ field: string; problem: string }>;

/** Validate a POST /users body; returns the problems found (empty when valid). */
export function validateNewUser(body: unknown): Details {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return [{ field: '(body)', problem: 'must be a JSON object like {"name": "...", "email": "..."}' }];
  }
  const b = body as Record<string, unknown>;
  const details: Details = [];
  if (typeof b.name !== 'string' || b.name.trim() === '') details.push({ field: 'name', problem: 'required, a non-empty string' });
  else if (b.name.length > 100) details.push({ field: 'name', problem: 'at most 100 characters' });
  if (typeof b.email !== 'string' || !EMAIL.test(b.email)) details.push({ field: 'email', problem: 'required, an e-mail address' });
  else if (b.email.length > 254) details.push({ field: 'email', problem: 'at most 254 characters' });
  if (b.role !== undefined && (typeof b.role !== 'string' || !ROLES.has(b.role))) {
    details.push({ field: 'role', problem: 'one of "customer", "admin"' });
  }
  for (const key of Object.keys(b)) if (!USER_FIELDS.has(key)) details.push({ field: key, problem: 'unknown field' });
  return details;
}

function idParam(value: string | undefined, what: string): number {
  if (value === undefined || !/^[1-9][0-9]{0,8}$/.test(value)) throw new HttpError(404, 'not_found', `No ${what} ${JSON.stringify(value)}.`);
  return Number(value);
}

/** The header a gateway route sets for preview traffic (see routes.yaml, route users-v2-preview). */
function previewOf(req: IncomingMessage): string | undefined {
  const v = req.headers['x-preview-route'];
  return Array.isArray(v) ? v[0] : v;
}

/** Start the demo monolith. Port 0 (default) picks a free port. */
export function startMonolith(options: ServerOptions = {}): Promise<RunningServer> {
  const users = seedUsers();
  const orders = seedOrders();
  const catalog = seedCatalog();
  const startedAt = Date.now();

  // Users answered through the preview route carry the route name, so the demo shows header routing.
  const presentUser = (u: User, req: IncomingMessage) => {
    const preview = previewOf(req);
    return preview === undefined ? u : { ...u, preview };
  };

  const routes: RouteDef[] = [
    {
      method: 'GET',
      path: '/',
      handler: ({ res }) =>
        sendJson(res, 200, {
          service: 'monolith',
          description: 'The legacy shop app. Causeway sits in front of it and moves routes to new services one at a time.',
          endpoints: [
            'GET /users',
            'GET /users/:id',
            'POST /users',
            'GET /orders',
            'GET /orders/:id',
            'GET /catalog',
            'GET /catalog/:sku',
            'GET /debug/request',
            'GET /health',
          ],
        }),
    },
    {
      method: 'GET',
      path: '/health',
      handler: ({ res }) => sendJson(res, 200, { status: 'ok', service: 'monolith', uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000) }),
    },
    {
      method: 'GET',
      path: '/users',
      handler: ({ req, res }) => {
        const list = users.map((u) => presentUser(u, req));
        sendJson(res, 200, { users: list, count: list.length });
      },
    },
    {
      method: 'GET',
      path: '/users/:id',
      handler: ({ req, res, params }) => {
        const id = idParam(params.id, 'user');
        const user = users.find((u) => u.id === id);
        if (!user) throw new HttpError(404, 'not_found', `No user ${id}.`);
        sendJson(res, 200, presentUser(user, req));
      },
    },
    {
      method: 'POST',
      path: '/users',
      handler: async ({ req, res }) => {
        const body = await readJsonBody(req);
        const details = validateNewUser(body);
        if (details.length > 0) throw new HttpError(400, 'invalid_user', 'The user is not valid.', details);
        const b = body as { name: string; email: string; role?: User['role'] };
        const email = b.email.trim().toLowerCase();
        if (users.some((u) => u.email === email)) {
          throw new HttpError(409, 'email_taken', `A user with e-mail ${email} already exists.`);
        }
        const user: User = {
          id: Math.max(0, ...users.map((u) => u.id)) + 1,
          name: b.name.trim(),
          email,
          role: b.role ?? 'customer',
          createdAt: new Date().toISOString(),
        };
        users.push(user);
        sendJson(res, 201, presentUser(user, req), { location: `/users/${user.id}` });
      },
    },
    {
      method: 'GET',
      path: '/orders',
      handler: ({ res }) => sendJson(res, 200, { orders, count: orders.length }),
    },
    {
      method: 'GET',
      path: '/orders/:id',
      handler: ({ res, params }) => {
        const id = idParam(params.id, 'order');
        const order = orders.find((o) => o.id === id);
        if (!order) throw new HttpError(404, 'not_found', `No order ${id}.`);
        sendJson(res, 200, order);
      },
    },
    {
      method: 'GET',
      path: '/catalog',
      handler: ({ res }) => sendJson(res, 200, { products: catalog, count: catalog.length }),
    },
    {
      method: 'GET',
      path: '/catalog/:sku',
      handler: ({ res, params }) => {
        const sku = (params.sku ?? '').toUpperCase();
        const product = catalog.find((p) => p.sku === sku);
        if (!product) throw new HttpError(404, 'not_found', `No product ${JSON.stringify(params.sku)}.`);
        sendJson(res, 200, product);
      },
    },
    {
      method: 'GET',
      path: '/debug/request',
      handler: ({ req, res }) =>
        sendJson(res, 200, {
          receivedBy: 'monolith',
          method: req.method,
          url: req.url,
          httpVersion: req.httpVersion,
          remoteAddress: req.socket.remoteAddress,
          headers: req.headers,
        }),
    },
  ];

  return listen(createApp('monolith', routes, options.log), options);
}

if (isMain(import.meta.url)) {
  await runMain('monolith', startMonolith, MONOLITH_DEFAULT_PORT, 'MONOLITH_PORT');
}

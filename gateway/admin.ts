// The admin listener: liveness, readiness, the running config, reload, metrics, the JSON admin
// API (/api/*, docs/observability.md) and the dashboard (/dashboard/).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CompiledRateLimit } from '../plugins/rate-limit.ts';
import { registerDashboard } from './dashboard.ts';
import { GATEWAY_ERRORS, type GatewayErrorCode } from './errors.ts';
import type { Gateway } from './server.ts';
import { mergeRawStats, statsView, type RawStats } from './stats.ts';

/** Admin paths anyone who reaches the listener may use, with or without admin.token. */
const OPEN = new Set(['/healthz', '/readyz', '/.well-known/jwks.json', '/', '/dashboard', '/dashboard/', '/dashboard/*']);

function adminError(reply: FastifyReply, code: GatewayErrorCode, message: string = GATEWAY_ERRORS[code].message): FastifyReply {
  return reply
    .code(GATEWAY_ERRORS[code].status)
    .header('cache-control', 'no-store')
    .send({ error: { code, message } });
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant-time check of `Authorization: Bearer <token>` (hashing first evens out the lengths). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (typeof header !== 'string') return false;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  const given = m ? m[1]! : '';
  return timingSafeEqual(digest(given), digest(token)) && given.length > 0;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost|::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host.replace(/^\[|\]$/g, ''));
}

/** Log CW_ADMIN_EXPOSED when the admin listener binds beyond loopback without admin.token. */
export function warnIfAdminExposed(log: { warn(obj: object, msg: string): void }, admin: { host: string; port: number }, token: string | undefined): void {
  if (token !== undefined || isLoopback(admin.host)) return;
  const where = `${admin.host}:${admin.port}`;
  log.warn(
    { code: 'CW_ADMIN_EXPOSED', admin: where },
    `the admin listener binds ${where} (not loopback) and admin.token is not set: anyone who reaches it can read the config and stats and reload; set admin.token or bind 127.0.0.1`,
  );
}

/** The model as /config shows it: the admin token is never echoed. */
function redacted(model: Gateway['snapshot']['model']): Gateway['snapshot']['model'] {
  if (model.admin?.token === undefined) return model;
  return { ...model, admin: { ...model.admin, token: '(redacted)' } };
}

/** Names of the policies each route runs (defaults first), as plugins/registry.ts chains them. */
function routePolicies(model: Gateway['snapshot']['model']): Map<string, string[]> {
  const defaults = model.defaultPolicies ?? [];
  const out = new Map<string, string[]>();
  for (const r of model.routes ?? []) {
    const own = r.policies ?? [];
    out.set(r.name, r.useDefaultPolicies === false ? [...own] : [...defaults, ...own.filter((p) => !defaults.includes(p))]);
  }
  return out;
}


/**
 * The answer of GET /api/routes from raw stats: this process's (gw.rawStats()) or, in a cluster
 * primary, the workers' merged with mergeRawStats.
 */
export function routesAnswer(gw: Pick<Gateway, 'snapshot'>, raw: RawStats, now = raw.at) {
  const s = gw.snapshot;
  const configured = s.routes.map((r) => ({ name: r.name, backends: r.backends.map((b) => ({ upstream: b.spec.name, weight: b.weight })) }));
  const view = statsView(raw, configured, now);
  const policies = routePolicies(s.model);
  const matches = new Map<string, Array<{ host: string; path: string }>>();
  for (const e of s.table) {
    let list = matches.get(e.route.name);
    if (!list) matches.set(e.route.name, (list = []));
    list.push({
      host: e.host.kind === 'any' ? '*' : e.host.kind === 'wildcard' ? `*${e.host.value}` : e.host.value,
      path: e.path.kind === 'prefix' ? `${e.path.value}${e.path.value.endsWith('/') ? '' : '/'}*` : e.path.value,
    });
  }
  return {
    version: s.version,
    windowSeconds: view.windowSeconds,
    routes: view.routes.map(({ name, ...rest }) => ({
      name,
      match: matches.get(name) ?? [],
      policies: policies.get(name) ?? [],
      ...rest,
    })),
    unmatched: view.unmatched,
  };
}

/** The running snapshot's version, load time, files and reload counts (GET /config, /api/snapshot). */
function snapshotSummary(gw: Gateway) {
  const s = gw.snapshot;
  return { version: s.version, loadedAt: s.createdAt.toISOString(), sources: s.sources, reloads: gw.reloads, reloadFailures: gw.reloadFailures };
}

export function registerAdminRoutes(app: FastifyInstance, gw: Gateway): void {
  // admin.token: read per request, so a reload can set, change or remove it.
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const token = gw.snapshot.model.admin?.token;
    if (token === undefined) return;
    const route = req.routeOptions.url;
    if (route !== undefined && OPEN.has(route)) return;
    if (!bearerMatches(req.headers.authorization, token)) {
      reply.header('www-authenticate', 'Bearer realm="causeway-admin"');
      return adminError(reply, 'CW_ADMIN_UNAUTHORIZED');
    }
  });

  // An admin listener anyone on the network can reach, with no token: say so at every start.
  app.addHook('onListen', async () => {
    // A cluster worker's own admin listener is on loopback; the primary warns for admin.listen.
    if (gw.options.worker === undefined) warnIfAdminExposed(gw.log, gw.snapshot.admin, gw.snapshot.model.admin?.token);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  // Prometheus metrics (docs/observability.md).
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', gw.metrics.contentType);
    return gw.metrics.text();
  });

  // What a cluster primary merges (gateway/cluster.ts): this worker's metrics as JSON, its raw
  // live stats, and the /api/routes answer for the merged stats of every worker.
  if (gw.options.worker !== undefined) {
    app.get('/metrics.json', async () => gw.metrics.registry.getMetricsAsJSON());
    app.get('/cluster/stats', async () => gw.rawStats());
    app.post('/cluster/routes', { bodyLimit: 64 * 1024 * 1024 }, async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return routesAnswer(gw, mergeRawStats(req.body as RawStats[]));
    });
  }

  app.get('/readyz', async (_req, reply) => {
    if (!gw.ready) return reply.code(503).send({ ready: false, reason: 'draining' });
    return { ready: true, version: gw.snapshot.version };
  });

  app.get('/config', async () => {
    const s = gw.snapshot;
    return {
      ...snapshotSummary(gw),
      processErrors: { ...gw.processErrors },
      listeners: gw.listenerInfo(),
      routes: s.table.map((e) => ({
        name: e.route.name,
        host: e.host.kind === 'any' ? '*' : e.host.kind === 'wildcard' ? `*${e.host.value}` : e.host.value,
        path: e.path.kind === 'prefix' ? `${e.path.value}${e.path.value.endsWith('/') ? '' : '/'}*` : e.path.value,
        kind: e.path.kind,
        backends: e.route.backends.map((b) => ({ upstream: b.spec.name, weight: b.weight })),
      })),
      upstreams: [...s.upstreams.values()].map(({ spec, upstream }) => ({
        name: spec.name,
        endpoints: upstream.endpoints.map((e) => ({
          url: e.spec.origin,
          weight: e.spec.weight,
          ejected: e.state.ejectedUntil > Date.now(),
        })),
      })),
      model: redacted(s.model),
    };
  });

  // The public keys of the gateway's identityToken policies, for services and sidecars that
  // verify the identity tokens the gateway sends them.
  app.get('/.well-known/jwks.json', async (_req, reply) => {
    reply.header('cache-control', 'max-age=60');
    return gw.policies?.jwks ?? { keys: [] };
  });

  app.post('/reload', async (_req, reply) => {
    const result = await gw.reload('admin API');
    if (!result.ok) {
      return reply.code(400).send({
        error: { code: 'CW_CONFIG_INVALID', message: 'the new config was rejected; the running one is kept' },
        issues: result.issues,
      });
    }
    return result;
  });

  // ---- the JSON admin API (docs/observability.md#admin-api) ----

  app.get('/api/snapshot', async (_req, reply) => {
    const s = gw.snapshot;
    reply.header('cache-control', 'no-store');
    return {
      ...snapshotSummary(gw),
      routes: s.routes.length,
      upstreams: s.upstreams.size,
      policies: gw.policies?.policies.size ?? 0,
      ready: gw.ready,
      inflight: gw.inflightCount,
    };
  });

  app.get('/api/routes', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return routesAnswer(gw, gw.rawStats());
  });

  app.get('/api/upstreams', async (_req, reply) => {
    const s = gw.snapshot;
    const now = Date.now();
    const usedBy = new Map<string, string[]>();
    for (const r of s.routes) {
      for (const b of r.backends) {
        let list = usedBy.get(b.spec.name);
        if (!list) usedBy.set(b.spec.name, (list = []));
        if (!list.includes(r.name)) list.push(r.name);
      }
    }
    reply.header('cache-control', 'no-store');
    return {
      upstreams: [...s.upstreams.values()].map(({ spec, upstream }) => ({
        name: spec.name,
        routes: usedBy.get(spec.name) ?? [],
        endpoints: upstream.endpoints.map((e) => {
          const pool = e.state.poolCounts();
          return {
            url: e.spec.origin,
            weight: e.spec.weight,
            ejected: e.state.ejectedUntil > now,
            ejectedForMs: Math.max(0, e.state.ejectedUntil - now),
            connectFailures: e.state.connectFailures,
            consecutiveFailures: e.state.consecutiveFailures,
            connections: pool.open,
            inflight: pool.open - pool.idle,
            pending: pool.queued,
          };
        }),
      })),
    };
  });

  app.get('/api/policies', async (_req, reply) => {
    const byRoute = routePolicies(gw.snapshot.model);
    const defaults = new Set(gw.snapshot.model.defaultPolicies ?? []);
    reply.header('cache-control', 'no-store');
    return {
      policies: [...(gw.policies?.policies.values() ?? [])].map((p) => {
        const rl = p.kind === 'rateLimit' ? (p as CompiledRateLimit) : null;
        return {
          name: p.name,
          kind: p.kind,
          phase: p.phase,
          default: defaults.has(p.name),
          routes: [...byRoute].filter(([, names]) => names.includes(p.name)).map(([route]) => route),
          ...(rl ? { store: rl.store, stats: { ...rl.stats } } : {}),
        };
      }),
    };
  });

  app.get('/api/ratelimit', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const name = typeof q.policy === 'string' ? q.policy : '';
    const key = typeof q.key === 'string' ? q.key : '';
    const consumer = typeof q.consumer === 'string' && q.consumer !== '' ? q.consumer : undefined;
    if (name === '') return adminError(reply, 'CW_ADMIN_BAD_REQUEST', 'the query parameter "policy" (a rateLimit policy name) is required');
    if (key === '') return adminError(reply, 'CW_ADMIN_BAD_REQUEST', 'the query parameter "key" (the rate-limit key, e.g. the client address) is required');
    const p = gw.policies?.policies.get(name);
    if (!p || p.kind !== 'rateLimit') {
      const known = [...(gw.policies?.policies.values() ?? [])].filter((x) => x.kind === 'rateLimit').map((x) => x.name);
      return adminError(reply, 'CW_ADMIN_UNKNOWN_POLICY', `no rateLimit policy is named ${JSON.stringify(name)} (rateLimit policies: ${known.length ? known.join(', ') : 'none'})`);
    }
    const rl = p as CompiledRateLimit;
    reply.header('cache-control', 'no-store');
    try {
      const state = await rl.inspect(key, consumer);
      return { policy: name, store: rl.store, ...state };
    } catch (err) {
      return adminError(reply, 'CW_ADMIN_STORE_UNAVAILABLE', `the rate-limit store could not be read: ${(err as Error)?.message ?? String(err)}`);
    }
  });

  registerDashboard(app);
}

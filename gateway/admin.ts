// The admin listener: liveness, readiness, the running config, reload.
import type { FastifyInstance } from 'fastify';
import type { Gateway } from './server.ts';

export function registerAdminRoutes(app: FastifyInstance, gw: Gateway): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  // Prometheus metrics (docs/metrics.md).
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', gw.metrics.contentType);
    return gw.metrics.text();
  });

  // A cluster worker's metrics as JSON, for the primary to merge (gateway/cluster.ts).
  if (gw.options.worker !== undefined) {
    app.get('/metrics.json', async () => gw.metrics.registry.getMetricsAsJSON());
  }

  app.get('/readyz', async (_req, reply) => {
    if (!gw.ready) return reply.code(503).send({ ready: false, reason: 'draining' });
    return { ready: true, version: gw.snapshot.version };
  });

  app.get('/config', async () => {
    const s = gw.snapshot;
    return {
      version: s.version,
      loadedAt: s.createdAt.toISOString(),
      sources: s.sources,
      reloads: gw.reloads,
      reloadFailures: gw.reloadFailures,
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
      model: s.model,
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
}

// The Fastify plugin that mounts a policy chain on a Fastify app: the same compiled policies
// the gateway runs, for a service that wants them in-process (e.g. to check the gateway's
// identity token or an API key itself). The gateway does not use it: its listener calls the
// chains directly on the raw request (gateway/proxy.ts), without Fastify's per-request objects.
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { newContext, type Chain, type Identity, type PolicyContext } from './policy.ts';

export interface PolicyPluginOptions {
  /** The chain to run, e.g. `policySet.chainFor({ name: 'orders', policies: ['auth'] })`. */
  chain: Chain;
  /** The route name policies see (rate-limit keys, identity tokens). Default: Fastify's route URL. */
  route?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the causeway policies plugin: the verified identity, or null. */
    causewayIdentity: Identity | null;
    /** Headers the policies would add upstream (identity headers, …), for handlers that call on. */
    causewayHeaders: Array<[string, string]>;
  }
}

function contextOf(request: FastifyRequest, route: string | undefined): PolicyContext {
  const url = request.url;
  const q = url.indexOf('?');
  return newContext({
    method: request.method,
    path: q === -1 ? url : url.slice(0, q),
    query: q === -1 ? '' : url.slice(q + 1),
    host: (request.hostname ?? '').toLowerCase(),
    headers: request.headers,
    clientIp: request.ip,
    route: route ?? request.routeOptions.url ?? '',
  });
}

function applyResponseHeaders(reply: FastifyReply, ctx: PolicyContext): void {
  for (const name of ctx.responseRemove ?? []) reply.removeHeader(name);
  for (const [name, value] of ctx.responseHeaders ?? []) {
    const prev = reply.getHeader(name);
    reply.header(name, prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value]);
  }
}

const plugin: FastifyPluginCallback<PolicyPluginOptions> = (app, opts, done) => {
  app.decorateRequest('causewayIdentity', null);
  app.decorateRequest('causewayHeaders', null as unknown as Array<[string, string]>);
  app.addHook('onRequest', async (request, reply) => {
    const ctx = contextOf(request, opts.route);
    const verdict = await opts.chain(ctx);
    if (verdict !== null) {
      applyResponseHeaders(reply, ctx);
      for (const [name, value] of verdict.headers ?? []) reply.header(name, value);
      reply.code(verdict.status);
      if (verdict.code === undefined) return reply.send();
      return reply.send({ error: { code: verdict.code, message: verdict.message ?? 'request refused', requestId: request.id } });
    }
    request.causewayIdentity = ctx.identity;
    request.causewayHeaders = ctx.upstreamHeaders ?? [];
    // Response headers from policies (CORS, RateLimit) go on the handler's answer too.
    applyResponseHeaders(reply, ctx);
  });
  done();
};

// Not encapsulated: the hook applies to the routes of the app that registers it.
(plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export const causewayPolicies = plugin;

// Named policies from the config → compiled policies → one chain per route.
import type { ConfigModel, RouteConfig } from '../config/model.ts';
import type { PolicyConfig, RedisConfig } from '../config/policy-model.ts';
import { compileApiKey, compileConsumers } from './api-key.ts';
import { compileAuthz } from './authz.ts';
import { compileCors } from './cors.ts';
import { compileBodyLimit, compileIpFilter, compileMethods } from './edge.ts';
import { compileRequestHeaders, compileResponseHeaders } from './headers.ts';
import type { PublicJwk } from './identity-token.ts';
import { compileChain, type Chain, type CompiledPolicy, type PolicyDeps, type PolicyLogger, SharedResources } from './policy.ts';

export interface PolicySet {
  /** Compiled policies by name (for the admin API; the hot path uses `chainFor`). */
  policies: ReadonlyMap<string, CompiledPolicy>;
  /** The chain for a route (defaults first, then its own), or null when it has none. */
  chainFor(route: RouteConfig): Chain | null;
  /** Every identity header some policy sets: stripped from all client requests. */
  identityHeaders: ReadonlySet<string>;
  /** Public keys of identityToken policies, published as the gateway's JWKS. */
  jwks: { keys: PublicJwk[] };
}

export interface PolicyEnv {
  shared: SharedResources;
  log: PolicyLogger;
}

// jwt, rateLimit and identityToken are imported when a config first uses them: they bring jose
// and rate-limiter-flexible (≈ 3 MiB resident), which a gateway without those policies never needs.
async function compileOne(name: string, p: PolicyConfig, deps: PolicyDeps & { redis: RedisConfig | null }): Promise<CompiledPolicy> {
  if (p.jwt) return (await import('./jwt.ts')).compileJwt(name, p.jwt, deps);
  if (p.apiKey) return compileApiKey(name, p.apiKey, deps);
  if (p.authz) return compileAuthz(name, p.authz, deps);
  if (p.rateLimit) return (await import('./rate-limit.ts')).compileRateLimit(name, p.rateLimit, deps);
  if (p.cors) return compileCors(name, p.cors, deps);
  if (p.bodyLimit !== undefined) return compileBodyLimit(name, p.bodyLimit, deps);
  if (p.methods) return compileMethods(name, p.methods, deps);
  if (p.ipFilter) return compileIpFilter(name, p.ipFilter, deps);
  if (p.requestHeaders) return compileRequestHeaders(name, p.requestHeaders, deps);
  if (p.responseHeaders) return compileResponseHeaders(name, p.responseHeaders, deps);
  if (p.identityToken) return (await import('./identity-token.ts')).compileIdentityToken(name, p.identityToken, deps);
  throw new Error(`policy "${name}" has no known kind`);
}

/** Compile every named policy of a validated model. */
export async function compilePolicySet(model: ConfigModel, env: PolicyEnv): Promise<PolicySet> {
  const deps = {
    consumers: compileConsumers(model.consumers),
    shared: env.shared,
    log: env.log,
    redis: model.redis ?? null,
  };
  const policies = new Map<string, CompiledPolicy>();
  for (const [name, cfg] of Object.entries(model.policies ?? {})) {
    policies.set(name, await compileOne(name, cfg, deps));
  }
  const identityHeaders = new Set<string>();
  const jwks: { keys: PublicJwk[] } = { keys: [] };
  for (const p of policies.values()) {
    for (const h of p.identityHeaders ?? []) identityHeaders.add(h.toLowerCase());
    const jwk = (p as { publicJwk?: PublicJwk }).publicJwk;
    if (jwk) jwks.keys.push(jwk);
  }
  const defaults = (model.defaultPolicies ?? []).map((n) => policies.get(n)!);
  const chains = new Map<string, Chain | null>();
  return {
    policies,
    identityHeaders,
    jwks,
    chainFor(route) {
      const own = (route.policies ?? []).map((n) => policies.get(n)!);
      const all = route.useDefaultPolicies === false ? own : [...defaults, ...own.filter((p) => !defaults.includes(p))];
      const key = all.map((p) => p.name).join('\u0000');
      if (!chains.has(key)) chains.set(key, compileChain(all));
      return chains.get(key)!;
    },
  };
}

// Compile a validated config model into one immutable Snapshot: the route table with its
// matchers, each route's backends, rewrites, header rules and timeouts resolved to plain
// values and closures. Nothing on the request path looks anything up by name.
import { createHash } from 'node:crypto';
import { durationOr } from './duration.ts';
import type { ConfigModel, HeaderRulesConfig, RouteConfig, TimeoutsConfig, UpstreamConfig } from './model.ts';
import { buildRouteTable, type RequestFacts, type RouteHit, type RouteTable, type TableEntry } from './routes.ts';

export const DEFAULTS = {
  gatewayHost: '0.0.0.0',
  gatewayPort: 8080,
  adminHost: '127.0.0.1',
  adminPort: 9901,
  requestIdHeader: 'x-request-id',
  drainTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
  responseTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  connections: 128,
  ejectForMs: 5_000,
} as const;

export interface EndpointSpec {
  /** "http://10.0.0.5:8080" */
  origin: string;
  /** host:port, for the Host header when passHost is false. */
  authority: string;
  weight: number;
}

export interface UpstreamSpec {
  name: string;
  endpoints: EndpointSpec[];
  passHost: boolean;
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  idleTimeoutMs: number;
  connections: number;
  ejectForMs: number;
}

export interface Timeouts {
  connectMs: number;
  responseMs: number;
  idleMs: number;
}

export interface Backend<U> {
  upstream: U;
  spec: UpstreamSpec;
  weight: number;
  timeouts: Timeouts;
}

/** Header changes compiled to arrays: names lower-case. */
export interface HeaderOps {
  remove: string[];
  set: Array<[string, string]>;
  add: Array<[string, string]>;
}

export interface CompiledRoute<U> {
  name: string;
  /** Position in the config (file order), for messages. */
  index: number;
  backends: Backend<U>[];
  /** Picks one backend by weight (a constant function for a single backend). */
  pickBackend: () => Backend<U>;
  /** Path to send upstream, or null to send the normalised path unchanged. */
  rewrite: ((path: string, params: Record<string, string> | null) => string) | null;
  requestHeaders: HeaderOps | null;
  responseHeaders: HeaderOps | null;
  websocket: boolean;
  config: RouteConfig;
}

export interface GatewaySettings {
  host: string;
  port: number;
  tls: { cert: string; key: string } | null;
  trustedProxies: string[];
  requestIdHeader: string;
  drainTimeoutMs: number;
}

export interface Snapshot<U> {
  /** Content hash of the config model: equal configs have equal versions. */
  version: string;
  sources: string[];
  createdAt: Date;
  model: ConfigModel;
  gateway: GatewaySettings;
  admin: { host: string; port: number };
  upstreams: ReadonlyMap<string, { spec: UpstreamSpec; upstream: U }>;
  routes: CompiledRoute<U>[];
  /** Table entries (route × host) in match order, for `causeway routes`. */
  table: TableEntry<CompiledRoute<U>>[];
  match(facts: RequestFacts): RouteHit<CompiledRoute<U>> | null;
}

/** Creates the runtime object for an upstream (the data plane passes its client factory). */
export type UpstreamFactory<U> = (spec: UpstreamSpec) => U;

function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const keys = Object.keys(v as object).sort();
  return `{${keys
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableStringify((v as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

export function configVersion(model: ConfigModel): string {
  return createHash('sha256').update(stableStringify(model)).digest('hex').slice(0, 12);
}

export function upstreamSpec(name: string, u: UpstreamConfig): UpstreamSpec {
  return {
    name,
    endpoints: u.endpoints.map((e) => {
      const url = new URL(typeof e === 'string' ? e : e.url);
      return { origin: url.origin, authority: url.host, weight: typeof e === 'string' ? 1 : (e.weight ?? 1) };
    }),
    passHost: u.passHost ?? true,
    connectTimeoutMs: durationOr(u.timeouts?.connect, DEFAULTS.connectTimeoutMs),
    responseTimeoutMs: durationOr(u.timeouts?.response, DEFAULTS.responseTimeoutMs),
    idleTimeoutMs: durationOr(u.timeouts?.idle, DEFAULTS.idleTimeoutMs),
    connections: u.connections ?? DEFAULTS.connections,
    ejectForMs: durationOr(u.ejectFor, DEFAULTS.ejectForMs),
  };
}

function routeTimeouts(t: TimeoutsConfig | undefined, spec: UpstreamSpec): Timeouts {
  return {
    connectMs: durationOr(t?.connect, spec.connectTimeoutMs),
    responseMs: durationOr(t?.response, spec.responseTimeoutMs),
    idleMs: durationOr(t?.idle, spec.idleTimeoutMs),
  };
}

export function compileHeaderOps(rules: HeaderRulesConfig | undefined): HeaderOps | null {
  if (!rules) return null;
  const ops: HeaderOps = {
    remove: (rules.remove ?? []).map((n) => n.toLowerCase()),
    set: Object.entries(rules.set ?? {}).map(([n, v]) => [n.toLowerCase(), v]),
    add: Object.entries(rules.add ?? {}).map(([n, v]) => [n.toLowerCase(), v]),
  };
  return ops.remove.length + ops.set.length + ops.add.length === 0 ? null : ops;
}

function compileRewrite(route: RouteConfig): CompiledRoute<unknown>['rewrite'] {
  const rw = route.rewrite;
  if (!rw) return null;
  if (rw.prefix !== undefined) {
    let from = route.match?.prefix ?? '/';
    while (from.length > 1 && from.endsWith('/')) from = from.slice(0, -1);
    const cut = from === '/' ? 0 : from.length;
    const to = rw.prefix.endsWith('/') ? rw.prefix.slice(0, -1) : rw.prefix;
    return (path) => {
      const rest = path.slice(cut); // "" or starts with "/"
      const out = to + rest;
      return out === '' ? '/' : out;
    };
  }
  const template = rw.path!;
  if (!template.includes('/:')) return () => template;
  const parts = template.split('/').map((s) => (s.startsWith(':') ? { param: s.slice(1) } : { text: s }));
  return (_path, params) =>
    parts.map((p) => ('param' in p ? (params?.[p.param!] ?? '') : p.text)).join('/');
}

function weightedPicker<T extends { weight: number }>(items: T[]): () => T {
  const live = items.filter((i) => i.weight > 0);
  if (live.length === 1) {
    const only = live[0]!;
    return () => only;
  }
  const cumulative: number[] = [];
  let total = 0;
  for (const i of live) cumulative.push((total += i.weight));
  return () => {
    const r = Math.random() * total;
    for (let i = 0; i < cumulative.length; i++) if (r < cumulative[i]!) return live[i]!;
    return live[live.length - 1]!;
  };
}

export function gatewaySettings(model: ConfigModel): GatewaySettings {
  const g = model.gateway ?? {};
  return {
    host: g.listen?.host ?? DEFAULTS.gatewayHost,
    port: g.listen?.port ?? DEFAULTS.gatewayPort,
    tls: g.tls ? { cert: g.tls.cert, key: g.tls.key } : null,
    trustedProxies: g.trustedProxies ?? [],
    requestIdHeader: (g.requestIdHeader ?? DEFAULTS.requestIdHeader).toLowerCase(),
    drainTimeoutMs: durationOr(g.drainTimeout, DEFAULTS.drainTimeoutMs),
  };
}

/**
 * Compile a model that passed validation (config/load.ts). Throws only on a model that
 * validation would have rejected.
 */
export function compile<U>(model: ConfigModel, sources: string[], makeUpstream: UpstreamFactory<U>): Snapshot<U> {
  const upstreams = new Map<string, { spec: UpstreamSpec; upstream: U }>();
  for (const [name, u] of Object.entries(model.upstreams ?? {})) {
    const spec = upstreamSpec(name, u);
    upstreams.set(name, { spec, upstream: makeUpstream(spec) });
  }
  const routes: CompiledRoute<U>[] = (model.routes ?? []).map((r, index) => {
    const backendConfigs = r.backends ?? (r.upstream !== undefined ? [{ upstream: r.upstream }] : []);
    const backends = backendConfigs.map((b) => {
      const u = upstreams.get(b.upstream);
      if (!u) throw new Error(`route ${r.name}: unknown upstream ${b.upstream}`);
      return { upstream: u.upstream, spec: u.spec, weight: b.weight ?? 1, timeouts: routeTimeouts(r.timeouts, u.spec) };
    });
    if (backends.every((b) => b.weight === 0)) throw new Error(`route ${r.name}: backend weights sum to 0`);
    return {
      name: r.name,
      index,
      backends,
      pickBackend: weightedPicker(backends),
      rewrite: compileRewrite(r),
      requestHeaders: compileHeaderOps(r.requestHeaders),
      responseHeaders: compileHeaderOps(r.responseHeaders),
      websocket: r.websocket ?? true,
      config: r,
    };
  });
  const table: RouteTable<CompiledRoute<U>> = buildRouteTable(routes, (r) => r.config.match);
  const snapshot: Snapshot<U> = {
    version: configVersion(model),
    sources,
    createdAt: new Date(),
    model,
    gateway: gatewaySettings(model),
    admin: {
      host: model.admin?.listen?.host ?? DEFAULTS.adminHost,
      port: model.admin?.listen?.port ?? DEFAULTS.adminPort,
    },
    upstreams,
    routes,
    table: table.entries,
    match: table.match,
  };
  return Object.freeze(snapshot);
}

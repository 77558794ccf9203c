// Compile a validated config model into one immutable Snapshot: the route table with its
// matchers, each route's backends, rewrites, header rules and timeouts resolved to plain
// values and closures. Nothing on the request path looks anything up by name.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { durationOr } from './duration.ts';
import type { ConfigModel, HeaderRulesConfig, ListenerConfig, RouteConfig, TimeoutsConfig, TlsConfig, UpstreamConfig } from './model.ts';
import { buildRouteTable, hostSpecs, type RequestFacts, type RouteHit, type RouteTable, type TableEntry } from './routes.ts';

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
  maxPending: 1024,
  retryAttempts: 2,
  retryOn: ['connect-failure', 'reset'] as const,
  retryBudgetRatio: 0.2,
  retryBudgetMinPerSecond: 10,
  maxConnections: 10_000,
  maxHeaders: 100,
  tlsMinVersion: 'TLSv1.2',
  tlsMaxVersion: 'TLSv1.3',
  /** Mozilla "intermediate" (TLS 1.2 part; the TLS 1.3 suites are always on). */
  tlsCiphers:
    'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305',
  ticketKeyRotationMs: 12 * 3_600_000,
  h2MaxConcurrentStreams: 100,
  h2MaxHeaderListSize: 65_536,
  h2MaxFrameSize: 16_384,
  hstsMaxAge: 31_536_000,
} as const;

export interface EndpointSpec {
  /** "http://10.0.0.5:8080" */
  origin: string;
  /** host:port, for the Host header when passHost is false. */
  authority: string;
  weight: number;
}

/** TLS to an upstream's https:// endpoints: PEM values are file paths or PEM text. */
export interface UpstreamTlsSpec {
  ca: string | null;
  servername: string | null;
  cert: string | null;
  key: string | null;
  insecureSkipVerify: boolean;
}

/** Retries of an upstream (attempts 0: none). */
export interface RetrySpec {
  attempts: number;
  connectFailure: boolean;
  reset: boolean;
  timeout: boolean;
  /** Upstream statuses retried (5xx). */
  statuses: number[];
  budgetRatio: number;
  budgetMinPerSecond: number;
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
  tls: UpstreamTlsSpec | null;
  retries: RetrySpec;
  /** Requests per endpoint waiting for a connection beyond `connections`. */
  maxPending: number;
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

/** One certificate of a TLS listener; cert, key and chain are file paths or PEM text. */
export interface CertificateSpec {
  cert: string;
  key: string;
  chain: string | null;
  /** SNI names from the config; null: the DNS names of the certificate. */
  names: string[] | null;
  /** Where it is configured ("gateway.listeners[1].tls.certificates[0]"), for messages. */
  field: string;
}

export interface TlsSpec {
  field: string;
  /** The default certificate first. */
  certificates: CertificateSpec[];
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  maxVersion: 'TLSv1.2' | 'TLSv1.3';
  ciphers: string;
  sessionTickets: boolean;
  ticketKeyRotationMs: number;
  clientAuth: { mode: 'require' | 'optional'; ca: string } | null;
  watch: boolean;
}

export interface Http2Spec {
  maxConcurrentStreams: number;
  maxHeaderListSize: number;
  maxFrameSize: number;
}

export interface ListenerSpec {
  index: number;
  name: string;
  /** "gateway.listen" for the default listener, "gateway.listeners[i]" otherwise. */
  field: string;
  host: string;
  port: number;
  tls: TlsSpec | null;
  /** null: HTTP/1.1 only (always so without TLS: no h2c). */
  http2: Http2Spec | null;
  /** Hosts served here (exact, or ".example.com" suffixes for wildcards); null: any. */
  hosts: { exact: string[]; suffixes: string[] } | null;
  /** Route names served here; null: every route. */
  routes: string[] | null;
  redirectToHttps: { port: number } | null;
  /** Strict-Transport-Security value, or null. */
  hsts: string | null;
  /** Most open client connections. */
  maxConnections: number;
}

export interface GatewaySettings {
  /** The listeners; the first is the default one (gateway.listen / gateway.tls). */
  listeners: ListenerSpec[];
  trustedProxies: string[];
  requestIdHeader: string;
  drainTimeoutMs: number;
  /** gateway.pathSemicolons: allow (false: a raw ';' in a path is a 400). */
  pathSemicolons: boolean;
  /** Worker processes (gateway.workers; `auto` resolved to the core count). */
  workers: number;
  accessLog: { enabled: boolean; sample: number };
  /** Client timeouts: request head (HTTP/1.1) and silence inside a request body. */
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  /** Longest time for a whole request body (0: no limit). */
  bodyTimeoutMs: number;
  /** Most header fields in a request. */
  maxHeaders: number;
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
  /** The matcher of each listener (gateway.listeners order): its hosts and routes only. */
  listenerMatch: ReadonlyArray<(facts: RequestFacts) => RouteHit<CompiledRoute<U>> | null>;
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
    retries: retrySpec(u.retries),
    maxPending: u.maxPending ?? DEFAULTS.maxPending,
    tls: u.tls
      ? {
          ca: u.tls.ca ?? null,
          servername: u.tls.servername ?? null,
          cert: u.tls.cert ?? null,
          key: u.tls.key ?? null,
          insecureSkipVerify: u.tls.insecureSkipVerify ?? false,
        }
      : null,
  };
}

function retrySpec(r: UpstreamConfig['retries']): RetrySpec {
  const on: ReadonlyArray<string | number> = r?.on ?? DEFAULTS.retryOn;
  return {
    attempts: r?.attempts ?? DEFAULTS.retryAttempts,
    connectFailure: on.includes('connect-failure'),
    reset: on.includes('reset'),
    timeout: on.includes('timeout'),
    statuses: on.filter((x): x is number => typeof x === 'number'),
    budgetRatio: r?.budget?.ratio ?? DEFAULTS.retryBudgetRatio,
    budgetMinPerSecond: r?.budget?.minPerSecond ?? DEFAULTS.retryBudgetMinPerSecond,
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

function tlsSpec(t: TlsConfig, field: string): TlsSpec {
  const certs: CertificateSpec[] = [];
  if (t.cert !== undefined && t.key !== undefined) {
    certs.push({ cert: t.cert, key: t.key, chain: t.chain ?? null, names: null, field });
  }
  (t.certificates ?? []).forEach((c, i) => {
    const spec: CertificateSpec = { cert: c.cert, key: c.key, chain: c.chain ?? null, names: c.names ?? null, field: `${field}.certificates[${i}]` };
    if (c.default === true) certs.unshift(spec);
    else certs.push(spec);
  });
  return {
    field,
    certificates: certs,
    minVersion: t.minVersion ?? DEFAULTS.tlsMinVersion,
    maxVersion: t.maxVersion ?? DEFAULTS.tlsMaxVersion,
    ciphers: t.ciphers ?? DEFAULTS.tlsCiphers,
    sessionTickets: t.sessionTickets ?? true,
    ticketKeyRotationMs: durationOr(t.ticketKeyRotation, DEFAULTS.ticketKeyRotationMs),
    clientAuth: t.clientAuth ? { mode: t.clientAuth.mode, ca: t.clientAuth.ca } : null,
    watch: t.watch ?? true,
  };
}

function hstsValue(h: ListenerConfig['hsts']): string | null {
  if (h === undefined || h === false) return null;
  const o = h === true ? {} : h;
  let v = `max-age=${o.maxAge ?? DEFAULTS.hstsMaxAge}`;
  if (o.includeSubDomains) v += '; includeSubDomains';
  if (o.preload) v += '; preload';
  return v;
}

function listenerSpec(l: ListenerConfig, index: number, field: string, tlsField = `${field}.tls`, maxConnections: number = DEFAULTS.maxConnections): ListenerSpec {
  const tls = l.tls ? tlsSpec(l.tls, tlsField) : null;
  const h2 = l.http2;
  let hosts: ListenerSpec['hosts'] = null;
  if (l.hosts) {
    hosts = { exact: [], suffixes: [] };
    for (const h of hostSpecs({ host: l.hosts })) {
      if (h.kind === 'any') {
        hosts = null;
        break;
      }
      (h.kind === 'exact' ? hosts.exact : hosts.suffixes).push(h.value);
    }
  }
  const redirect = l.redirectToHttps;
  return {
    index,
    name: l.name ?? `${l.listen.host}:${l.listen.port}`,
    field,
    host: l.listen.host,
    port: l.listen.port,
    tls,
    http2:
      tls !== null && h2?.enabled !== false
        ? {
            maxConcurrentStreams: h2?.maxConcurrentStreams ?? DEFAULTS.h2MaxConcurrentStreams,
            maxHeaderListSize: h2?.maxHeaderListSize ?? DEFAULTS.h2MaxHeaderListSize,
            maxFrameSize: h2?.maxFrameSize ?? DEFAULTS.h2MaxFrameSize,
          }
        : null,
    hosts,
    routes: l.routes ?? null,
    redirectToHttps: redirect === undefined || redirect === false ? null : { port: redirect === true ? 443 : (redirect.port ?? 443) },
    hsts: tls !== null ? hstsValue(l.hsts) : null,
    maxConnections: l.maxConnections ?? maxConnections,
  };
}

export function gatewaySettings(model: ConfigModel): GatewaySettings {
  const g = model.gateway ?? {};
  const maxConnections = g.maxConnections ?? DEFAULTS.maxConnections;
  const listeners =
    g.listeners !== undefined
      ? g.listeners.map((l, i) => listenerSpec(l, i, `gateway.listeners[${i}]`, undefined, maxConnections))
      : [
          listenerSpec(
            {
              name: 'default',
              listen: { host: g.listen?.host ?? DEFAULTS.gatewayHost, port: g.listen?.port ?? DEFAULTS.gatewayPort },
              ...(g.tls ? { tls: g.tls } : {}),
            },
            0,
            'gateway.listen',
            'gateway.tls',
            maxConnections,
          ),
        ];
  return {
    listeners,
    trustedProxies: g.trustedProxies ?? [],
    requestIdHeader: (g.requestIdHeader ?? DEFAULTS.requestIdHeader).toLowerCase(),
    drainTimeoutMs: durationOr(g.drainTimeout, DEFAULTS.drainTimeoutMs),
    pathSemicolons: g.pathSemicolons === 'allow',
    workers: resolveWorkers(g.workers),
    accessLog: { enabled: g.accessLog?.enabled ?? true, sample: g.accessLog?.sample ?? 1 },
    headersTimeoutMs: durationOr(g.requestTimeouts?.headers, 30_000),
    bodyIdleTimeoutMs: durationOr(g.requestTimeouts?.bodyIdle, 30_000),
    bodyTimeoutMs: durationOr(g.requestTimeouts?.body, 300_000),
    maxHeaders: g.maxHeaders ?? DEFAULTS.maxHeaders,
  };
}

/** gateway.workers or --workers as a process count: `auto` is one per core; absent is 1. */
export function resolveWorkers(value: number | 'auto' | undefined): number {
  return value === 'auto' ? availableParallelism() : (value ?? 1);
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
  const gateway = gatewaySettings(model);
  const listenerMatch = gateway.listeners.map((l) => {
    const own = l.routes === null ? table : buildRouteTable(routes.filter((r) => l.routes!.includes(r.name)), (r) => r.config.match);
    const hosts = l.hosts;
    if (hosts === null) return own.match;
    const exact = new Set(hosts.exact);
    const suffixes = hosts.suffixes;
    return (f: RequestFacts) => {
      if (!exact.has(f.host) && !suffixes.some((s) => f.host.length > s.length && f.host.endsWith(s))) return null;
      return own.match(f);
    };
  });
  const snapshot: Snapshot<U> = {
    version: configVersion(model),
    sources,
    createdAt: new Date(),
    model,
    gateway,
    admin: {
      host: model.admin?.listen?.host ?? DEFAULTS.adminHost,
      port: model.admin?.listen?.port ?? DEFAULTS.adminPort,
    },
    upstreams,
    routes,
    table: table.entries,
    match: table.match,
    listenerMatch,
  };
  return Object.freeze(snapshot);
}

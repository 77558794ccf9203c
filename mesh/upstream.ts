// The upstream client: endpoints → picker → one keep-alive pool per endpoint (mesh/h1.ts).
// The gateway calls it today; the mesh adds discovery, smarter balancing, health checks,
// retries and circuit breaking behind the same interface.
import { createHash } from 'node:crypto';
import type { EndpointSpec, RetrySpec, UpstreamSpec, UpstreamTlsSpec } from '../config/compile.ts';
import { GATEWAY_ERRORS } from '../gateway/errors.ts';
import { readPem } from '../gateway/tls.ts';
import { H1Pool } from './h1.ts';

/** TLS options for connections to an upstream's https:// endpoints, with a key for pool sharing. */
export interface UpstreamTlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  rejectUnauthorized: boolean;
  /** Equal options, equal id: endpoints share a pool only with the same TLS settings. */
  id: string;
}

/** Read the PEM files of an upstream's tls settings (throws with the field and file). */
export function upstreamTlsOptions(name: string, t: UpstreamTlsSpec | null): UpstreamTlsOptions | null {
  if (t === null) return null;
  const read = (value: string | null, field: string): Buffer | undefined => (value === null ? undefined : readPem(value, `upstreams.${name}.tls.${field}`));
  const ca = read(t.ca, 'ca');
  const cert = read(t.cert, 'cert');
  const key = read(t.key, 'key');
  const h = createHash('sha256');
  for (const part of [ca, cert, key]) h.update(part ?? '-').update('\0');
  h.update(t.servername ?? '').update(t.insecureSkipVerify ? 'insecure' : 'verify');
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(t.servername !== null ? { servername: t.servername } : {}),
    rejectUnauthorized: !t.insecureSkipVerify,
    id: h.digest('hex').slice(0, 16),
  };
}

/** The key of a pool: connect timeout, size and TLS settings. */
export function poolKey(connectMs: number, connections: number, tls: UpstreamTlsOptions | null): string {
  return tls === null ? `${connectMs}/${connections}` : `${connectMs}/${connections}/${tls.id}`;
}

/** One endpoint's shared state: pools by connect timeout, passive health. Survives reloads. */
export class EndpointState {
  readonly origin: string;
  ejectedUntil = 0;
  consecutiveFailures = 0;
  /** Failed connection attempts since start (metrics). */
  connectFailures = 0;
  /** Requests dispatched to this endpoint and not yet finished (in a connection or queued for one). */
  active = 0;
  private readonly pools = new Map<string, H1Pool>();
  constructor(origin: string) {
    this.origin = origin;
  }

  pool(connectMs: number, connections: number, tls: UpstreamTlsOptions | null = null): H1Pool {
    const key = poolKey(connectMs, connections, tls);
    let p = this.pools.get(key);
    if (p === undefined || p.closed) {
      // One request per connection at a time: a slow response never holds up another request.
      p = new H1Pool(this.origin, { connections, connectTimeoutMs: connectMs, keepAliveMs: 30_000, tls });
      this.pools.set(key, p);
    }
    return p;
  }

  /** Connections open and idle, and requests waiting, over this endpoint's pools. */
  poolCounts(): { open: number; idle: number; queued: number } {
    const sum = { open: 0, idle: 0, queued: 0 };
    for (const p of this.pools.values()) {
      const c = p.counts;
      sum.open += c.open;
      sum.idle += c.idle;
      sum.queued += c.queued;
    }
    return sum;
  }

  closePools(keep: Set<string>): Promise<void>[] {
    const closing: Promise<void>[] = [];
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      // close() lets requests already dispatched on the pool finish.
      closing.push(pool.close());
    }
    return closing;
  }
}

export type RetryReason = 'connect-failure' | 'reset' | 'timeout' | 'status';

/** The retry budget looks back over two windows of this length (5–10 s). */
const BUDGET_WINDOW_MS = 5_000;

/**
 * An upstream's retry counters and retry budget, kept by the registry under the upstream's
 * name so they survive reloads. The budget (as in Envoy and Linkerd) allows, over the last
 * 5–10 s, `minPerSecond × 10` retries plus `ratio` × the requests sent: when an upstream is
 * failing for everyone, retries stop instead of multiplying the load on it.
 */
export class UpstreamStats {
  readonly retries: Record<RetryReason, number> = { 'connect-failure': 0, reset: 0, timeout: 0, status: 0 };
  /** Retries not made because the budget was spent. */
  budgetExhausted = 0;
  private windowStart = 0;
  private requests = 0;
  private retried = 0;
  private prevRequests = 0;
  private prevRetried = 0;

  /** A first try is sent (`now`: performance.now()). Cheap: a compare and an increment. */
  noteRequest(now: number): void {
    if (now - this.windowStart >= BUDGET_WINDOW_MS) this.rotate(now);
    this.requests++;
  }

  private rotate(now: number): void {
    const stale = now - this.windowStart >= 2 * BUDGET_WINDOW_MS;
    this.prevRequests = stale ? 0 : this.requests;
    this.prevRetried = stale ? 0 : this.retried;
    this.requests = 0;
    this.retried = 0;
    this.windowStart = now;
  }

  /** Whether the budget has room for one more retry; a refusal is counted. */
  allowRetry(now: number, spec: RetrySpec): boolean {
    if (now - this.windowStart >= BUDGET_WINDOW_MS) this.rotate(now);
    const allowed = spec.budgetMinPerSecond * ((2 * BUDGET_WINDOW_MS) / 1000) + spec.budgetRatio * (this.requests + this.prevRequests);
    if (this.retried + this.prevRetried + 1 > allowed) {
      this.budgetExhausted++;
      return false;
    }
    return true;
  }

  /** A retry is made (after allowRetry). */
  tookRetry(reason: RetryReason): void {
    this.retried++;
    this.retries[reason]++;
  }
}

/** Endpoint states by origin, shared by every snapshot so pools and health outlive a reload. */
export class EndpointRegistry {
  private readonly states = new Map<string, EndpointState>();
  private readonly upstreamStats = new Map<string, UpstreamStats>();

  /** Retry counters and budget of an upstream, by name (kept across reloads). */
  stats(upstream: string): UpstreamStats {
    let s = this.upstreamStats.get(upstream);
    if (!s) this.upstreamStats.set(upstream, (s = new UpstreamStats()));
    return s;
  }

  get(origin: string): EndpointState {
    let s = this.states.get(origin);
    if (!s) this.states.set(origin, (s = new EndpointState(origin)));
    return s;
  }

  /**
   * Close pools that no snapshot in `live` uses. `used` maps origin → pool keys in use.
   */
  async retain(used: Map<string, Set<string>>): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [origin, state] of this.states) {
      const keep = used.get(origin) ?? new Set<string>();
      closing.push(...state.closePools(keep));
      if (keep.size === 0) this.states.delete(origin);
    }
    await Promise.all(closing);
  }

  async close(): Promise<void> {
    await this.retain(new Map());
  }
}

export interface PickedEndpoint {
  state: EndpointState;
  spec: EndpointSpec;
}

/** Round-robin (smooth weighted when weights differ) over endpoints that are not ejected. */
export class UpstreamClient {
  readonly spec: UpstreamSpec;
  readonly endpoints: PickedEndpoint[];
  /** TLS options for https:// endpoints (null: system roots, name checked, no client cert). */
  readonly tls: UpstreamTlsOptions | null;
  /** Retry settings, or null when retries are off (attempts 0). */
  readonly retry: RetrySpec | null;
  /** Upstream statuses that are retried, or null for none. */
  readonly retryStatuses: ReadonlySet<number> | null;
  readonly stats: UpstreamStats;
  /** An endpoint with this many requests active is full (connections + maxPending). */
  readonly fullAt: number;
  private readonly weighted: boolean;
  private readonly current: number[];
  private next = 0;

  constructor(spec: UpstreamSpec, registry: EndpointRegistry) {
    this.spec = spec;
    this.retry = spec.retries.attempts > 0 ? spec.retries : null;
    this.retryStatuses = this.retry !== null && this.retry.statuses.length > 0 ? new Set(this.retry.statuses) : null;
    this.stats = registry.stats(spec.name);
    this.fullAt = spec.connections + spec.maxPending;
    this.tls = upstreamTlsOptions(spec.name, spec.tls);
    this.endpoints = spec.endpoints.filter((e) => e.weight > 0).map((e) => ({ spec: e, state: registry.get(e.origin) }));
    this.weighted = new Set(this.endpoints.map((e) => e.spec.weight)).size > 1;
    this.current = this.endpoints.map(() => 0);
  }

  /** The next healthy endpoint, or null when every endpoint is ejected. */
  pick(now: number): PickedEndpoint | null {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return null;
    if (!this.weighted) {
      for (let tries = 0; tries < n; tries++) {
        const e = eps[this.next]!;
        this.next = this.next + 1 === n ? 0 : this.next + 1;
        if (e.state.ejectedUntil <= now) return e;
      }
      return null;
    }
    // Smooth weighted round-robin (as nginx does) over the healthy endpoints.
    let total = 0;
    let best = -1;
    for (let i = 0; i < n; i++) {
      const e = eps[i]!;
      if (e.state.ejectedUntil > now) continue;
      this.current[i]! += e.spec.weight;
      total += e.spec.weight;
      if (best === -1 || this.current[i]! > this.current[best]!) best = i;
    }
    if (best === -1) return null;
    this.current[best]! -= total;
    return eps[best]!;
  }

  /**
   * Another endpoint than `avoid` for a retry, or `avoid` itself when it is the only healthy
   * one (a fresh connection to it may work: a closed keep-alive connection is the usual reset).
   */
  pickOther(now: number, avoid: PickedEndpoint): PickedEndpoint | null {
    const n = this.endpoints.length;
    let first: PickedEndpoint | null = null;
    for (let i = 0; i < n; i++) {
      const e = this.pick(now);
      if (e === null) return null;
      if (e !== avoid) return e;
      first ??= e;
    }
    return first;
  }

  /** Whether an endpoint has no room for another request (all connections busy, queue full). */
  isFull(e: PickedEndpoint): boolean {
    return e.state.active >= this.fullAt;
  }

  /** Passive health: a failed connection ejects the endpoint for spec.ejectForMs. */
  reportConnectFailure(e: PickedEndpoint, now: number): void {
    e.state.consecutiveFailures++;
    e.state.connectFailures++;
    if (this.spec.ejectForMs > 0) e.state.ejectedUntil = now + this.spec.ejectForMs;
  }

  reportSuccess(e: PickedEndpoint): void {
    if (e.state.consecutiveFailures !== 0) e.state.consecutiveFailures = 0;
  }
}

export interface UpstreamFailure {
  status: 502 | 503 | 504;
  code: string;
  message: string;
  /** The connection was never made: the endpoint is ejected. */
  connectFailure: boolean;
}

type UpstreamErrorCode = Extract<keyof typeof GATEWAY_ERRORS, `CW_UPSTREAM_${string}`>;

/** A failure with the status and message declared in GATEWAY_ERRORS (unless told another message). */
function failure(code: UpstreamErrorCode, connectFailure: boolean, message: string = GATEWAY_ERRORS[code].message): UpstreamFailure {
  return { status: GATEWAY_ERRORS[code].status, code, message, connectFailure };
}

/** Map an upstream client (mesh/h1.ts) or socket error to the gateway error the client sees. */
export function classifyUpstreamError(err: unknown): UpstreamFailure {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return failure('CW_UPSTREAM_REFUSED', true);
    case 'CW_H1_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return failure('CW_UPSTREAM_CONNECT_TIMEOUT', true);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return failure('CW_UPSTREAM_UNREACHABLE', true);
    case 'CW_H1_HEADERS_TIMEOUT':
      return failure('CW_UPSTREAM_TIMEOUT', false);
    case 'CW_H1_BODY_TIMEOUT':
      return failure('CW_UPSTREAM_TIMEOUT', false, 'the upstream went silent while sending its response');
    case 'ECONNRESET':
    case 'EPIPE':
    case 'CW_H1_CLOSED':
      return failure('CW_UPSTREAM_RESET', false);
    case 'CW_H1_BAD_RESPONSE':
      return failure('CW_UPSTREAM_BAD_RESPONSE', false);
    case 'CW_H1_BAD_REQUEST':
      return failure('CW_UPSTREAM_ERROR', false, 'the request could not be sent upstream: a header carries a character HTTP/1.1 does not allow');
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return failure('CW_UPSTREAM_TLS_NAME', false);
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
    case 'CERT_UNTRUSTED':
    case 'CERT_REVOKED':
    case 'CERT_SIGNATURE_FAILURE':
    case 'INVALID_CA':
      return failure('CW_UPSTREAM_TLS_UNTRUSTED', false, `${GATEWAY_ERRORS.CW_UPSTREAM_TLS_UNTRUSTED.message} (${code})`);
    default:
      if (typeof code === 'string' && (code.startsWith('ERR_SSL_') || code === 'EPROTO')) return failure('CW_UPSTREAM_TLS', false);
      return failure('CW_UPSTREAM_ERROR', false);
  }
}

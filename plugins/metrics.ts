// Golden metrics with prom-client, under names shared by the gateway and (later) the sidecars.
// Labels are bounded: route and upstream names from the config, never raw paths.
// docs/observability.md lists every metric; test/plugins/metrics.test.ts keeps the two in step.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Reporter = 'gateway' | 'sidecar-inbound' | 'sidecar-outbound';

/** What the data plane reports about one finished request. */
export interface RequestRecord {
  /** Matched route name, or "" when none matched. */
  route: string;
  /** Upstream the request went to, or "" when the gateway answered itself. */
  backend: string;
  method: string;
  status: number;
  /** Seconds from the request's arrival to the end of the response. */
  seconds: number;
  requestBytes: number;
  responseBytes: number;
}

/** Method label values; anything else is OTHER (bounded labels). */
const METHOD_NAMES = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'];
const METHOD_INDEX = new Map(METHOD_NAMES.slice(0, -1).map((m, i) => [m, i]));
const OTHER_METHOD = METHOD_NAMES.length - 1;
const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** Latency buckets in seconds: sub-millisecond resolution at the low end for a proxy. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Labels = 'route' | 'backend' | 'method' | 'status_class' | 'reporter';

/**
 * One label set's figures, counted here and handed to prom-client only at scrape time: a
 * prom-client child hashes its labels on every inc/observe (≈ 3 % of the plain route's CPU).
 */
interface Children {
  labels: Record<Labels, string>;
  requests: number;
  requestBytes: number;
  responseBytes: number;
  /** Observations per LATENCY_BUCKETS bound (not cumulative), then the +Inf ones. */
  buckets: Float64Array;
  sum: number;
}

/** Callbacks that read state owned elsewhere (policies, upstream client) at scrape time. */
export interface MetricSources {
  configVersion(): string;
  reloads(): { ok: number; failed: number };
  rateLimit(): Array<{ policy: string; allowed: number; limited: number; storeFailures: number }>;
  endpoints(): Array<{ upstream: string; endpoint: string; ejected: boolean; connectFailures: number }>;
  /** Span export counts (telemetry.otlp), or null when it is off. */
  otlp?(): { exported: number; dropped: number; failed: number } | null;
  /** Served certificates: listener name, certificate subject, expiry (ms since epoch). */
  certificates(): Array<{ listener: string; subject: string; notAfter: number }>;
  /** Client connections each listener closed at accept for having maxConnections open. */
  connectionsDropped?(): Array<{ listener: string; dropped: number }>;
  /** Retries per upstream by reason, and retries the budget refused. */
  retries?(): Array<{ upstream: string; retries: Record<string, number>; budgetExhausted: number }>;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly reporter: Reporter;
  private readonly policyDenials: Counter<'route' | 'code' | 'reporter'>;
  /**
   * Every label set's counts, counted here and handed to prom-client at scrape time (a
   * prom-client child hashes its labels on every update).
   */
  private readonly children: Children[] = [];
  /** The same children by route, backend, then method × status class: observe's lookup. */
  private readonly index = new Map<string, Map<string, Array<Children | undefined>>>();

  constructor(reporter: Reporter, sources: MetricSources) {
    this.reporter = reporter;
    const registers = [this.registry];
    const labelNames: Labels[] = ['route', 'backend', 'method', 'status_class', 'reporter'];
    const children = this.children;
    const counterFrom = (field: 'requests' | 'requestBytes' | 'responseBytes') =>
      function (this: Counter<Labels>) {
        this.reset();
        for (const c of children) if (c[field] > 0) this.inc(c.labels, c[field]);
      };
    new Counter({ name: 'causeway_requests_total', help: 'Requests handled, by route, backend, method and status class.', labelNames, registers, collect: counterFrom('requests') });
    new Histogram({
      name: 'causeway_request_duration_seconds',
      help: 'Time from a request\'s arrival to the end of its response.',
      labelNames,
      buckets: LATENCY_BUCKETS,
      registers,
      collect() {
        // prom-client keeps, per label set, the count of each bucket (not cumulative), the sum
        // and the count; it accumulates the buckets itself when it writes them out.
        const map: Record<string, unknown> = {};
        let i = 0;
        for (const c of children) {
          const bucketValues: Record<number, number> = {};
          let count = 0;
          for (let b = 0; b < LATENCY_BUCKETS.length; b++) {
            bucketValues[LATENCY_BUCKETS[b]!] = c.buckets[b]!;
            count += c.buckets[b]!;
          }
          count += c.buckets[LATENCY_BUCKETS.length]!;
          map[String(i++)] = { labels: c.labels, bucketValues, sum: c.sum, count };
        }
        (this as unknown as { hashMap: Record<string, unknown> }).hashMap = map;
      },
    });
    new Counter({ name: 'causeway_request_bytes_total', help: 'Request body bytes received from clients (declared Content-Length).', labelNames, registers, collect: counterFrom('requestBytes') });
    new Counter({ name: 'causeway_response_bytes_total', help: 'Response body bytes sent to clients from upstreams.', labelNames, registers, collect: counterFrom('responseBytes') });
    this.policyDenials = new Counter({
      name: 'causeway_policy_denials_total',
      help: 'Requests a policy answered itself (401, 403, 429, …), by route and error code.',
      labelNames: ['route', 'code', 'reporter'],
      registers,
    });
    new Gauge({
      name: 'causeway_config_info',
      help: 'The running config version (always 1; the version is a label).',
      labelNames: ['version'],
      registers,
      collect() {
        this.reset();
        this.set({ version: sources.configVersion() }, 1);
      },
    });
    new Gauge({
      name: 'causeway_config_reloads',
      help: 'Config reloads since start, by result (ok, failed).',
      labelNames: ['result'],
      registers,
      collect() {
        const r = sources.reloads();
        this.set({ result: 'ok' }, r.ok);
        this.set({ result: 'failed' }, r.failed);
      },
    });
    new Gauge({
      name: 'causeway_ratelimit_decisions',
      help: 'Rate-limit decisions since start, by policy and decision (allowed, limited, store_failure).',
      labelNames: ['policy', 'decision'],
      registers,
      collect() {
        this.reset();
        for (const p of sources.rateLimit()) {
          this.set({ policy: p.policy, decision: 'allowed' }, p.allowed);
          this.set({ policy: p.policy, decision: 'limited' }, p.limited);
          this.set({ policy: p.policy, decision: 'store_failure' }, p.storeFailures);
        }
      },
    });
    new Gauge({
      name: 'causeway_upstream_endpoint_ejected',
      help: '1 while an endpoint is ejected after connection failures, else 0.',
      labelNames: ['upstream', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const e of sources.endpoints()) this.set({ upstream: e.upstream, endpoint: e.endpoint }, e.ejected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'causeway_upstream_connect_failures',
      help: 'Failed connection attempts to an endpoint since start.',
      labelNames: ['upstream', 'endpoint'],
      registers,
      collect() {
        this.reset();
        for (const e of sources.endpoints()) this.set({ upstream: e.upstream, endpoint: e.endpoint }, e.connectFailures);
      },
    });
    new Gauge({
      name: 'causeway_tls_certificate_expiry_seconds',
      help: 'Seconds until a served certificate expires (negative once expired).',
      labelNames: ['listener', 'subject'],
      registers,
      // With gateway.workers the primary merges the workers' metrics: the soonest expiry wins.
      aggregator: 'min',
      collect() {
        this.reset();
        const now = Date.now();
        for (const c of sources.certificates()) this.set({ listener: c.listener, subject: c.subject }, Math.round((c.notAfter - now) / 1000));
      },
    });
    new Counter({
      name: 'causeway_upstream_retries_total',
      help: 'Requests sent again to an upstream after a failed try, by reason (connect-failure, reset, timeout, status).',
      labelNames: ['upstream', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const u of sources.retries?.() ?? []) for (const [reason, n] of Object.entries(u.retries)) this.inc({ upstream: u.upstream, reason }, n);
      },
    });
    new Counter({
      name: 'causeway_upstream_retry_budget_exhausted_total',
      help: 'Retries not made because the upstream\'s retry budget was spent.',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const u of sources.retries?.() ?? []) this.inc({ upstream: u.upstream }, u.budgetExhausted);
      },
    });
    new Counter({
      name: 'causeway_connections_dropped_total',
      help: 'Client connections closed as soon as they were accepted, because the listener had maxConnections open.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const l of sources.connectionsDropped?.() ?? []) this.inc({ listener: l.listener }, l.dropped);
      },
    });
    new Gauge({
      name: 'causeway_otlp_spans',
      help: 'Spans since start handed to OTLP export, by result (exported, dropped: queue full, failed: export failed).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const c = sources.otlp?.() ?? null;
        if (c === null) return;
        this.set({ result: 'exported' }, c.exported);
        this.set({ result: 'dropped' }, c.dropped);
        this.set({ result: 'failed' }, c.failed);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'causeway_' });
  }

  /** Record one finished request (called once per request, from the response's close). */
  observe(r: RequestRecord): void {
    // route → backend → method × status class, without building a key string per request (the
    // route and backend names are the config's own strings, whose hashes V8 keeps).
    const m = METHOD_INDEX.get(r.method) ?? OTHER_METHOD;
    const k = Math.floor(r.status / 100);
    const slot = m * STATUS_CLASS.length + (k >= 0 && k < STATUS_CLASS.length ? k : 0);
    let byBackend = this.index.get(r.route);
    if (byBackend === undefined) this.index.set(r.route, (byBackend = new Map()));
    let cells = byBackend.get(r.backend);
    if (cells === undefined) byBackend.set(r.backend, (cells = []));
    let c = cells[slot];
    if (c === undefined) {
      const method = METHOD_NAMES[m]!;
      const cls = STATUS_CLASS[slot % STATUS_CLASS.length]!;
      const labels = { route: r.route || '-', backend: r.backend || '-', method, status_class: cls, reporter: this.reporter };
      c = { labels, requests: 0, requestBytes: 0, responseBytes: 0, buckets: new Float64Array(LATENCY_BUCKETS.length + 1), sum: 0 };
      this.children.push(c);
      cells[slot] = c;
    }
    c.requests++;
    const seconds = r.seconds;
    let b = 0;
    while (b < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[b]!) b++;
    c.buckets[b]!++;
    c.sum += seconds;
    if (r.requestBytes > 0) c.requestBytes += r.requestBytes;
    if (r.responseBytes > 0) c.responseBytes += r.responseBytes;
  }

  policyDenied(route: string, code: string): void {
    this.policyDenials.inc({ route, code, reporter: this.reporter });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

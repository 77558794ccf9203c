// Span export over OTLP/HTTP with the JSON encoding (no OpenTelemetry SDK): one server span per
// request, queued (bounded: a full queue drops and counts), sent in batches by a timer or when
// a batch is full, flushed at shutdown. Exports never block a request; failures are counted and
// logged at most once per FAILURE_LOG_INTERVAL_MS.
//
// Off (telemetry.otlp not set) there is no exporter at all: the data plane tests one field for
// null per request.
import { parseDuration } from '../config/duration.ts';
import type { ConfigModel, OtlpConfig } from '../config/model.ts';

export const FAILURE_LOG_INTERVAL_MS = 30_000;
const SCOPE = { name: 'causeway', version: '0.1.0' };

export interface OtlpSettings {
  /** Full URL of the traces endpoint (…/v1/traces). */
  url: string;
  headers: Record<string, string>;
  sampleRatio: number;
  serviceName: string;
  timeoutMs: number;
  maxBatch: number;
  intervalMs: number;
  maxQueue: number;
}

export function otlpSettings(cfg: OtlpConfig): OtlpSettings {
  const u = new URL(cfg.endpoint);
  if (!u.pathname.endsWith('/v1/traces')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/traces`;
  return {
    url: u.toString(),
    headers: { ...(cfg.headers ?? {}) },
    sampleRatio: cfg.sampleRatio ?? 1,
    serviceName: cfg.serviceName ?? 'causeway-gateway',
    timeoutMs: Math.max(1, parseDuration(cfg.timeout ?? '10s')),
    maxBatch: cfg.batch?.maxSize ?? 512,
    intervalMs: Math.max(10, parseDuration(cfg.batch?.interval ?? '5s')),
    maxQueue: cfg.batch?.maxQueue ?? 2048,
  };
}

/** One finished server span, as the data plane reports it. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  /** Epoch milliseconds (fractional). */
  startMs: number;
  endMs: number;
  method: string;
  path: string;
  host: string;
  route: string;
  backend: string;
  status: number;
  code: string;
  clientIp: string;
  requestId: string;
  /** Time spent on the upstream exchange in ms (-1: none). */
  upstreamMs: number;
}

export interface OtlpCounts {
  exported: number;
  /** Dropped because the queue was full. */
  dropped: number;
  /** Lost in exports that failed. */
  failed: number;
}

interface Logger {
  warn(obj: object, msg: string): void;
}

/**
 * Whether a trace is exported: never when its parent said "not sampled", else by the trace id
 * (its last 14 hex digits against sampleRatio, as OpenTelemetry's TraceIdRatioBased does with
 * the low 56 bits), so every gateway decides the same for one trace.
 */
export function sampled(traceId: string, flags: string, ratio: number): boolean {
  if ((parseInt(flags, 16) & 1) === 0) return false;
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return parseInt(traceId.slice(18), 16) < ratio * 2 ** 56;
}

const str = (key: string, v: string) => ({ key, value: { stringValue: v } });
const int = (key: string, v: number) => ({ key, value: { intValue: String(v) } });
const dbl = (key: string, v: number) => ({ key, value: { doubleValue: v } });
const nanos = (ms: number): string => (BigInt(Math.round(ms * 1000)) * 1000n).toString();

/** A span in OTLP/JSON (trace and span ids as hex, 64-bit integers as strings). */
export function otlpSpan(s: SpanRecord): Record<string, unknown> {
  const attributes: Array<{ key: string; value: Record<string, string | number> }> = [
    str('http.request.method', s.method),
    str('url.path', s.path),
    str('server.address', s.host),
    int('http.response.status_code', s.status),
    str('client.address', s.clientIp),
    str('causeway.route', s.route),
    str('causeway.request_id', s.requestId),
  ];
  if (s.backend !== '') attributes.push(str('causeway.backend', s.backend));
  if (s.code !== '') attributes.push(str('causeway.error_code', s.code));
  if (s.upstreamMs >= 0) attributes.push(dbl('causeway.upstream.duration_ms', s.upstreamMs));
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    ...(s.parentSpanId !== '' ? { parentSpanId: s.parentSpanId } : {}),
    name: `${s.method} ${s.route}`,
    kind: 2, // SPAN_KIND_SERVER
    startTimeUnixNano: nanos(s.startMs),
    endTimeUnixNano: nanos(s.endMs),
    attributes,
    // Server spans: 5xx (and 0, no response) are errors; 4xx are the client's.
    status: s.status >= 500 || s.status === 0 ? { code: 2, message: s.code || `HTTP ${s.status}` } : { code: 0 },
  };
}

export class OtlpExporter {
  readonly settings: OtlpSettings;
  readonly counts: OtlpCounts = { exported: 0, dropped: 0, failed: 0 };
  private queue: SpanRecord[] = [];
  private timer: NodeJS.Timeout;
  private sending: Promise<void> | null = null;
  private closed = false;
  private readonly log: Logger;
  private lastWarnAt = 0;
  private failuresSinceWarn = 0;
  private readonly resource: Record<string, unknown>;

  constructor(settings: OtlpSettings, log: Logger) {
    this.settings = settings;
    this.log = log;
    this.resource = { attributes: [str('service.name', settings.serviceName), str('telemetry.sdk.name', 'causeway')] };
    this.timer = setInterval(() => void this.flush(), settings.intervalMs);
    this.timer.unref();
  }

  /** Whether a request of this trace is to be exported (check before building a SpanRecord). */
  wants(traceId: string, flags: string): boolean {
    return !this.closed && sampled(traceId, flags, this.settings.sampleRatio);
  }

  /** Queue a span; drops (and counts) it when the queue is full. Never waits. */
  add(span: SpanRecord): void {
    if (this.queue.length >= this.settings.maxQueue) {
      this.counts.dropped++;
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.settings.maxBatch && this.sending === null) void this.flush();
  }

  /** Send what is queued, batch by batch, one export at a time. */
  flush(): Promise<void> {
    if (this.sending !== null) return this.sending;
    if (this.queue.length === 0) return Promise.resolve();
    this.sending = (async () => {
      try {
        while (this.queue.length > 0) {
          const batch = this.queue.splice(0, this.settings.maxBatch);
          await this.send(batch);
        }
      } finally {
        this.sending = null;
      }
    })();
    return this.sending;
  }

  private async send(batch: SpanRecord[]): Promise<void> {
    const body = JSON.stringify({ resourceSpans: [{ resource: this.resource, scopeSpans: [{ scope: SCOPE, spans: batch.map(otlpSpan) }] }] });
    try {
      const res = await fetch(this.settings.url, {
        method: 'POST',
        headers: { ...this.settings.headers, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      // Read the body, so the connection can be reused.
      const text = await res.text().catch(() => '');
      if (!res.ok) throw new Error(`the collector answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
      this.counts.exported += batch.length;
    } catch (err) {
      this.counts.failed += batch.length;
      this.failed(err, batch.length);
    }
  }

  private failed(err: unknown, spans: number): void {
    this.failuresSinceWarn++;
    const now = Date.now();
    if (now - this.lastWarnAt < FAILURE_LOG_INTERVAL_MS) return;
    this.lastWarnAt = now;
    const failures = this.failuresSinceWarn;
    this.failuresSinceWarn = 0;
    const e = err as Error & { cause?: Error };
    this.log.warn(
      { code: 'CW_OTLP_EXPORT_FAILED', url: this.settings.url, error: e?.cause?.message ?? e?.message ?? String(err), spans, failedExports: failures },
      `span export to ${this.settings.url} failed; the spans are dropped (logged at most every ${FAILURE_LOG_INTERVAL_MS / 1000}s)`,
    );
  }

  /** Stop the timer and send what is left (bounded by the export timeout). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
    // A flush that was running when close() came may have left spans queued behind it.
    if (this.queue.length > 0) await this.flush();
  }
}

/**
 * The exporter for a config: the running one when its settings are unchanged, a new one (and
 * the old one closed, after sending what it holds) when they changed, or null when off.
 */
export function otlpExporterFor(model: ConfigModel, running: OtlpExporter | null, log: Logger): OtlpExporter | null {
  const cfg = model.telemetry?.otlp;
  const settings = cfg ? otlpSettings(cfg) : null;
  if (running !== null && settings !== null && JSON.stringify(running.settings) === JSON.stringify(settings)) return running;
  if (running !== null) void running.close();
  return settings === null ? null : new OtlpExporter(settings, log);
}

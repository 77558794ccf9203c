// The request path: normalise → match → policies → pick backend and endpoint → forward →
// stream back. Works on node's raw request/response so the sidecar can reuse it and Fastify's
// per-request objects stay out of the hot path.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Transform, type TransformCallback } from 'node:stream';
import type { Backend, CompiledRoute, HeaderOps, Snapshot } from '../config/compile.ts';
import { normaliseHost, type RequestFacts, type RouteHit } from '../config/routes.ts';
import { compileAddressMatcher } from '../config/cidr.ts';
import type { H1Controller, H1Handler, H1Request } from '../mesh/h1.ts';
import { classifyUpstreamError, type PickedEndpoint, type RetryReason, type UpstreamClient } from '../mesh/upstream.ts';
import { isPromise, newContext, type Chain, type PolicyContext, type PolicyResult, type Verdict } from '../plugins/policy.ts';
import type { PolicySet } from '../plugins/registry.ts';
import { clientIdentity } from './client-cert.ts';
import { errorBody, GATEWAY_ERRORS, sendError } from './errors.ts';
import { computeForwarding, type Forwarding } from './forwarded.ts';
import { connectionTokens, HOP_BY_HOP } from './hop.ts';
import { normaliseUrl } from './path.ts';
import { traceContext, type TraceContext } from './trace.ts';

export type GatewaySnapshot = Snapshot<UpstreamClient>;

/** What the handler needs from one snapshot, built once when the snapshot is installed. */
export interface Runtime {
  snapshot: GatewaySnapshot;
  policies: PolicySet | null;
  /** Policy chain per route, by CompiledRoute.index. */
  chains: Array<Chain | null>;
  trusted: (address: string) => boolean;
  requestIdHeader: string;
  /** Client headers never passed upstream as sent: forwarding and identity headers. */
  strip: ReadonlySet<string>;
}

/**
 * Headers the gateway sets itself; client-sent values never pass through as they are. Also
 * `expect`: node answers `Expect: 100-continue` to the client itself, and undici refused to
 * send the header (every such request was a 502).
 */
const GATEWAY_OWNED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'host', 'expect'];

export function makeRuntime(snapshot: GatewaySnapshot, policies: PolicySet | null = null): Runtime {
  return {
    snapshot,
    policies,
    chains: snapshot.routes.map((r) => (policies ? policies.chainFor(r.config) : null)),
    trusted: compileAddressMatcher(snapshot.gateway.trustedProxies),
    requestIdHeader: snapshot.gateway.requestIdHeader,
    strip: new Set([...GATEWAY_OWNED, ...(policies?.identityHeaders ?? [])]),
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** A request that matched a route: what policies run on and what the forwarder needs. */
export interface Matched {
  hit: RouteHit<CompiledRoute<UpstreamClient>>;
  route: CompiledRoute<UpstreamClient>;
  path: string;
  query: string;
  host: string;
  fwd: Forwarding;
  requestId: string;
  trace: TraceContext;
}

export interface Target {
  backend: Backend<UpstreamClient>;
  endpoint: PickedEndpoint;
  path: string;
  headers: Record<string, string | string[]>;
}

export interface Rejection {
  status: number;
  code: keyof typeof GATEWAY_ERRORS;
  message: string;
  requestId: string;
}

function isEncrypted(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).encrypted === true;
}

/** An HTTP/2 request (node's compatibility API gives it the same shape as HTTP/1.1). */
export const isH2 = (req: IncomingMessage): boolean => req.httpVersionMajor === 2;

/** The request's authority: HTTP/2's :authority (Host when a client sends that instead). */
export function hostHeader(req: IncomingMessage): string | undefined {
  if (isH2(req)) {
    const a = req.headers[':authority'];
    if (typeof a === 'string' && a !== '') return a;
  }
  return req.headers.host;
}

/** Close the HTTP/1.1 connection after this response (HTTP/2 streams need nothing). */
export function closeAfter(res: ServerResponse): void {
  if (res.req?.httpVersionMajor !== 2) res.shouldKeepAlive = false;
}

/** The client went away (HTTP/2 responses have no `destroyed`: their stream does). */
const gone = (res: ServerResponse): boolean =>
  res.destroyed === true || (res as unknown as { stream?: { destroyed?: boolean } }).stream?.destroyed === true;

/** Headers HTTP/2 forbids in a response (connection-specific). */
const H2_FORBIDDEN = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

function requestIdFor(req: IncomingMessage, rt: Runtime, peerTrusted: boolean): string {
  if (peerTrusted) {
    const v = req.headers[rt.requestIdHeader];
    if (typeof v === 'string' && REQUEST_ID.test(v)) return v;
  }
  return randomUUID();
}

function applyOps(out: Record<string, string | string[]>, ops: HeaderOps): void {
  for (const name of ops.remove) delete out[name];
  for (const [name, value] of ops.set) out[name] = value;
  for (const [name, value] of ops.add) appendHeader(out, name, value);
}

function appendHeader(out: Record<string, string | string[]>, name: string, value: string): void {
  const prev = out[name];
  out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
}

/** A policy context's header changes, onto a header object. */
function applyChanges(
  out: Record<string, string | string[]>,
  remove: string[] | null,
  add: Array<[string, string]> | null,
): void {
  if (remove !== null) for (const name of remove) delete out[name];
  if (add !== null) for (const [name, value] of add) appendHeader(out, name, value);
}

/** Copy client headers minus hop-by-hop and gateway-owned ones. */
function copyHeaders(src: IncomingHttpHeaders, skip: ReadonlySet<string>, keepUpgrade: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = src.connection === undefined ? null : connectionTokens(src.connection);
  for (const name in src) {
    const v = src[name];
    if (v === undefined) continue;
    if (HOP_BY_HOP.has(name) && !(keepUpgrade && (name === 'upgrade' || name === 'connection'))) continue;
    if (skip.has(name) || name.charCodeAt(0) === 58 /* ':' HTTP/2 pseudo-header */) continue;
    if (listed !== null && listed.includes(name) && !(keepUpgrade && name === 'upgrade')) continue;
    out[name] = v;
  }
  return out;
}

/** How many Host header lines a request has (raw names, any case). */
function hostLines(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) n++;
  }
  return n;
}

/** Header fields of a request, without HTTP/2 pseudo-headers. */
function headerCount(req: IncomingMessage): number {
  const raw = req.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== 58 /* ':' */) n++;
  return n;
}

/** Normalise and match. Returns a rejection for a request the gateway answers itself. */
export function matchRequest(req: IncomingMessage, rt: Runtime, upgrade: boolean, listener = 0): Matched | Rejection {
  const remote = req.socket.remoteAddress ?? '';
  const peerTrusted = rt.trusted(remote);
  const requestId = requestIdFor(req, rt, peerTrusted);
  const g = rt.snapshot.gateway;
  if (req.rawHeaders.length > 2 * g.maxHeaders && headerCount(req) > g.maxHeaders) {
    return { status: 431, code: 'CW_TOO_MANY_HEADERS', message: `the request has more than ${g.maxHeaders} header fields`, requestId };
  }
  const url = normaliseUrl(req.url ?? '', g.pathSemicolons);
  if ('error' in url) return { status: 400, code: 'CW_BAD_PATH', message: url.message, requestId };
  const authority = hostHeader(req);
  if (isH2(req) && req.headers.host !== undefined && authority !== req.headers.host && normaliseHost(req.headers.host) !== normaliseHost(authority)) {
    // RFC 9113 §8.3.1: a Host naming another entity than :authority is a malformed request.
    return { status: 400, code: 'CW_BAD_HOST', message: 'the Host header and :authority name different hosts', requestId };
  }
  if (!isH2(req) && hostLines(req.rawHeaders) > 1) {
    // RFC 9112 §3.2: a request with more than one Host line must be refused with a 400.
    return { status: 400, code: 'CW_BAD_HOST', message: 'the request has more than one Host header', requestId };
  }
  const host = normaliseHost(authority);
  const facts: RequestFacts = { method: req.method ?? 'GET', host, path: url.path, query: url.query, headers: req.headers };
  const hit = (rt.snapshot.listenerMatch[listener] ?? rt.snapshot.match)(facts);
  if (hit === null || (upgrade && !hit.route.websocket)) {
    return { status: 404, code: 'CW_ROUTE_NOT_FOUND', message: GATEWAY_ERRORS.CW_ROUTE_NOT_FOUND.message, requestId };
  }
  const fwd = computeForwarding({
    remoteAddress: remote,
    encrypted: isEncrypted(req),
    host: authority,
    headers: req.headers,
    trusted: rt.trusted,
  });
  const trace = traceContext(req.headers.traceparent);
  return { hit, route: hit.route, path: url.path, query: url.query, host, fwd, requestId, trace };
}

/** The policy context for a matched request. */
export function policyContext(req: IncomingMessage, m: Matched): PolicyContext {
  const ctx = newContext({
    method: req.method ?? 'GET',
    path: m.path,
    query: m.query,
    host: m.host,
    headers: req.headers,
    clientIp: m.fwd.clientIp,
    route: m.route.name,
  });
  // A verified client certificate is the identity policies start from (a token may replace it).
  ctx.identity = clientIdentity(req);
  return ctx;
}

/** Pick the backend and endpoint and build what the upstream receives. */
export function target(req: IncomingMessage, rt: Runtime, m: Matched, ctx: PolicyContext | null, upgrade: boolean): Target | Rejection {
  const route = m.route;
  const backend = route.pickBackend();
  let endpoint = backend.upstream.pick(Date.now());
  if (endpoint === null) {
    return {
      status: 503,
      code: 'CW_NO_HEALTHY_ENDPOINT',
      message: `no healthy endpoint for upstream "${backend.spec.name}"`,
      requestId: m.requestId,
    };
  }
  if (backend.upstream.isFull(endpoint)) {
    // Every connection to it is busy and its queue is full: another endpoint, or a fast 503.
    const other = backend.upstream.pickOther(Date.now(), endpoint);
    if (other === null || backend.upstream.isFull(other)) {
      return {
        status: 503,
        code: 'CW_UPSTREAM_POOL_FULL',
        message: `every connection to upstream "${backend.spec.name}" is busy and too many requests are waiting`,
        requestId: m.requestId,
      };
    }
    endpoint = other;
  }
  const headers = copyHeaders(req.headers, rt.strip, upgrade);
  const authority = hostHeader(req);
  headers.host = backend.spec.passHost && authority ? authority : endpoint.spec.authority;
  headers['x-forwarded-for'] = m.fwd.xff;
  headers['x-forwarded-proto'] = m.fwd.proto;
  if (m.fwd.host) headers['x-forwarded-host'] = m.fwd.host;
  headers.forwarded = m.fwd.forwarded;
  headers[rt.requestIdHeader] = m.requestId;
  headers.traceparent = m.trace.traceparent;
  if (!m.trace.keepTracestate) delete headers.tracestate;
  if (ctx !== null) applyChanges(headers, ctx.upstreamRemove, ctx.upstreamHeaders);
  if (route.requestHeaders !== null) applyOps(headers, route.requestHeaders);
  const path = route.rewrite === null ? m.path : route.rewrite(m.path, m.hit.params);
  return { backend, endpoint, path: m.query === '' ? path : `${path}?${m.query}`, headers };
}

function hasBody(req: IncomingMessage): boolean {
  // HTTP/2 has no Transfer-Encoding: a body may stream without Content-Length.
  if (isH2(req)) {
    if (req.headers['content-length'] === '0') return false;
    return (req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders !== true;
  }
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/** Response headers for the client: upstream's minus hop-by-hop, plus policy and route rules. */
function responseHeaders(
  upstream: IncomingHttpHeaders,
  route: CompiledRoute<UpstreamClient>,
  rt: Runtime,
  requestId: string,
  ctx: PolicyContext | null,
  h2: boolean,
): Record<string, string | string[]> {
  const out = copyHeaders(upstream, EMPTY, false);
  if (ctx !== null) applyChanges(out, ctx.responseRemove, ctx.responseHeaders);
  if (route.responseHeaders !== null) applyOps(out, route.responseHeaders);
  out[rt.requestIdHeader] = requestId;
  if (h2) for (const name of H2_FORBIDDEN) delete out[name];
  return out;
}
const EMPTY: ReadonlySet<string> = new Set<string>();

/** The status line and headers (and JSON error body, if any) of a policy's own answer. */
export function verdictResponse(
  v: Verdict,
  ctx: PolicyContext,
  requestId: string,
  requestIdHeader: string,
): { status: number; headers: Record<string, string | string[]>; body: string } {
  const headers: Record<string, string | string[]> = {};
  applyChanges(headers, ctx.responseRemove, ctx.responseHeaders);
  if (v.headers) for (const [name, value] of v.headers) headers[name.toLowerCase()] = value;
  const body = v.code === undefined ? '' : errorBody(v.code, v.message ?? 'request refused', requestId);
  if (body !== '') headers['content-type'] = 'application/json; charset=utf-8';
  headers['content-length'] = String(Buffer.byteLength(body));
  headers['cache-control'] ??= 'no-store';
  headers[requestIdHeader] = requestId;
  return { status: v.status, headers, body };
}

function sendVerdict(res: ServerResponse, req: IncomingMessage, v: Verdict, ctx: PolicyContext, requestId: string, rt: Runtime): void {
  if (res.headersSent || gone(res)) return;
  const r = verdictResponse(v, ctx, requestId, rt.requestIdHeader);
  if (isH2(req)) for (const name of H2_FORBIDDEN) delete r.headers[name];
  else if (hasBody(req)) closeAfter(res);
  res.writeHead(r.status, r.headers);
  res.end(r.body);
}

/** What is known about a request when it is done: for metrics and the access log. */
export interface RequestInfo {
  /** performance.now() when the request arrived. */
  started: number;
  /** Matched route name ("" when none matched). */
  route: string;
  /** Upstream name ("" when the gateway answered itself). */
  backend: string;
  /** The gateway's error code when it answered itself ("" otherwise). */
  code: string;
  /** Response body bytes streamed from the upstream. */
  responseBytes: number;
  /** The verified identity's subject, for the access log ("" when anonymous). */
  subject: string;
  requestId: string;
  clientIp: string;
  /** W3C trace id ("" when the request never matched a route). */
  traceId: string;
  /** The request's trace context (null when it never matched a route): for span export. */
  trace: TraceContext | null;
  /** performance.now() when the upstream exchange started and ended (0: none). */
  upstreamStart: number;
  upstreamEnd: number;
  /** Upstream tries made (1, or more after retries; 0: none). */
  attempts: number;
  /** The upstream exchange in progress, told when the client leaves (null: none). */
  forwarder: { onClientClose(): void } | null;
}

export interface ProxyHooks {
  /** Called once per request when it is fully done (response finished or connection gone). */
  done(req: IncomingMessage, res: ServerResponse, info: RequestInfo): void;
  /** A policy threw: logged by the caller. */
  policyError(err: unknown, route: string, requestId: string): void;
}

class BodyTooLarge extends Error {
  readonly code = 'CW_BODY_TOO_LARGE';
}

/** Counts request body bytes and fails the stream once it passes the limit. */
function limitBody(req: IncomingMessage, max: number): Transform {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > max) cb(new BodyTooLarge(`the request body is larger than ${max} bytes`));
      else cb(null, chunk);
    },
  });
  req.on('error', (e) => counter.destroy(e));
  return req.pipe(counter);
}

/** Handle one client request end to end. */
export function handleRequest(req: IncomingMessage, res: ServerResponse, rt: Runtime, hooks: ProxyHooks, listener = 0): void {
  const info: RequestInfo = { started: performance.now(), route: '', backend: '', code: '', responseBytes: 0, subject: '', requestId: '', clientIp: '', traceId: '', trace: null, upstreamStart: 0, upstreamEnd: 0, attempts: 0, forwarder: null };
  let finished = false;
  // One 'close' listener per request (on, not once: a response closes once, and `once` wraps).
  res.on('close', () => {
    if (finished) return;
    finished = true;
    // The client left before the response ended: stop the upstream exchange.
    if (info.forwarder !== null && !res.writableEnded) info.forwarder.onClientClose();
    hooks.done(req, res, info);
  });
  const m = matchRequest(req, rt, false, listener);
  if ('status' in m) {
    info.code = m.code;
    info.requestId = m.requestId;
    return reject(req, res, m, rt);
  }
  info.route = m.route.name;
  info.requestId = m.requestId;
  info.traceId = m.trace.traceId;
  info.trace = m.trace;
  info.clientIp = m.fwd.clientIp;
  const chain = rt.chains[m.route.index] ?? null;
  if (chain === null) return forward(req, res, rt, m, null, info);
  const ctx = policyContext(req, m);
  let result: PolicyResult | Promise<PolicyResult>;
  try {
    result = chain(ctx);
  } catch (err) {
    return policyFailed(req, res, rt, m, ctx, err, hooks);
  }
  if (isPromise(result)) {
    result.then(
      (v) => {
        if (gone(res)) return; // the client went away while policies ran
        if (ctx.identity !== null) info.subject = ctx.identity.subject;
        if (v !== null) {
          info.code = v.code ?? '';
          sendVerdict(res, req, v, ctx, m.requestId, rt);
        } else forward(req, res, rt, m, ctx, info);
      },
      (err: unknown) => policyFailed(req, res, rt, m, ctx, err, hooks),
    );
    return;
  }
  if (ctx.identity !== null) info.subject = ctx.identity.subject;
  if (result !== null) {
    info.code = result.code ?? '';
    return sendVerdict(res, req, result, ctx, m.requestId, rt);
  }
  forward(req, res, rt, m, ctx, info);
}

function reject(req: IncomingMessage, res: ServerResponse, r: Rejection, rt: Runtime): void {
  // Do not leave an unread body on a keep-alive connection.
  if (hasBody(req)) closeAfter(res);
  sendError(res, r.status, r.code, r.message, r.requestId, rt.requestIdHeader);
}

function policyFailed(
  req: IncomingMessage,
  res: ServerResponse,
  rt: Runtime,
  m: Matched,
  ctx: PolicyContext,
  err: unknown,
  hooks: ProxyHooks,
): void {
  hooks.policyError(err, m.route.name, m.requestId);
  sendVerdict(res, req, { status: 500, code: 'CW_POLICY_ERROR', message: 'a policy failed while checking the request' }, ctx, m.requestId, rt);
}

const CLIENT_GONE = Object.assign(new Error('the client closed the connection'), { code: 'CW_CLIENT_GONE' });

/** Methods a retry cannot change the meaning of (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Streams one upstream exchange to the client through the upstream pool (mesh/h1.ts): no intermediate
 * response stream, backpressure by pausing the upstream, and an abort when the client leaves.
 * When a try fails before any response byte reached the client, the same handler retries the
 * same request on another endpoint (see `retryReason`): nothing is allocated for retries
 * unless one is made.
 */
class ForwardHandler implements H1Handler {
  private controller: H1Controller | null = null;
  /** A retried status: its body is read and dropped, then the request is sent again here. */
  private discarding: PickedEndpoint | null = null;
  private onDrain: (() => void) | null = null;
  private readonly h2: boolean;

  constructor(
    private readonly res: ServerResponse,
    private readonly rt: Runtime,
    private readonly route: CompiledRoute<UpstreamClient>,
    private readonly backend: Backend<UpstreamClient>,
    private endpoint: PickedEndpoint,
    private readonly requestId: string,
    private readonly ctx: PolicyContext | null,
    private readonly info: RequestInfo,
    private readonly opts: H1Request,
  ) {
    info.forwarder = this;
    this.h2 = res.req?.httpVersionMajor === 2;
  }

  /** The client closed the connection before the response ended (handleRequest's 'close'). */
  onClientClose(): void {
    this.controller?.abort(CLIENT_GONE);
  }

  /** Send (or send again) on the current endpoint's pool. */
  dispatch(): void {
    const { backend, endpoint } = this;
    endpoint.state.active++;
    endpoint.state.pool(backend.timeouts.connectMs, backend.spec.connections, backend.upstream.tls).dispatch(this.opts, this);
  }

  onRequestStart(controller: H1Controller): void {
    this.controller = controller;
    if (gone(this.res)) controller.abort(CLIENT_GONE);
  }

  onResponseStart(_c: H1Controller, statusCode: number, headers: IncomingHttpHeaders): void {
    const up = this.backend.upstream;
    if (up.retryStatuses !== null && up.retryStatuses.has(statusCode)) {
      this.discarding = this.retryTarget('status');
      if (this.discarding !== null) return;
    }
    up.reportSuccess(this.endpoint);
    this.res.writeHead(statusCode, responseHeaders(headers, this.route, this.rt, this.requestId, this.ctx, this.h2));
  }

  onResponseData(controller: H1Controller, chunk: Buffer): void {
    if (this.discarding !== null) return;
    this.info.responseBytes += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', (this.onDrain ??= () => this.controller?.resume()));
    }
  }

  /**
   * Whether the client connection may still read a chunk handed over since the last call (the
   * pool reuses its read buffer only when nothing does). node:http's response corks its socket
   * until the next tick: uncorked here, so what the kernel takes at once is known now; anything
   * left in the response's or the socket's queue is still held. HTTP/2 streams write later: always
   * held there.
   */
  chunksHeld(): boolean {
    const res = this.res;
    if (this.h2 || res.destroyed) return true;
    const socket = res.socket;
    if (socket === null) return true;
    while (socket.writableCorked > 0) socket.uncork();
    return res.writableLength > 0;
  }

  onResponseEnd(): void {
    this.endpoint.state.active--;
    if (this.discarding !== null) return this.retry(this.discarding);
    this.info.upstreamEnd = performance.now();
    this.res.end();
  }

  onResponseError(_c: H1Controller, err: Error): void {
    this.endpoint.state.active--;
    const res = this.res;
    this.info.upstreamEnd = performance.now();
    if (err === CLIENT_GONE || gone(res) || res.writableEnded) return;
    if (this.discarding !== null) return this.retry(this.discarding);
    if (err instanceof BodyTooLarge || (err as { cause?: unknown }).cause instanceof BodyTooLarge) {
      closeAfter(res);
      this.info.code = 'CW_BODY_TOO_LARGE';
      sendError(res, 413, 'CW_BODY_TOO_LARGE', err.message, this.requestId, this.rt.requestIdHeader);
      return;
    }
    const failure = classifyUpstreamError(err);
    if (failure.connectFailure) this.backend.upstream.reportConnectFailure(this.endpoint, Date.now());
    if (!res.headersSent) {
      const reason = retryReason(failure.code, failure.connectFailure);
      const next = reason === null ? null : this.retryTarget(reason);
      if (next !== null) return this.retry(next);
    }
    this.info.code = failure.code;
    // After the status line went out, an error can only cut the response short.
    sendError(res, failure.status, failure.code, failure.message, this.requestId, this.rt.requestIdHeader);
  }

  /**
   * The endpoint to try this request again on for `reason`, or null: retries on for the
   * reason, tries left, an idempotent method without a request body, the client still there,
   * an endpoint to send it to, and room in the upstream's retry budget (taken here).
   */
  private retryTarget(reason: RetryReason): PickedEndpoint | null {
    const up = this.backend.upstream;
    const spec = up.retry;
    if (spec === null || this.info.attempts > spec.attempts || this.opts.body !== null || gone(this.res)) return null;
    if (reason === 'connect-failure' ? !spec.connectFailure : reason === 'reset' ? !spec.reset : reason === 'timeout' ? !spec.timeout : false) return null;
    if (!IDEMPOTENT.has(this.opts.method)) return null;
    // With no endpoint left (the only one just got ejected), the client gets the real failure.
    if (!up.stats.allowRetry(performance.now(), spec)) return null;
    const next = up.pickOther(Date.now(), this.endpoint);
    if (next !== null) up.stats.tookRetry(reason);
    return next;
  }

  private retry(next: PickedEndpoint): void {
    this.discarding = null;
    this.controller = null;
    if (next !== this.endpoint && !this.backend.spec.passHost) (this.opts.headers as Record<string, string>).host = next.spec.authority;
    this.endpoint = next;
    this.info.attempts++;
    // Not from inside the pool's callback: the failed exchange is still being torn down.
    process.nextTick(redispatch, this);
  }

  /** The client went away before a retry could be sent. */
  get clientGone(): boolean {
    return gone(this.res);
  }
}

function redispatch(h: ForwardHandler): void {
  if (!h.clientGone) h.dispatch();
}

/** Which retry condition an upstream failure is, or null for one never retried. */
function retryReason(code: string, connectFailure: boolean): RetryReason | null {
  if (connectFailure) return 'connect-failure';
  if (code === 'CW_UPSTREAM_RESET') return 'reset';
  if (code === 'CW_UPSTREAM_TIMEOUT') return 'timeout';
  return null;
}

/**
 * A client that goes silent in the middle of its request body would hold the upstream
 * connection it is streaming to: after `gateway.requestTimeouts.bodyIdle` of silence, or once
 * the whole body has taken longer than `gateway.requestTimeouts.body` (a steady trickle), it gets
 * a 408, the upstream request is aborted (destroying the body stream) and the connection closed.
 * The timers stop once the body is complete: waiting for the upstream is not the client's fault.
 */
function watchBodyIdle(req: IncomingMessage, res: ServerResponse, rt: Runtime, requestId: string, info: RequestInfo): void {
  const idleMs = rt.snapshot.gateway.bodyIdleTimeoutMs;
  const totalMs = rt.snapshot.gateway.bodyTimeoutMs;
  if ((idleMs <= 0 && totalMs <= 0) || req.complete) return;
  let total: NodeJS.Timeout | null = null;
  const onTimeout = () => {
    if (req.complete || gone(res)) return;
    info.code = 'CW_REQUEST_TIMEOUT';
    closeAfter(res);
    // Once the 408 is out, end the request stream: that aborts the upstream exchange.
    res.once('finish', () => req.destroy());
    sendError(res, 408, 'CW_REQUEST_TIMEOUT', GATEWAY_ERRORS.CW_REQUEST_TIMEOUT.message, requestId, rt.requestIdHeader);
  };
  const stop = () => {
    if (idleMs > 0) {
      // The socket is gone (null) once the connection closed.
      if (req.socket !== null) req.setTimeout(0);
      req.removeListener('timeout', onTimeout);
    }
    if (total !== null) clearTimeout(total);
  };
  if (idleMs > 0) req.setTimeout(idleMs, onTimeout);
  if (totalMs > 0) total = setTimeout(onTimeout, totalMs).unref();
  req.once('end', stop);
  res.once('close', stop);
}

function forward(req: IncomingMessage, res: ServerResponse, rt: Runtime, m: Matched, ctx: PolicyContext | null, info: RequestInfo): void {
  const t = target(req, rt, m, ctx, false);
  if ('status' in t) {
    info.code = t.code;
    return reject(req, res, t, rt);
  }
  info.backend = t.backend.spec.name;
  info.upstreamStart = performance.now();
  info.attempts = 1;
  const { backend, endpoint } = t;
  backend.upstream.stats.noteRequest(info.upstreamStart);
  const limit = ctx === null ? Infinity : ctx.maxBodyBytes;
  const body = !hasBody(req) ? null : limit === Infinity ? req : limitBody(req, limit);
  if (body !== null) watchBodyIdle(req, res, rt, m.requestId, info);
  // The pool never retries or reorders a request itself: the handler retries what is safe to
  // retry, on another endpoint.
  const opts: H1Request = {
    path: t.path,
    method: req.method ?? 'GET',
    headers: t.headers,
    body,
    headersTimeout: backend.timeouts.responseMs,
    bodyTimeout: backend.timeouts.idleMs,
  };
  new ForwardHandler(res, rt, m.route, backend, endpoint, m.requestId, ctx, info, opts).dispatch();
}

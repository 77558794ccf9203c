// The request path: normalise → match → pick backend and endpoint → forward → stream back.
// Works on node's raw request/response so the sidecar can reuse it and Fastify's per-request
// objects stay out of the hot path.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { pipeline } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Backend, CompiledRoute, HeaderOps, Snapshot } from '../config/compile.ts';
import { normaliseHost, type RequestFacts } from '../config/routes.ts';
import { compileAddressMatcher } from '../config/cidr.ts';
import { classifyUpstreamError, type PickedEndpoint, type UpstreamClient } from '../mesh/upstream.ts';
import { GATEWAY_ERRORS, sendError } from './errors.ts';
import { computeForwarding, type Forwarding } from './forwarded.ts';
import { connectionTokens, HOP_BY_HOP } from './hop.ts';
import { normaliseUrl } from './path.ts';

export type GatewaySnapshot = Snapshot<UpstreamClient>;

/** What the handler needs from one snapshot, built once when the snapshot is installed. */
export interface Runtime {
  snapshot: GatewaySnapshot;
  trusted: (address: string) => boolean;
  requestIdHeader: string;
}

export function makeRuntime(snapshot: GatewaySnapshot): Runtime {
  return {
    snapshot,
    trusted: compileAddressMatcher(snapshot.gateway.trustedProxies),
    requestIdHeader: snapshot.gateway.requestIdHeader,
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** Headers the gateway sets itself; client-sent values never pass through as they are. */
const GATEWAY_OWNED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'host']);

export interface Prepared {
  route: CompiledRoute<UpstreamClient>;
  backend: Backend<UpstreamClient>;
  endpoint: PickedEndpoint;
  path: string;
  headers: Record<string, string | string[]>;
  requestId: string;
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
  for (const [name, value] of ops.add) {
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
}

/** Copy client headers minus hop-by-hop and gateway-owned ones. */
function copyHeaders(src: IncomingHttpHeaders, skip: Set<string>, keepUpgrade: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = src.connection === undefined ? null : connectionTokens(src.connection);
  for (const name in src) {
    const v = src[name];
    if (v === undefined) continue;
    if (HOP_BY_HOP.has(name) && !(keepUpgrade && (name === 'upgrade' || name === 'connection'))) continue;
    if (skip.has(name)) continue;
    if (listed !== null && listed.includes(name) && !(keepUpgrade && name === 'upgrade')) continue;
    out[name] = v;
  }
  return out;
}

/**
 * Decide where a request goes and what the upstream receives. Returns a rejection for a
 * request the gateway answers itself.
 */
export function prepare(req: IncomingMessage, rt: Runtime, upgrade: boolean): Prepared | Rejection {
  const remote = req.socket.remoteAddress ?? '';
  const peerTrusted = rt.trusted(remote);
  const requestId = requestIdFor(req, rt, peerTrusted);
  const url = normaliseUrl(req.url ?? '');
  if ('error' in url) return { status: 400, code: 'CW_BAD_PATH', message: url.message, requestId };
  const facts: RequestFacts = {
    method: req.method ?? 'GET',
    host: normaliseHost(req.headers.host),
    path: url.path,
    query: url.query,
    headers: req.headers,
  };
  const hit = rt.snapshot.match(facts);
  if (hit === null || (upgrade && !hit.route.websocket)) {
    return { status: 404, code: 'CW_ROUTE_NOT_FOUND', message: GATEWAY_ERRORS.CW_ROUTE_NOT_FOUND.message, requestId };
  }
  const route = hit.route;
  const backend = route.pickBackend();
  const endpoint = backend.upstream.pick(Date.now());
  if (endpoint === null) {
    return {
      status: 503,
      code: 'CW_NO_HEALTHY_ENDPOINT',
      message: `no healthy endpoint for upstream "${backend.spec.name}"`,
      requestId,
    };
  }
  const fwd: Forwarding = computeForwarding({
    remoteAddress: remote,
    encrypted: isEncrypted(req),
    host: req.headers.host,
    headers: req.headers,
    trusted: rt.trusted,
  });
  const headers = copyHeaders(req.headers, GATEWAY_OWNED, upgrade);
  headers.host = backend.spec.passHost && req.headers.host ? req.headers.host : endpoint.spec.authority;
  headers['x-forwarded-for'] = fwd.xff;
  headers['x-forwarded-proto'] = fwd.proto;
  if (fwd.host) headers['x-forwarded-host'] = fwd.host;
  headers.forwarded = fwd.forwarded;
  headers[rt.requestIdHeader] = requestId;
  if (route.requestHeaders !== null) applyOps(headers, route.requestHeaders);
  const path = route.rewrite === null ? url.path : route.rewrite(url.path, hit.params);
  return { route, backend, endpoint, path: url.query === '' ? path : `${path}?${url.query}`, headers, requestId };
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/** Response headers for the client: upstream's minus hop-by-hop, plus route rules and the id. */
function responseHeaders(
  upstream: IncomingHttpHeaders,
  route: CompiledRoute<UpstreamClient>,
  rt: Runtime,
  requestId: string,
): Record<string, string | string[]> {
  const out = copyHeaders(upstream, EMPTY, false);
  if (route.responseHeaders !== null) applyOps(out, route.responseHeaders);
  out[rt.requestIdHeader] = requestId;
  return out;
}
const EMPTY = new Set<string>();

export interface ProxyHooks {
  /** Called once per request when it is fully done (response finished or connection gone). */
  done(): void;
}

/** Handle one client request end to end. */
export function handleRequest(req: IncomingMessage, res: ServerResponse, rt: Runtime, hooks: ProxyHooks): void {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    hooks.done();
  };
  res.once('close', finish);
  const p = prepare(req, rt, false);
  if ('status' in p) {
    // Do not leave an unread body on a keep-alive connection.
    if (hasBody(req)) res.shouldKeepAlive = false;
    sendError(res, p.status, p.code, p.message, p.requestId, rt.requestIdHeader);
    return;
  }
  const { route, backend, endpoint, requestId } = p;
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  const pool = endpoint.state.pool(backend.timeouts.connectMs, backend.spec.connections);
  const body = hasBody(req) ? req : null;
  pool.request(
    {
      path: p.path,
      method: req.method as Dispatcher.HttpMethod,
      headers: p.headers,
      body,
      headersTimeout: backend.timeouts.responseMs,
      bodyTimeout: backend.timeouts.idleMs,
      signal: ac.signal,
      // Keep the request's own semantics: never let undici retry or reorder it.
      idempotent: false,
      blocking: false,
    },
    (err, data) => {
      if (err) {
        if (ac.signal.aborted) return; // the client went away
        const failure = classifyUpstreamError(err);
        if (failure.connectFailure) backend.upstream.reportConnectFailure(endpoint, Date.now());
        sendError(res, failure.status, failure.code, failure.message, requestId, rt.requestIdHeader);
        return;
      }
      backend.upstream.reportSuccess(endpoint);
      res.writeHead(data.statusCode, responseHeaders(data.headers as IncomingHttpHeaders, route, rt, requestId));
      pipeline(data.body, res, (e) => {
        if (e && !res.destroyed) res.destroy();
      });
    },
  );
}

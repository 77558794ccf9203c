// WebSocket pass-through: the upgrade request goes to the route's endpoint as it came (with
// the gateway's forwarding headers), then bytes flow both ways untouched.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { classifyUpstreamError, type UpstreamTlsOptions } from '../mesh/upstream.ts';
import { rawErrorResponse } from './errors.ts';
import { matchRequest, policyContext, target, verdictResponse, type Matched, type Runtime } from './proxy.ts';
import { isPromise, type PolicyContext, type PolicyResult } from '../plugins/policy.ts';

function headerBlock(headers: Record<string, string | string[]>): string {
  let out = '';
  for (const name in headers) {
    const v = headers[name]!;
    if (Array.isArray(v)) for (const x of v) out += `${name}: ${x}\r\n`;
    else out += `${name}: ${v}\r\n`;
  }
  return out;
}

/** The upstream's TLS settings as tls.connect options (SNI only for names, not addresses). */
function upstreamTlsConnect(host: string, t: UpstreamTlsOptions | null) {
  const servername = t?.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    ...(servername !== undefined ? { servername } : {}),
    ...(t?.ca ? { ca: t.ca } : {}),
    ...(t?.cert ? { cert: t.cert } : {}),
    ...(t?.key ? { key: t.key } : {}),
    rejectUnauthorized: t?.rejectUnauthorized ?? true,
  };
}

export function handleUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, rt: Runtime, log: FastifyBaseLogger, listener = 0): void {
  client.on('error', () => client.destroy());
  const m = matchRequest(req, rt, true, listener);
  if ('status' in m) {
    client.end(rawErrorResponse(m.status, m.code, m.message, m.requestId, rt.requestIdHeader));
    return;
  }
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  if (upgrade !== 'websocket') {
    client.end(rawErrorResponse(400, 'CW_UPGRADE_NOT_SUPPORTED', `upgrade to "${upgrade}" is not supported`, m.requestId, rt.requestIdHeader));
    return;
  }
  const chain = rt.chains[m.route.index] ?? null;
  if (chain === null) return connectUpstream(req, client, head, rt, log, m, null);
  // The upgrade request passes the route's policies (authentication, limits, ...) first.
  const ctx = policyContext(req, m);
  const done = (v: PolicyResult) => {
    if (client.destroyed) return;
    if (v === null) return connectUpstream(req, client, head, rt, log, m, ctx);
    const r = verdictResponse(v, ctx, m.requestId, rt.requestIdHeader);
    client.end(`HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\n${headerBlock(r.headers)}connection: close\r\n\r\n${r.body}`);
  };
  const failed = (err: unknown) => {
    log.error({ err, requestId: m.requestId, route: m.route.name }, 'policy failed on a websocket upgrade');
    client.end(rawErrorResponse(500, 'CW_POLICY_ERROR', 'a policy failed while checking the request', m.requestId, rt.requestIdHeader));
  };
  try {
    const r = chain(ctx);
    if (isPromise(r)) r.then(done, failed);
    else done(r);
  } catch (err) {
    failed(err);
  }
}

function connectUpstream(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  rt: Runtime,
  log: FastifyBaseLogger,
  m: Matched,
  ctx: PolicyContext | null,
): void {
  const p = target(req, rt, m, ctx, true);
  if ('status' in p) {
    client.end(rawErrorResponse(p.status, p.code, p.message, m.requestId, rt.requestIdHeader));
    return;
  }
  const { backend, endpoint } = p;
  const url = new URL(endpoint.spec.origin);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const upstream: Socket =
    url.protocol === 'https:'
      ? tlsConnect({ host, port, ...upstreamTlsConnect(host, backend.upstream.tls), ALPNProtocols: ['http/1.1'] })
      : netConnect({ host, port });
  upstream.setTimeout(backend.timeouts.connectMs);
  let connected = false;
  const fail = (err: unknown) => {
    if (connected) {
      client.destroy();
      upstream.destroy();
      return;
    }
    connected = true; // report once
    const f = classifyUpstreamError(err);
    if (f.connectFailure) backend.upstream.reportConnectFailure(endpoint, Date.now());
    log.warn({ requestId: m.requestId, route: m.route.name, code: f.code }, 'websocket upgrade failed');
    upstream.destroy();
    client.end(rawErrorResponse(f.status, f.code, f.message, m.requestId, rt.requestIdHeader));
  };
  upstream.once('timeout', () => fail(Object.assign(new Error('connect timeout'), { code: 'CW_H1_CONNECT_TIMEOUT' })));
  upstream.once('error', fail);
  upstream.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
    connected = true;
    upstream.setTimeout(0);
    upstream.removeListener('error', fail);
    upstream.on('error', () => client.destroy());
    upstream.setNoDelay(true);
    upstream.write(`${req.method} ${p.path} HTTP/1.1\r\n${headerBlock(p.headers)}\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
}

// WebSocket pass-through: the upgrade request goes to the route's endpoint as it came (with
// the gateway's forwarding headers), then bytes flow both ways untouched.
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { classifyUpstreamError } from '../mesh/upstream.ts';
import { rawErrorResponse } from './errors.ts';
import { prepare, type Runtime } from './proxy.ts';

function headerBlock(headers: Record<string, string | string[]>): string {
  let out = '';
  for (const name in headers) {
    const v = headers[name]!;
    if (Array.isArray(v)) for (const x of v) out += `${name}: ${x}\r\n`;
    else out += `${name}: ${v}\r\n`;
  }
  return out;
}

export function handleUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, rt: Runtime, log: FastifyBaseLogger): void {
  client.on('error', () => client.destroy());
  const p = prepare(req, rt, true);
  if ('status' in p) {
    client.end(rawErrorResponse(p.status, p.code, p.message, p.requestId, rt.requestIdHeader));
    return;
  }
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  if (upgrade !== 'websocket') {
    client.end(rawErrorResponse(400, 'CW_UPGRADE_NOT_SUPPORTED', `upgrade to "${upgrade}" is not supported`, p.requestId, rt.requestIdHeader));
    return;
  }
  const { backend, endpoint } = p;
  const url = new URL(endpoint.spec.origin);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const upstream: Socket =
    url.protocol === 'https:'
      ? tlsConnect({ host, port, servername: host, ALPNProtocols: ['http/1.1'] })
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
    log.warn({ requestId: p.requestId, route: p.route.name, code: f.code }, 'websocket upgrade failed');
    upstream.destroy();
    client.end(rawErrorResponse(f.status, f.code, f.message, p.requestId, rt.requestIdHeader));
  };
  upstream.once('timeout', () => fail(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })));
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

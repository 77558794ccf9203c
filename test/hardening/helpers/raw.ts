// Raw HTTP/1.1 over node:net for the hardening tests: bytes written by hand, responses parsed
// here (node's own client would refuse to send most of what these tests send).
import { connect, type Socket } from 'node:net';
import type { ExecutionContext } from 'ava';
import { startUpstream, type Handler, type TestUpstream } from '../../helpers/upstream.ts';

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Exchange {
  /** Everything the gateway wrote back, as latin1 text. */
  raw: string;
  responses: ParsedResponse[];
  /** The gateway closed the connection (rather than our safety timer). */
  closedByPeer: boolean;
}

/** Parse as many complete HTTP/1.1 responses as `raw` holds. */
export function parseResponses(raw: string): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = raw.slice(at, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) {
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
    }
    const status = Number(m[1]);
    let pos = end + 4;
    let body = '';
    if (status < 200 || status === 204 || status === 304) {
      // no body
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = raw.slice(pos, pos + n);
      pos += n;
    } else if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      for (;;) {
        const nl = raw.indexOf('\r\n', pos);
        if (nl < 0) break;
        const size = parseInt(raw.slice(pos, nl), 16);
        pos = nl + 2;
        if (!(size > 0)) {
          const trailerEnd = raw.indexOf('\r\n', pos);
          pos = trailerEnd < 0 ? raw.length : trailerEnd + 2;
          break;
        }
        body += raw.slice(pos, pos + size);
        pos += size + 2;
      }
    } else {
      body = raw.slice(pos);
      pos = raw.length;
    }
    out.push({ status, headers, body });
    at = pos;
  }
  return out;
}

/**
 * Open a connection, write `chunks` (with an optional pause between them), half-close, and read
 * until the gateway closes. A safety timer (default 5s) destroys the socket if it never does.
 */
export function exchange(
  port: number,
  chunks: string | Buffer | Array<string | Buffer>,
  opts: { end?: boolean; gapMs?: number; safetyMs?: number } = {},
): Promise<Exchange> {
  const list = Array.isArray(chunks) ? chunks : [chunks];
  return new Promise((resolve) => {
    const sock: Socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let closedByPeer = true;
    const safety = setTimeout(() => {
      closedByPeer = false;
      sock.destroy();
    }, opts.safetyMs ?? 5000);
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(safety);
      const raw = Buffer.concat(parts).toString('latin1');
      resolve({ raw, responses: parseResponses(raw), closedByPeer });
    });
    sock.on('connect', async () => {
      for (const c of list) {
        if (sock.destroyed) return;
        sock.write(c);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.end !== false && !sock.destroyed) sock.end();
    });
  });
}

export interface RecordingUpstream extends TestUpstream {
  /** Every byte the upstream received, per connection, as latin1 text. */
  wire(): string;
}

/** An echo upstream (helpers/upstream.ts) that also records the raw bytes it was sent. */
export async function recordingUpstream(t: ExecutionContext, name: string, handler?: Handler): Promise<RecordingUpstream> {
  const up = await startUpstream(t, name, handler);
  const conns: Buffer[][] = [];
  up.server.on('connection', (s: Socket) => {
    const mine: Buffer[] = [];
    conns.push(mine);
    s.on('data', (d: Buffer) => mine.push(d));
  });
  return Object.assign(up, { wire: () => conns.map((c) => Buffer.concat(c).toString('latin1')).join('\n--- connection ---\n') });
}

/** Request lines (METHOD SP target SP HTTP/x) found in raw bytes. */
export function requestLines(wire: string): string[] {
  return (wire.match(/^[A-Z]+ \S+ HTTP\/1\.[01]\r?$/gm) ?? []).map((l) => l.trimEnd());
}

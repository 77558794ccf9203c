/**
 * Who is the client, and what do we tell the upstream about it?
 *
 * Trust is decided by the *direct peer* only: the address of the TCP connection the request came
 * in on, matched against `gateway.trustedProxies`. IPv4-mapped IPv6 peers ("::ffff:10.1.2.3") are
 * treated as, and reported as, the IPv4 address they map ("10.1.2.3").
 *
 * When the peer is NOT trusted (the default: the trusted list is empty), every client-supplied
 * `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` header is ignored:
 *   - clientIp  = the peer address
 *   - proto     = "https" if the client connection is TLS, else "http"
 *   - host      = the Host header
 *   - X-Forwarded-For sent upstream = the peer address
 *   - Forwarded sent upstream       = one element describing this request (below)
 *
 * When the peer IS trusted:
 *   - X-Forwarded-For sent upstream = the incoming X-Forwarded-For (all header lines joined with
 *     ", ") followed by ", <peer>"; the peer alone when there was none.
 *   - clientIp = walking that list from the right, the first address that is not trusted; the
 *     leftmost address if all of them are trusted. A malformed entry (anything but a plain IPv4
 *     or IPv6 address: no ports, brackets, zone indexes or "unknown") stops the walk, and the
 *     client IP is the last address checked before it, the one to its right. clientIp is always
 *     an IP address, never text from a header that did not parse as one.
 *   - An incoming X-Forwarded-For longer than 2048 characters or with more than 64 entries is not
 *     parsed at all: it counts as malformed, so clientIp is the peer. (It is still passed on.)
 *   - proto = the first value of the incoming X-Forwarded-Proto if it is "http" or "https" (any
 *     case); otherwise from the client connection, as above.
 *   - host = the first value of the incoming X-Forwarded-Host if present and non-empty; otherwise
 *     the Host header.
 *   - Forwarded sent upstream = the incoming Forwarded header (all lines joined with ", "),
 *     followed by ", " and our element.
 *
 * Our Forwarded element (RFC 7239) carries the gateway's conclusion, so an upstream that trusts
 * only the gateway can read the last element:
 *   for=<clientIp>;proto=<proto>;host=<host>
 * An IPv6 clientIp is bracketed and quoted (for="[2001:db8::1]"); a missing one is written
 * for=unknown. The host is sent bare when it is an RFC 7230 token and quoted otherwise (e.g.
 * host="example.com:8443"), and left out when there is no host at all.
 */
import { isIP } from 'node:net';
import { unmapIPv4 } from '../config/cidr.ts';
import { isToken } from './hop.ts';

export interface ForwardingInput {
  /** socket.remoteAddress (may be "::ffff:127.0.0.1") */
  remoteAddress: string;
  /** TLS on the client connection */
  encrypted: boolean;
  /** the client's Host header */
  host: string | undefined;
  /** client request headers, names lower-case as node gives them */
  headers: Record<string, string | string[] | undefined>;
  /** from compileAddressMatcher(gateway.trustedProxies) */
  trusted: (address: string) => boolean;
}

export interface Forwarding {
  clientIp: string;
  proto: 'http' | 'https';
  host: string;
  /** X-Forwarded-For value to send upstream */
  xff: string;
  /** Forwarded value to send upstream */
  forwarded: string;
}

export const MAX_XFF_LENGTH = 2048;
export const MAX_XFF_ENTRIES = 64;

function joinValues(v: string | string[] | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v.trim();
  let out = '';
  for (const part of v) {
    const t = part.trim();
    if (t.length === 0) continue;
    out = out.length === 0 ? t : out + ', ' + t;
  }
  return out;
}

/** First comma-separated value of the first header line, trimmed; '' when none. */
function firstValue(v: string | string[] | undefined): string {
  if (v === undefined) return '';
  const line = typeof v === 'string' ? v : v[0];
  if (line === undefined) return '';
  const comma = line.indexOf(',');
  return (comma < 0 ? line : line.slice(0, comma)).trim();
}

/** The address as an IP (unmapped), or '' when the entry is not a plain IP address. */
function asIp(entry: string): string {
  if (entry.length === 0 || entry.length > 45 || isIP(entry) === 0 || entry.includes('%')) return '';
  return unmapIPv4(entry);
}

/** Walks `xff` (peer not included) from the right; `peer` is known to be trusted. */
function walk(xff: string, peer: string, trusted: (a: string) => boolean): string {
  if (xff.length === 0) return peer;
  if (xff.length > MAX_XFF_LENGTH) return peer;
  let entries = 1;
  for (let i = 0; i < xff.length; i++) if (xff.charCodeAt(i) === 0x2c) entries++;
  if (entries > MAX_XFF_ENTRIES) return peer;

  let candidate = peer;
  let end = xff.length;
  while (end >= 0) {
    const comma = end > 0 ? xff.lastIndexOf(',', end - 1) : -1;
    const ip = asIp(xff.slice(comma + 1, end).trim());
    if (ip.length === 0) return candidate; // malformed: stop, keep the last good address
    candidate = ip;
    if (!trusted(ip)) return ip;
    if (comma < 0) break;
    end = comma;
  }
  return candidate; // all trusted: the leftmost
}

function quoted(s: string): string {
  return '"' + s.replace(/[\\"]/g, '\\$&') + '"';
}

/** The RFC 7239 element for=…;proto=…;host=… (host left out when empty). */
export function forwardedElement(clientIp: string, proto: 'http' | 'https', host: string): string {
  let node: string;
  if (clientIp.length === 0) node = 'unknown';
  else if (clientIp.includes(':')) node = `"[${clientIp}]"`;
  else node = clientIp;
  let el = `for=${node};proto=${proto}`;
  if (host.length > 0) el += ';host=' + (isToken(host) ? host : quoted(host));
  return el;
}

export function computeForwarding(input: ForwardingInput): Forwarding {
  const peer = unmapIPv4(input.remoteAddress ?? '');
  const connProto: 'http' | 'https' = input.encrypted ? 'https' : 'http';
  const hostHeader = input.host ?? '';

  if (peer.length === 0 || !input.trusted(peer)) {
    return {
      clientIp: peer,
      proto: connProto,
      host: hostHeader,
      xff: peer,
      forwarded: forwardedElement(peer, connProto, hostHeader),
    };
  }

  const h = input.headers;
  const incomingXff = joinValues(h['x-forwarded-for']);
  const clientIp = walk(incomingXff, peer, input.trusted);

  const xfp = firstValue(h['x-forwarded-proto']).toLowerCase();
  const proto: 'http' | 'https' = xfp === 'https' ? 'https' : xfp === 'http' ? 'http' : connProto;

  const xfh = firstValue(h['x-forwarded-host']);
  const host = xfh.length > 0 ? xfh : hostHeader;

  const element = forwardedElement(clientIp, proto, host);
  const incomingForwarded = joinValues(h['forwarded']);
  return {
    clientIp,
    proto,
    host,
    xff: incomingXff.length > 0 ? incomingXff + ', ' + peer : peer,
    forwarded: incomingForwarded.length > 0 ? incomingForwarded + ', ' + element : element,
  };
}

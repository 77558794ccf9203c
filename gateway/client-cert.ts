// A verified client certificate (TLS listener with clientAuth) as the request's identity:
// kind 'service' for a spiffe:// URI SAN, 'user' otherwise; method 'mtls'.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket, PeerCertificate } from 'node:tls';
import type { Identity } from '../plugins/policy.ts';

/** The TLS socket under a request (HTTP/1.1 or HTTP/2), or null on a plain connection. */
export function tlsSocketOf(req: IncomingMessage): TLSSocket | null {
  const h2 = (req as unknown as { stream?: { session?: { socket?: TLSSocket } } }).stream?.session?.socket;
  const s = (h2 ?? req.socket) as TLSSocket | undefined;
  return s !== undefined && s.encrypted === true ? s : null;
}

/** One identity per connection: the certificate cannot change within it. */
const cache = new WeakMap<TLSSocket, Identity | null>();

export function clientIdentity(req: IncomingMessage): Identity | null {
  const socket = tlsSocketOf(req);
  if (socket === null) return null;
  let id = cache.get(socket);
  if (id === undefined) {
    id = socket.authorized === true ? identityOf(socket.getPeerCertificate(false)) : null;
    cache.set(socket, id);
  }
  return id;
}

/** Subject Alternative Names by type. */
export function sansOf(san: string | undefined): { dns: string[]; uri: string[]; email: string[]; ip: string[] } {
  const out = { dns: [] as string[], uri: [] as string[], email: [] as string[], ip: [] as string[] };
  if (!san) return out;
  for (const part of san.split(/,\s*/)) {
    const colon = part.indexOf(':');
    if (colon === -1) continue;
    const type = part.slice(0, colon);
    const value = part.slice(colon + 1);
    if (type === 'DNS') out.dns.push(value);
    else if (type === 'URI') out.uri.push(value);
    else if (type === 'email') out.email.push(value);
    else if (type === 'IP Address') out.ip.push(value);
  }
  return out;
}

function dn(name: object | undefined): string {
  if (!name) return '';
  return Object.entries(name as Record<string, string | string[] | undefined>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
    .join(', ');
}

function identityOf(cert: PeerCertificate): Identity | null {
  if (!cert || Object.keys(cert).length === 0) return null;
  const sans = sansOf(cert.subjectaltname);
  const spiffe = sans.uri.find((u) => u.startsWith('spiffe://'));
  const cn = cert.subject?.CN;
  const subject = spiffe ?? (typeof cn === 'string' && cn !== '' ? cn : (sans.dns[0] ?? sans.email[0] ?? dn(cert.subject)));
  return {
    kind: spiffe !== undefined ? 'service' : 'user',
    subject,
    method: 'mtls',
    issuer: dn(cert.issuer),
    scopes: [],
    roles: [],
    claims: {
      subject: dn(cert.subject),
      issuer: dn(cert.issuer),
      ...(typeof cn === 'string' ? { cn } : {}),
      sans,
      serialNumber: cert.serialNumber,
      fingerprint256: cert.fingerprint256,
      notAfter: new Date(cert.valid_to).toISOString(),
    },
  };
}

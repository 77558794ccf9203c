/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy must not forward
 * them. `HOP_BY_HOP` is the fixed list; a Connection header can name more, which
 * `connectionTokens` extracts. Both are lower-case, as node gives header names.
 */

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const TCHAR = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;

/** An RFC 9110 token (header names, Forwarded parameter values that need no quotes). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

const NONE: string[] = [];

/** Collects tokens into `out`; `seen` takes over de-duplication once the list grows long. */
class Collector {
  readonly out: string[] = [];
  private seen: Set<string> | undefined;
  add(t: string): void {
    if (this.seen !== undefined) {
      if (this.seen.has(t)) return;
      this.seen.add(t);
    } else {
      if (this.out.includes(t)) return;
      if (this.out.length >= 16) this.seen = new Set(this.out).add(t);
    }
    this.out.push(t);
  }
  line(line: string): void {
    let start = 0;
    while (start <= line.length) {
      let comma = line.indexOf(',', start);
      if (comma < 0) comma = line.length;
      const t = line.slice(start, comma).trim().toLowerCase();
      if (isToken(t)) this.add(t);
      start = comma + 1;
    }
  }
}

/**
 * Header names listed in a Connection header (all lines), lower-cased, without duplicates, in
 * order. Empty list elements and anything that is not a valid header name are skipped. Includes
 * "close" / "keep-alive" / "upgrade" as written; callers drop every listed name.
 */
export function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined || value.length === 0) return [];
  if (typeof value === 'string' && value.indexOf(',') === -1) {
    // The common case, one token ("keep-alive", "close"): no collector.
    const t = value.trim().toLowerCase();
    return isToken(t) ? [t] : [];
  }
  const c = new Collector();
  if (typeof value === 'string') c.line(value);
  else for (const line of value) c.line(line);
  return c.out;
}

/** True when `name` (lower-case) must not be forwarded, given the Connection header's tokens. */
export function isHopByHop(name: string, connection: readonly string[] = NONE): boolean {
  return HOP_BY_HOP.has(name) || (connection.length > 0 && connection.includes(name));
}

/**
 * IP addresses and CIDR ranges, as written in config (`gateway.trustedProxies` and the like).
 *
 * An entry is an IPv4 or IPv6 address ("192.168.1.1", "::1") or a range ("10.0.0.0/8",
 * "fd00::/8"). Host bits under the prefix are ignored ("10.1.2.3/8" means 10.0.0.0/8). Zone
 * indexes ("fe80::1%eth0") are not accepted in config. An IPv4-mapped IPv6 entry
 * ("::ffff:10.0.0.0/104") means the IPv4 range it maps.
 *
 * Matching treats an IPv4-mapped IPv6 address ("::ffff:10.1.2.3", which is how node reports IPv4
 * peers on a dual-stack socket) as the IPv4 address it maps, both ways round.
 */
import { BlockList, isIP } from 'node:net';

type Family = 'ipv4' | 'ipv6';
type Parsed = { ok: true; address: string; family: Family; prefix: number | undefined } | { ok: false; message: string };

/** "::ffff:1.2.3.4" → "1.2.3.4"; anything else is returned unchanged. */
export function unmapIPv4(address: string): string {
  if (
    address.length > 7 &&
    address.charCodeAt(0) === 0x3a &&
    address.charCodeAt(1) === 0x3a &&
    (address.charCodeAt(6) === 0x3a) &&
    address.slice(2, 6).toLowerCase() === 'ffff' &&
    isIP(address.slice(7)) === 4
  ) {
    return address.slice(7);
  }
  return address;
}

function parse(s: string): Parsed {
  if (typeof s !== 'string' || s.length === 0) return { ok: false, message: 'empty address; expected an IP address or a CIDR range' };
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  if (addr.includes('%')) {
    return { ok: false, message: `${JSON.stringify(s)}: zone indexes (%...) are not supported; write the address without it` };
  }
  const v = isIP(addr);
  if (v === 0) {
    return { ok: false, message: `${JSON.stringify(s)}: ${JSON.stringify(addr)} is not an IPv4 or IPv6 address` };
  }
  const family: Family = v === 4 ? 'ipv4' : 'ipv6';
  const max = v === 4 ? 32 : 128;
  let prefix: number | undefined;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p)) {
      return { ok: false, message: `${JSON.stringify(s)}: the prefix length after '/' must be a number from 0 to ${max}` };
    }
    prefix = Number(p);
    if (prefix > max) {
      return { ok: false, message: `${JSON.stringify(s)}: prefix length /${prefix} is too long for ${v === 4 ? 'IPv4' : 'IPv6'} (at most /${max})` };
    }
  }
  return { ok: true, address: addr, family, prefix };
}

/** Checks one config entry: an IP address or a CIDR range. */
export function parseCidr(s: string): { ok: true } | { ok: false; message: string } {
  const p = parse(s);
  return p.ok ? { ok: true } : { ok: false, message: p.message };
}

const NEVER = (_address: string): boolean => false;

/**
 * Compiles a list of addresses and ranges into a predicate over addresses as node reports them
 * (socket.remoteAddress). Throws on an invalid entry (validate with `parseCidr` first). Invalid
 * or empty addresses never match; an empty list never matches anything.
 */
export function compileAddressMatcher(entries: string[]): (address: string) => boolean {
  if (entries.length === 0) return NEVER;
  const list = new BlockList();
  for (const entry of entries) {
    const p = parse(entry);
    if (!p.ok) throw new Error(`invalid address or CIDR range: ${p.message}`);
    let { address, family, prefix } = p;
    if (family === 'ipv6') {
      const v4 = unmapIPv4(address);
      if (v4 !== address && (prefix === undefined || prefix >= 96)) {
        address = v4;
        family = 'ipv4';
        if (prefix !== undefined) prefix -= 96;
      }
    }
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, prefix, family);
  }
  return (address: string): boolean => {
    if (typeof address !== 'string' || address.length === 0) return false;
    const pct = address.indexOf('%');
    const a = pct < 0 ? address : address.slice(0, pct);
    if (a.indexOf(':') < 0) return list.check(a, 'ipv4');
    const v4 = unmapIPv4(a);
    return v4 !== a ? list.check(v4, 'ipv4') : list.check(a, 'ipv6');
  };
}

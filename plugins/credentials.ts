// Where a credential (JWT, API key) is read from: a header, a cookie or a query parameter,
// compiled once into a reader of the request context.
import type { JwtPolicyConfig } from '../config/policy-model.ts';
import type { PolicyContext } from './policy.ts';

/** One of {header}, {cookie} or {query} (the config's CredentialSource). */
export type CredentialSourceConfig = NonNullable<JwtPolicyConfig['from']>;

/** The credential, or null when the request carries none (an empty value counts as none). */
export type CredentialReader = (ctx: PolicyContext) => string | null;

/** `Authorization: Bearer <token>`, scheme case-insensitive. Another scheme counts as no token. */
export function bearerToken(value: string | undefined): string | null {
  if (value === undefined) return null;
  const v = value.trim();
  const sp = v.search(/[ \t]/);
  if (sp < 0) return null;
  if (v.slice(0, sp).toLowerCase() !== 'bearer') return null;
  const token = v.slice(sp + 1).trim();
  return token === '' ? null : token;
}

/**
 * A cookie's value from a Cookie header (RFC 6265 §5.4 pairs separated by `;`). The first pair
 * with that exact name wins; surrounding double quotes are removed and %XX escapes decoded
 * (kept as sent when they are not valid).
 */
export function cookieValue(header: string | string[] | undefined, name: string): string | null {
  if (header === undefined) return null;
  const text = Array.isArray(header) ? header.join('; ') : header;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(';', start);
    if (end < 0) end = text.length;
    const eq = text.indexOf('=', start);
    if (eq > start && eq < end && text.slice(start, eq).trim() === name) {
      let value = text.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      if (value.includes('%')) {
        try {
          value = decodeURIComponent(value);
        } catch {
          // not an escape: keep as sent
        }
      }
      return value === '' ? null : value;
    }
    start = end + 1;
  }
  return null;
}

function headerValue(ctx: PolicyContext, name: string): string | undefined {
  const v = ctx.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Compile a credential source; `fallback` applies when the config names none. */
export function credentialReader(from: CredentialSourceConfig | undefined, fallback: CredentialSourceConfig): CredentialReader {
  const src = from ?? fallback;
  if (src.header !== undefined) {
    const name = src.header.toLowerCase();
    if (name === 'authorization') return (ctx) => bearerToken(headerValue(ctx, name));
    return (ctx) => {
      const v = headerValue(ctx, name)?.trim();
      return v === undefined || v === '' ? null : v;
    };
  }
  if (src.cookie !== undefined) {
    const name = src.cookie;
    return (ctx) => cookieValue(ctx.headers.cookie, name);
  }
  if (src.query !== undefined) {
    const name = src.query;
    return (ctx) => {
      if (ctx.query === '') return null;
      const v = new URLSearchParams(ctx.query).get(name);
      return v === null || v === '' ? null : v;
    };
  }
  throw new Error('a credential source needs one of header, cookie or query');
}

/** "the Authorization header", "cookie session", … for messages and docs. */
export function describeSource(from: CredentialSourceConfig | undefined, fallback: CredentialSourceConfig): string {
  const src = from ?? fallback;
  if (src.header !== undefined) return src.header.toLowerCase() === 'authorization' ? 'Authorization: Bearer' : `header ${src.header.toLowerCase()}`;
  if (src.cookie !== undefined) return `cookie ${src.cookie}`;
  return `query parameter ${src.query}`;
}

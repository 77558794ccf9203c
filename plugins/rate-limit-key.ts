// What a rate-limit budget belongs to: the configured key parts compiled into one function of
// the request context that returns a short, collision-free string.
import { createHash } from 'node:crypto';
import type { PolicyContext } from './policy.ts';
import { claimReader } from './claims.ts';

/** The value of a key part the request does not have (no identity, no such header or claim). */
export const ABSENT = '-';
/** Longer keys are replaced by a hash, so a hostile header value cannot make huge keys. */
export const MAX_KEY_LENGTH = 200;

type PartFn = (ctx: PolicyContext) => string;

const SPECIAL = /[%|#]/;

/**
 * A part's value as it goes into the key: absent and empty values become "-"; a real "-" and the
 * characters that join parts (|), mark hashed keys (#) or escape (%) are percent-encoded, so two
 * different requests can never produce the same key by choosing their header values.
 */
export function keyValue(v: string | undefined): string {
  if (v === undefined || v === '') return ABSENT;
  if (v === ABSENT) return '%2D';
  if (!SPECIAL.test(v)) return v;
  return v.replace(/%/g, '%25').replace(/\|/g, '%7C').replace(/#/g, '%23');
}

function stringify(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}

function compilePart(part: string): PartFn {
  if (part === 'ip') return (ctx) => keyValue(ctx.clientIp);
  if (part === 'consumer') return (ctx) => keyValue(ctx.identity?.consumer);
  if (part === 'subject') return (ctx) => keyValue(ctx.identity?.subject);
  if (part === 'route') return (ctx) => keyValue(ctx.route);
  if (part.startsWith('claim:')) {
    const read = claimReader(part.slice('claim:'.length));
    return (ctx) => keyValue(ctx.identity ? stringify(read(ctx.identity.claims)) : undefined);
  }
  if (part.startsWith('header:')) {
    const name = part.slice('header:'.length).toLowerCase();
    return (ctx) => {
      const v = ctx.headers[name];
      return keyValue(Array.isArray(v) ? v.join(',') : v);
    };
  }
  throw new Error(`unknown rate-limit key part "${part}"`);
}

/** A key as the limiters store it: keys longer than MAX_KEY_LENGTH are replaced by a hash. */
export const cap = (key: string): string =>
  key.length <= MAX_KEY_LENGTH ? key : `#${createHash('sha1').update(key).digest('hex')}`;

/** Compile key parts (default [ip]) into the function giving a request's budget key. */
export function compileKey(parts: readonly string[] = ['ip']): (ctx: PolicyContext) => string {
  const fns = parts.map(compilePart);
  if (fns.length === 1) {
    const only = fns[0]!;
    return (ctx) => cap(only(ctx));
  }
  return (ctx) => {
    let key = fns[0]!(ctx);
    for (let i = 1; i < fns.length; i++) key += '|' + fns[i]!(ctx);
    return cap(key);
  };
}

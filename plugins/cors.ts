// CORS: answer preflights at the gateway and add CORS headers to actual cross-origin requests.
//
// Origins are compiled once into a set of exact origins and a list of wildcard suffixes;
// a request's Origin is lower-cased once and checked against them.
import { parseDuration } from '../config/duration.ts';
import type { CorsPolicyConfig } from '../config/policy-model.ts';
import { addResponseHeader, type CompiledPolicy, type PolicyContext, type PolicyDeps, type PolicyResult, type Verdict } from './policy.ts';

const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const DEFAULT_MAX_AGE_S = 600;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const LABELS = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' };
/** Upstream CORS headers are replaced by the policy's (a route has one CORS authority). */
const UPSTREAM_CORS = [
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-expose-headers',
  'access-control-allow-methods',
  'access-control-allow-headers',
  'access-control-max-age',
];
const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

interface Wildcard {
  /** "https://" */
  prefix: string;
  /** ".example.com" or ".example.com:8443" */
  suffix: string;
}

/** One configured origin → normalised form. Throws with a message on a malformed one. */
function parseOrigin(policy: string, o: string): { exact: string } | { wildcard: Wildcard } {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(\*\.)?([^/:?#@\s]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?$/.exec(o);
  const fail = (why: string) =>
    new Error(`policy "${policy}" (cors): origin ${JSON.stringify(o)} ${why}; write "scheme://host[:port]" (no path or trailing slash), "https://*.example.com" or "*"`);
  if (!m) {
    if (o === 'null') {
      throw new Error(
        `policy "${policy}" (cors): origin "null" cannot be allowed: it is what sandboxed frames, local files and some redirects send, so any site can produce it`,
      );
    }
    throw fail('is not an origin');
  }
  const scheme = m[1]!.toLowerCase();
  const host = m[3]!.toLowerCase();
  let port: string | undefined = m[4];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw fail('has an invalid port');
  // Browsers leave the default port out of Origin.
  if (port !== undefined && DEFAULT_PORT[scheme] === String(Number(port))) port = undefined;
  const tail = port === undefined ? '' : `:${Number(port)}`;
  if (m[2] !== undefined) {
    if (host.startsWith('[') || !LABELS.test(host) || !host.includes('.')) {
      throw fail('has a wildcard over something that is not a domain of at least two labels');
    }
    return { wildcard: { prefix: `${scheme}://`, suffix: `.${host}${tail}` } };
  }
  if (!host.startsWith('[') && !LABELS.test(host)) throw fail('has an invalid host');
  return { exact: `${scheme}://${host}${tail}` };
}

function matchesWildcard(origin: string, w: Wildcard): boolean {
  if (origin.length <= w.prefix.length + w.suffix.length) return false;
  if (!origin.startsWith(w.prefix) || !origin.endsWith(w.suffix)) return false;
  // One or more whole labels before the suffix: not the apex, no "evilexample.com".
  return LABELS.test(origin.slice(w.prefix.length, origin.length - w.suffix.length));
}

/** Requested header names, lower-cased; null when one is not a header token. */
function requestedHeaders(v: string | string[] | undefined): string[] | null {
  if (v === undefined) return [];
  const out: string[] = [];
  for (const part of (Array.isArray(v) ? v.join(',') : v).split(',')) {
    const h = part.trim();
    if (h === '') continue;
    if (!TOKEN.test(h)) return null;
    const lc = h.toLowerCase();
    if (!out.includes(lc)) out.push(lc);
  }
  return out;
}

export function compileCors(name: string, cfg: CorsPolicyConfig, _deps: PolicyDeps): CompiledPolicy {
  if (!cfg.origins || cfg.origins.length === 0) throw new Error(`policy "${name}" (cors): list at least one origin in origins`);
  const credentials = cfg.credentials === true;
  const anyOrigin = cfg.origins.includes('*');
  if (anyOrigin && credentials) {
    throw new Error(
      `policy "${name}" (cors): credentials: true cannot be used with origin "*" (browsers refuse it, and echoing every origin with credentials would let any site act as the user); list the allowed origins instead`,
    );
  }
  const exact = new Set<string>();
  const wildcards: Wildcard[] = [];
  for (const o of cfg.origins) {
    if (o === '*') continue;
    const p = parseOrigin(name, o);
    if ('exact' in p) exact.add(p.exact);
    else wildcards.push(p.wildcard);
  }
  // "*" is sent literally only when it is the whole list and without credentials; otherwise the
  // request's origin is echoed (and the response varies by Origin).
  const literalStar = anyOrigin && cfg.origins.length === 1;
  const methods = cfg.methods ?? DEFAULT_METHODS;
  for (const m of methods) if (!TOKEN.test(m)) throw new Error(`policy "${name}" (cors): ${JSON.stringify(m)} is not a method`);
  const methodSet = new Set(methods);
  const allowMethods = methods.join(', ');
  const allowHeaders = cfg.headers === undefined ? null : cfg.headers.map((h) => h.toLowerCase()).join(', ');
  const exposeHeaders = cfg.exposeHeaders && cfg.exposeHeaders.length > 0 ? cfg.exposeHeaders.join(', ') : null;
  let maxAge = DEFAULT_MAX_AGE_S;
  if (cfg.maxAge !== undefined) {
    try {
      maxAge = Math.floor(parseDuration(cfg.maxAge) / 1000);
    } catch (err) {
      throw new Error(`policy "${name}" (cors): maxAge: ${(err as Error).message}`);
    }
  }
  const maxAgeValue = String(maxAge);

  const allowed = (origin: string): boolean => {
    if (anyOrigin) return true;
    const lc = origin.toLowerCase();
    if (exact.has(lc)) return true;
    for (const w of wildcards) if (matchesWildcard(lc, w)) return true;
    return false;
  };

  const rejected = (message: string): Verdict => ({
    status: 403,
    code: 'CW_CORS_REJECTED',
    message,
    headers: [['vary', PREFLIGHT_VARY]],
  });

  const preflight = (ctx: PolicyContext, origin: string, method: string): Verdict => {
    if (!allowed(origin)) return rejected('cross-origin requests from this origin are not allowed');
    if (!methodSet.has(method)) return rejected('the preflight asks for a method this route does not allow cross-origin');
    let headersValue = allowHeaders;
    if (headersValue === null) {
      const asked = requestedHeaders(ctx.headers['access-control-request-headers']);
      if (asked === null) return rejected('the preflight asks for a header name that is not valid');
      headersValue = asked.length > 0 ? asked.join(', ') : null;
    }
    const headers: Array<[string, string]> = [
      ['access-control-allow-origin', literalStar ? '*' : origin],
      ['access-control-allow-methods', allowMethods],
    ];
    if (headersValue !== null && headersValue !== '') headers.push(['access-control-allow-headers', headersValue]);
    headers.push(['access-control-max-age', maxAgeValue]);
    if (credentials) headers.push(['access-control-allow-credentials', 'true']);
    headers.push(['vary', PREFLIGHT_VARY]);
    return { status: 204, headers };
  };

  return {
    name,
    kind: 'cors',
    phase: 'edge',
    run(ctx): PolicyResult {
      const origin = ctx.headers.origin;
      if (typeof origin !== 'string' || origin === '') {
        // Not a CORS request; the answer still depends on Origin unless it is always "*".
        (ctx.responseRemove ??= []).push(...UPSTREAM_CORS);
        if (!literalStar) addResponseHeader(ctx, 'vary', 'Origin');
        return null;
      }
      const acrm = ctx.headers['access-control-request-method'];
      if (ctx.method === 'OPTIONS' && typeof acrm === 'string' && acrm !== '') return preflight(ctx, origin, acrm);
      (ctx.responseRemove ??= []).push(...UPSTREAM_CORS);
      if (!literalStar) addResponseHeader(ctx, 'vary', 'Origin');
      // A disallowed origin gets no CORS headers: the browser then keeps the response from it.
      if (!allowed(origin)) return null;
      addResponseHeader(ctx, 'access-control-allow-origin', literalStar ? '*' : origin);
      if (credentials) addResponseHeader(ctx, 'access-control-allow-credentials', 'true');
      if (exposeHeaders !== null) addResponseHeader(ctx, 'access-control-expose-headers', exposeHeaders);
      return null;
    },
  };
}

// The `jwt` policy: verify a JSON Web Token and turn it into the request's identity.
//
// Checks run cheapest first and synchronously until a key is needed: token present → size →
// shape (three base64url parts, a JSON header) → algorithm on the allow-list → key by `kid`
// (remote JWKS cache, local JWKS/PEM, or the shared secret) → signature (jose) → iss, aud, exp,
// nbf (jose, with the clock skew) → sub and the required claims. Nothing in the token decides
// where keys come from: `jku`, `x5u`, `jwk` and `x5c` headers are ignored.
import { jwtVerify, type JWK, type JWTPayload, type JWTVerifyOptions } from 'jose';
import type { JwtPolicyConfig } from '../config/policy-model.ts';
import { durationOr } from '../config/duration.ts';
import { bearerError, type AuthErrorCode } from './auth-errors.ts';
import { credentialReader, describeSource } from './credentials.ts';
import { loadJwksFile, loadPublicKeyFile, matchKeys, sharedRemoteJwks, type JwksUser, type KeySet, type PublicKeyJwk } from './jwks.ts';
import { addUpstreamHeader, type CompiledPolicy, type Identity, type PolicyContext, type PolicyDeps, type PolicyResult, type Verdict } from './policy.ts';
import { claimReader } from './claims.ts';

const DEFAULT_MAX_TOKEN_BYTES = 8192;
const DEFAULT_CLOCK_SKEW = 30_000;
const DEFAULT_REFRESH = 600_000;
const DEFAULT_COOLDOWN = 30_000;
const DEFAULT_TIMEOUT = 2_000;

const B64URL = /^[A-Za-z0-9_-]+$/;
const isHmac = (alg: string): boolean => alg.startsWith('HS');

/** Keys for a token: candidates to try, or the failure to answer. */
type KeyLookup = { keys: ReadonlyArray<PublicKeyJwk | Uint8Array> } | { fail: AuthErrorCode; message?: string };
type KeyResolver = (kid: string | undefined, alg: string) => KeyLookup | Promise<KeyLookup>;

/** A claim as a header value: arrays joined by spaces, objects as JSON, non-printable-ASCII characters %-encoded. */
export function claimHeaderValue(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (Array.isArray(value)) text = value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' ');
  else text = JSON.stringify(value);
  return /[^\x20-\x7e]/.test(text) ? text.replace(/[^\x20-\x7e]+/g, (s) => encodeURIComponent(s)) : text;
}

function scopesOf(claims: JWTPayload): string[] {
  const scope = claims.scope ?? claims.scp;
  if (typeof scope === 'string') return scope.split(/\s+/).filter((s) => s !== '');
  if (Array.isArray(scope)) return scope.filter((s): s is string => typeof s === 'string');
  return [];
}

function rolesOf(claims: JWTPayload): string[] {
  return Array.isArray(claims.roles) ? claims.roles.filter((s): s is string => typeof s === 'string') : [];
}

/** Parse the protected header of a compact JWS without trusting it; null when malformed. */
function parseHeader(token: string): { alg: string; kid: string | undefined; signature: string } | null {
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  if (second < 0 || token.indexOf('.', second + 1) >= 0) return null;
  const h = token.slice(0, first);
  const payload = token.slice(first + 1, second);
  const signature = token.slice(second + 1);
  if (!B64URL.test(h) || !B64URL.test(payload) || (signature !== '' && !B64URL.test(signature))) return null;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return null;
  const { alg, kid } = header as { alg?: unknown; kid?: unknown };
  if (typeof alg !== 'string' || (kid !== undefined && typeof kid !== 'string')) return null;
  return { alg, kid, signature };
}

/** A jose error as the client's answer. */
function joseFailure(err: unknown): { code: AuthErrorCode; message?: string } {
  const e = err as { code?: string; claim?: string; reason?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return { code: 'CW_AUTH_EXPIRED' };
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return { code: 'CW_AUTH_BAD_SIGNATURE' };
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return { code: 'CW_AUTH_BAD_ALGORITHM' };
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'iss') return { code: 'CW_AUTH_BAD_ISSUER' };
      if (e.claim === 'aud') return { code: 'CW_AUTH_BAD_AUDIENCE' };
      if (e.claim === 'nbf' && e.reason === 'check_failed') return { code: 'CW_AUTH_NOT_YET_VALID' };
      if (e.reason === 'missing') return { code: 'CW_AUTH_MISSING_CLAIM', message: `the token lacks the required claim "${e.claim}"` };
      return { code: 'CW_AUTH_MALFORMED', message: `the token's "${e.claim}" claim is invalid` };
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return { code: 'CW_AUTH_MALFORMED' };
    default:
      // a key jose refuses for this algorithm (e.g. an RSA key under 2048 bits)
      return { code: 'CW_AUTH_BAD_SIGNATURE', message: 'the token cannot be verified with the configured key' };
  }
}

async function keyResolver(name: string, cfg: JwtPolicyConfig, deps: PolicyDeps): Promise<KeyResolver> {
  if (cfg.secret !== undefined) {
    const secret = new TextEncoder().encode(cfg.secret);
    const keys = [secret];
    return (_kid, alg) => (isHmac(alg) ? { keys } : { fail: 'CW_AUTH_BAD_ALGORITHM' });
  }
  const fromSet = (set: KeySet, kid: string | undefined, alg: string): KeyLookup | null => {
    const m = matchKeys(set, kid, alg);
    if (m.keys.length > 0) return { keys: m.keys };
    if (m.kidKnown) return { fail: 'CW_AUTH_BAD_ALGORITHM', message: "the token's algorithm does not match its key" };
    return null;
  };
  const unknown: KeyLookup = { fail: 'CW_AUTH_UNKNOWN_KEY' };
  if (cfg.jwksFile !== undefined || cfg.publicKeyFile !== undefined) {
    const set = cfg.jwksFile !== undefined ? await loadJwksFile(cfg.jwksFile) : await loadPublicKeyFile(cfg.publicKeyFile!);
    return (kid, alg) => (isHmac(alg) ? { fail: 'CW_AUTH_BAD_ALGORITHM' } : (fromSet(set, kid, alg) ?? unknown));
  }
  const jwks = sharedRemoteJwks(deps.shared, cfg.jwksUri!);
  const user: JwksUser = {
    policy: name,
    refreshInterval: durationOr(cfg.jwks?.refreshInterval, DEFAULT_REFRESH),
    cooldown: durationOr(cfg.jwks?.cooldown, DEFAULT_COOLDOWN),
    timeout: durationOr(cfg.jwks?.timeout, DEFAULT_TIMEOUT),
    log: deps.log,
  };
  // prefetch without blocking the compile; failures are logged by the cache
  if (jwks.keys === null) void jwks.refresh(user);
  const unavailable: KeyLookup = { fail: 'CW_AUTH_KEYS_UNAVAILABLE' };
  const slow = async (kid: string | undefined, alg: string, had: KeySet | null): Promise<KeyLookup> => {
    // nothing was cached: the fetch just made (or joined) is as fresh as a kid refetch would be
    const set = had === null ? await jwks.initial(user) : await jwks.unknownKid(user);
    if (set === null) return unavailable;
    return fromSet(set, kid, alg) ?? unknown;
  };
  return (kid, alg) => {
    if (isHmac(alg)) return { fail: 'CW_AUTH_BAD_ALGORITHM' };
    const set = jwks.current(user);
    if (set !== null) {
      const found = fromSet(set, kid, alg);
      if (found !== null) return found;
    }
    return slow(kid, alg, set);
  };
}

function checkConfig(name: string, cfg: JwtPolicyConfig): void {
  const sources = (['jwksUri', 'jwksFile', 'publicKeyFile', 'secret'] as const).filter((k) => cfg[k] !== undefined);
  if (sources.length !== 1) {
    throw new Error(
      `policy "${name}": jwt needs exactly one key source of jwksUri, jwksFile, publicKeyFile or secret` +
        (sources.length > 1 ? ` (it has ${sources.join(', ')})` : ''),
    );
  }
  const hs = cfg.algorithms.filter(isHmac);
  if (cfg.secret !== undefined && hs.length !== cfg.algorithms.length) {
    const other = cfg.algorithms.filter((a) => !isHmac(a));
    throw new Error(`policy "${name}": a secret only verifies HS256/HS384/HS512; ${other.join(', ')} need a public key (jwksUri, jwksFile or publicKeyFile)`);
  }
  if (cfg.secret === undefined && hs.length > 0) {
    throw new Error(`policy "${name}": ${hs.join(', ')} need a secret; public keys only verify RS*, PS*, ES* and EdDSA`);
  }
}

const DEFAULT_VERIFIED_CACHE = 10_000;

/** Claim headers sent upstream for a token: (header, encoded value). */
type ForwardedHeaders = Array<readonly [string, string]>;

/** A token that passed every check, with what it gives each request that sends it. */
interface VerifiedToken {
  alg: string;
  kid: string | undefined;
  /** The key that verified it: the entry holds only while the key set still has this key. */
  key: PublicKeyJwk | Uint8Array;
  identity: Identity;
  /** Claims forwarded upstream, already encoded. */
  headers: ForwardedHeaders;
  exp: number;
  nbf: number;
}

export async function compileJwt(name: string, cfg: JwtPolicyConfig, deps: PolicyDeps): Promise<CompiledPolicy> {
  checkConfig(name, cfg);
  const allowed = new Set<string>(cfg.algorithms);
  const maxBytes = cfg.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const optional = cfg.optional ?? false;
  const read = credentialReader(cfg.from, { header: 'authorization' });
  const missingMessage = `a token is required (${describeSource(cfg.from, { header: 'authorization' })})`;
  const required = (cfg.requiredClaims ?? []).map((c) => [c, claimReader(c)] as const);
  const forward = Object.entries(cfg.forward ?? {}).map(([header, claim]) => [header.toLowerCase(), claimReader(claim)] as const);
  const resolve = await keyResolver(name, cfg, deps);
  const options: JWTVerifyOptions = {
    algorithms: [...allowed],
    issuer: cfg.issuer,
    audience: cfg.audiences,
    clockTolerance: durationOr(cfg.clockSkew, DEFAULT_CLOCK_SKEW) / 1000,
    requiredClaims: ['exp'],
  };

  const fail = (code: AuthErrorCode, message?: string): Verdict => bearerError(code, message);

  /** Checks the claims, sets the identity and the forwarded headers; the headers, or the refusal. */
  const accept = (ctx: PolicyContext, claims: JWTPayload): Verdict | ForwardedHeaders => {
    if (typeof claims.sub !== 'string' || claims.sub === '') return fail('CW_AUTH_MISSING_CLAIM', 'the token lacks the required claim "sub"');
    for (const [c, readClaim] of required) {
      if (readClaim(claims) === undefined) return fail('CW_AUTH_MISSING_CLAIM', `the token lacks the required claim "${c}"`);
    }
    const identity: Identity = {
      kind: 'user',
      subject: claims.sub,
      method: 'jwt',
      issuer: claims.iss,
      scopes: scopesOf(claims),
      roles: rolesOf(claims),
      claims,
    };
    ctx.identity = identity;
    const headers: ForwardedHeaders = [];
    for (const [header, readClaim] of forward) {
      const v = claimHeaderValue(readClaim(claims));
      if (v === null) continue;
      headers.push([header, v]);
      addUpstreamHeader(ctx, header, v);
    }
    return headers;
  };

  // Verified tokens, by the token itself: a signature check (≈ 0.2 ms for RS256) per request
  // becomes a map lookup for clients that send the same token again. A hit is used only while
  // exp/nbf hold (with the skew) and while the key that verified it is still in the key set
  // (rotation drops it); anything else is verified again. Oldest entries go first when full.
  const cacheMax = cfg.verifiedCache ?? DEFAULT_VERIFIED_CACHE;
  const cache = new Map<string, VerifiedToken>();
  const skew = options.clockTolerance as number;

  const remember = (
    token: string,
    header: { alg: string; kid: string | undefined },
    key: PublicKeyJwk | Uint8Array,
    claims: JWTPayload,
    ctx: PolicyContext,
    headers: ForwardedHeaders,
  ): void => {
    if (cacheMax === 0 || ctx.identity === null || typeof claims.exp !== 'number') return;
    if (cache.size >= cacheMax) cache.delete(cache.keys().next().value!);
    cache.set(token, {
      alg: header.alg,
      kid: header.kid,
      key,
      identity: ctx.identity,
      headers,
      exp: claims.exp,
      nbf: typeof claims.nbf === 'number' ? claims.nbf : -Infinity,
    });
  };

  /** The cached verdict for a token, or null when it must be verified (again). */
  const recall = (ctx: PolicyContext, token: string): boolean => {
    const hit = cache.get(token);
    if (hit === undefined) return false;
    const now = Date.now() / 1000;
    if (now - skew < hit.exp && hit.nbf <= now + skew) {
      const lookup = resolve(hit.kid, hit.alg);
      if (!(lookup instanceof Promise) && 'keys' in lookup && lookup.keys.includes(hit.key)) {
        ctx.identity = hit.identity;
        for (let i = 0; i < hit.headers.length; i++) addUpstreamHeader(ctx, hit.headers[i]![0], hit.headers[i]![1]);
        return true;
      }
    }
    cache.delete(token);
    return false;
  };

  const verify = async (ctx: PolicyContext, token: string, header: { alg: string; kid: string | undefined }, keys: ReadonlyArray<PublicKeyJwk | Uint8Array>): Promise<PolicyResult> => {
    let last: unknown;
    for (const key of keys) {
      try {
        const { payload } = await jwtVerify(token, key as JWK | Uint8Array, options);
        const result = accept(ctx, payload);
        if (!Array.isArray(result)) return result;
        remember(token, header, key, payload, ctx, result);
        return null;
      } catch (err) {
        last = err;
        // without a kid several keys may fit: only a signature failure moves on to the next one
        if ((err as { code?: string }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') break;
      }
    }
    const f = joseFailure(last);
    return fail(f.code, f.message);
  };

  const withKeys = (ctx: PolicyContext, token: string, header: { alg: string; kid: string | undefined }, lookup: KeyLookup): PolicyResult | Promise<PolicyResult> =>
    'fail' in lookup ? fail(lookup.fail, lookup.message) : verify(ctx, token, header, lookup.keys);

  return {
    name,
    kind: 'jwt',
    phase: 'authn',
    identityHeaders: forward.map(([h]) => h),
    run(ctx) {
      const token = read(ctx);
      if (token === null) return optional ? null : fail('CW_AUTH_MISSING', missingMessage);
      if (token.length > maxBytes || Buffer.byteLength(token, 'utf8') > maxBytes) {
        return fail('CW_AUTH_TOKEN_TOO_LARGE', `the token is larger than ${maxBytes} bytes`);
      }
      if (cacheMax !== 0 && recall(ctx, token)) return null;
      const header = parseHeader(token);
      if (header === null) return fail('CW_AUTH_MALFORMED');
      if (!allowed.has(header.alg)) return fail('CW_AUTH_BAD_ALGORITHM');
      if (header.signature === '') return fail('CW_AUTH_MALFORMED');
      const lookup = resolve(header.kid, header.alg);
      return lookup instanceof Promise ? lookup.then((l) => withKeys(ctx, token, header, l)) : withKeys(ctx, token, header, lookup);
    },
  };
}


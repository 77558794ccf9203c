// Public keys for JWT verification: key sets from a JWKS document (remote or file) or a PEM
// file, matched to a token by `kid` and algorithm, and the remote JWKS cache shared across
// reloads (lazy periodic refresh, refetch on an unknown `kid` once per cooldown, one fetch in
// flight at a time, bounded by a timeout, last good keys kept while the provider is down).
import { createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { PolicyLogger, SharedResources } from './policy.ts';

/** A public signing key as verified against: a clean public JWK (no private members). */
export type PublicKeyJwk = Readonly<JsonWebKey & { kty: string; kid?: string; alg?: string }>;

export interface KeySet {
  keys: readonly PublicKeyJwk[];
  /** True for a single PEM key: it verifies tokens whatever their `kid`. */
  anyKid: boolean;
}

/** Largest JWKS document accepted from a provider. */
export const MAX_JWKS_BYTES = 512 * 1024;
/** With nothing cached, a failed fetch is retried no sooner than this (or the cooldown if shorter). */
export const EMPTY_RETRY_MS = 1000;

const EC_CURVE: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/** Can this key verify a token signed with `alg`? (The JWK's own `alg`, when set, must agree.) */
export function keyFits(jwk: PublicKeyJwk, alg: string): boolean {
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return jwk.kty === 'RSA';
  if (alg.startsWith('ES')) return jwk.kty === 'EC' && jwk.crv === EC_CURVE[alg];
  if (alg === 'EdDSA') return jwk.kty === 'OKP' && (jwk.crv === 'Ed25519' || jwk.crv === 'Ed448');
  return false;
}

export interface KeyMatch {
  /** Keys that may verify the token (tried in order). */
  keys: PublicKeyJwk[];
  /** The token's `kid` names a key of the set, but of another algorithm. */
  kidKnown: boolean;
}

/** The keys for a token's header: by `kid` when it has one, else every key that fits `alg`. */
export function matchKeys(set: KeySet, kid: string | undefined, alg: string): KeyMatch {
  const keys: PublicKeyJwk[] = [];
  let kidKnown = false;
  for (const k of set.keys) {
    if (kid !== undefined && !set.anyKid && k.kid !== kid) continue;
    if (keyFits(k, alg)) keys.push(k);
    else if (kid !== undefined && !set.anyKid) kidKnown = true;
  }
  return { keys, kidKnown: keys.length === 0 && kidKnown };
}

/** A clean public JWK from a KeyObject or JWK input, keeping `kid` and `alg`. */
function publicJwk(key: KeyObject, kid: unknown, alg: unknown): PublicKeyJwk {
  const jwk = key.export({ format: 'jwk' }) as JsonWebKey & { kty: string; kid?: string; alg?: string };
  if (typeof kid === 'string' && kid !== '') jwk.kid = kid;
  if (typeof alg === 'string' && alg !== '') jwk.alg = alg;
  return Object.freeze(jwk);
}

/**
 * The usable signing keys of a JWKS document. Symmetric (`oct`) keys, encryption keys and keys
 * that do not parse are skipped (their count is returned, for a warning).
 */
export function parseJwks(doc: unknown): { set: KeySet; skipped: number } {
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new Error('not a JWKS document (no "keys" list)');
  }
  const keys: PublicKeyJwk[] = [];
  let skipped = 0;
  for (const raw of (doc as { keys: unknown[] }).keys) {
    if (raw === null || typeof raw !== 'object') {
      skipped++;
      continue;
    }
    const r = raw as Record<string, unknown>;
    if (r.kty === 'oct' || (r.use !== undefined && r.use !== 'sig') || (r.kty === 'OKP' && r.crv !== 'Ed25519' && r.crv !== 'Ed448')) {
      skipped++;
      continue;
    }
    try {
      keys.push(publicJwk(createPublicKey({ key: r as JsonWebKey, format: 'jwk' }), r.kid, r.alg));
    } catch {
      skipped++;
    }
  }
  return { set: { keys, anyKid: false }, skipped };
}

/** A local JWKS file; it must hold at least one usable signing key. */
export async function loadJwksFile(file: string): Promise<KeySet> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the JWKS file ${file}: ${(err as Error).message}`);
  }
  const { set } = parseJwks(doc);
  if (set.keys.length === 0) throw new Error(`the JWKS file ${file} holds no usable signing key`);
  return set;
}

/** A local PEM public key (SPKI) or certificate. A private key is refused: the gateway only verifies. */
export async function loadPublicKeyFile(file: string): Promise<KeySet> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the public key file ${file}: ${(err as Error).message}`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`${file} holds a private key; publicKeyFile needs the public key (SPKI PEM) or a certificate`);
  }
  let key: KeyObject;
  try {
    key = pem.includes('-----BEGIN CERTIFICATE-----') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  } catch {
    throw new Error(`${file} is not a PEM public key (SPKI) or certificate`);
  }
  return { keys: [publicJwk(key, undefined, undefined)], anyKid: true };
}

/** How one policy uses a remote JWKS. */
export interface JwksUser {
  policy: string;
  refreshInterval: number;
  cooldown: number;
  timeout: number;
  log: PolicyLogger;
}

/**
 * One provider's JWKS, shared by every policy (and every snapshot) that names the same URI.
 * The timing settings come with each call, so policies with different settings can share it.
 */
export class RemoteJwks {
  /** The last good key set, or null when no fetch has succeeded yet. */
  keys: KeySet | null = null;
  private fetchedAt = -Infinity;
  private lastAttempt = -Infinity;
  private lastKidFetch = -Infinity;
  private failing = false;
  private inflight: Promise<void> | null = null;
  private readonly closing = new AbortController();

  constructor(readonly uri: string) {}

  /** The keys to use now. Starts a background refresh when they are older than refreshInterval. */
  current(u: JwksUser): KeySet | null {
    if (this.keys !== null && this.inflight === null) {
      const now = performance.now();
      if (now - this.fetchedAt >= u.refreshInterval && now - this.lastAttempt >= Math.min(u.cooldown, u.refreshInterval)) {
        void this.refresh(u);
      }
    }
    return this.keys;
  }

  /** Nothing cached: wait for a fetch (the one under way, or a new one unless one just failed). */
  async initial(u: JwksUser): Promise<KeySet | null> {
    if (this.inflight !== null) await this.inflight;
    else if (performance.now() - this.lastAttempt >= Math.min(u.cooldown, EMPTY_RETRY_MS)) await this.refresh(u);
    return this.keys;
  }

  /**
   * A token names a key we do not have: fetch again, at most once per cooldown (a fetch under
   * way is joined instead). Returns the key set to look in again.
   */
  async unknownKid(u: JwksUser): Promise<KeySet | null> {
    if (this.inflight !== null) {
      await this.inflight;
    } else if (performance.now() - this.lastKidFetch >= u.cooldown) {
      this.lastKidFetch = performance.now();
      await this.refresh(u);
    }
    return this.keys;
  }

  /** Fetch now, or join the fetch under way. Never rejects: failures are logged, keys kept. */
  refresh(u: JwksUser): Promise<void> {
    if (this.inflight !== null) return this.inflight;
    if (this.closing.signal.aborted) return Promise.resolve();
    this.lastAttempt = performance.now();
    const run = async (): Promise<void> => {
      try {
        const { set, skipped } = await this.fetchOnce(u.timeout);
        if (skipped > 0) u.log.warn({ policy: u.policy, jwksUri: this.uri, skipped }, 'JWKS: skipped keys that are not usable signing keys');
        this.keys = set;
        this.fetchedAt = performance.now();
        if (this.failing) u.log.info({ policy: u.policy, jwksUri: this.uri }, 'JWKS: fetched again after failures');
        this.failing = false;
      } catch (err) {
        if (this.closing.signal.aborted) return;
        this.failing = true;
        const e = err as Error;
        const reason = e.name === 'TimeoutError' ? `timed out after ${u.timeout}ms` : e.message;
        u.log.warn(
          { policy: u.policy, jwksUri: this.uri, err: reason, stale: this.keys !== null },
          this.keys !== null ? 'JWKS fetch failed; serving the cached keys' : 'JWKS fetch failed; no keys cached',
        );
      } finally {
        this.inflight = null;
      }
    };
    const p = run();
    this.inflight = p;
    return p;
  }

  private async fetchOnce(timeout: number): Promise<{ set: KeySet; skipped: number }> {
    // A timer of our own rather than AbortSignal.any([AbortSignal.timeout(…), …]): on Node 20
    // the timeout signal, held only weakly by the combined one, can be garbage-collected before
    // it fires, and the fetch then hangs forever (seen as a test that never ended).
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new DOMException(`timed out after ${timeout}ms`, 'TimeoutError')), timeout);
    const onClose = () => ac.abort(this.closing.signal.reason);
    this.closing.signal.addEventListener('abort', onClose, { once: true });
    try {
      return await this.fetchWith(ac.signal);
    } finally {
      clearTimeout(timer);
      this.closing.signal.removeEventListener('abort', onClose);
    }
  }

  private async fetchWith(signal: AbortSignal): Promise<{ set: KeySet; skipped: number }> {
    const res = await fetch(this.uri, { signal, headers: { accept: 'application/jwk-set+json, application/json' } });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_JWKS_BYTES) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`the JWKS is larger than ${MAX_JWKS_BYTES} bytes`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (res.body !== null) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > MAX_JWKS_BYTES) {
          await reader.cancel().catch(() => {});
          throw new Error(`the JWKS is larger than ${MAX_JWKS_BYTES} bytes`);
        }
        chunks.push(value);
      }
    }
    let doc: unknown;
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new Error('the JWKS is not valid JSON');
    }
    const out = parseJwks(doc);
    if (out.set.keys.length === 0) throw new Error('the JWKS holds no usable signing key');
    return out;
  }

  /** Stop: abort a fetch under way; no new fetches start. */
  close(): void {
    this.closing.abort();
  }
}

/** The shared cache for a JWKS URI: one per URI for the life of the data plane. */
export function sharedRemoteJwks(shared: SharedResources, uri: string): RemoteJwks {
  return shared.get(`jwks:${uri}`, () => {
    const jwks = new RemoteJwks(uri);
    return { value: jwks, close: () => jwks.close() };
  });
}

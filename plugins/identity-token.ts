// The `identityToken` policy: once a request is authenticated, send upstream a short-lived JWT,
// signed by the gateway, carrying the verified identity. Services verify it against the
// gateway's published JWKS (admin port, GET /.well-known/jwks.json) with verifyIdentityToken.
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, createLocalJWKSet, importPKCS8, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet, type JWK, type JWTPayload } from 'jose';
import type { IdentityTokenPolicyConfig } from '../config/policy-model.ts';
import { durationOr } from '../config/duration.ts';
import { bearerError } from './auth-errors.ts';
import { addUpstreamHeader, type CompiledPolicy, type Identity, type PolicyDeps } from './policy.ts';

export type PublicJwk = { kty: string; kid: string; alg: string; use: 'sig'; [k: string]: unknown };

/** The `typ` header of identity tokens (RFC 8725 §3.11): a user's IdP token is never one. */
export const IDENTITY_TOKEN_TYPE = 'causeway-identity+jwt';
export const IDENTITY_TOKEN_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;

const DEFAULT_TTL = 60_000;
const DEFAULT_HEADER = 'x-causeway-identity';

/** The claims of an identity token, as a service reads them. */
export interface IdentityTokenClaims extends JWTPayload {
  iss: string;
  aud: string;
  sub: string;
  iat: number;
  exp: number;
  kind: Identity['kind'];
  method: Identity['method'];
  consumer?: string;
  scopes: string[];
  roles: string[];
  route: string;
}

function keyMatches(alg: string, jwk: JWK): boolean {
  if (alg === 'ES256') return jwk.kty === 'EC' && jwk.crv === 'P-256';
  if (alg === 'RS256') return jwk.kty === 'RSA';
  return jwk.kty === 'OKP' && jwk.crv === 'Ed25519';
}

export async function compileIdentityToken(
  name: string,
  cfg: IdentityTokenPolicyConfig,
  deps: PolicyDeps,
): Promise<CompiledPolicy & { publicJwk: PublicJwk }> {
  const alg = cfg.algorithm ?? 'ES256';
  let pem: string;
  try {
    pem = await readFile(cfg.keyFile, 'utf8');
  } catch (err) {
    throw new Error(`policy "${name}": cannot read identityToken keyFile ${cfg.keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let publicPart: JWK;
  let key: CryptoKey;
  try {
    publicPart = createPublicKey(pem).export({ format: 'jwk' }) as JWK;
    if (!keyMatches(alg, publicPart)) throw new Error('wrong key type');
    key = await importPKCS8(pem, alg);
  } catch {
    const want = alg === 'ES256' ? 'an EC P-256' : alg === 'RS256' ? 'an RSA' : 'an Ed25519';
    throw new Error(`policy "${name}": identityToken keyFile ${cfg.keyFile} must be ${want} private key in PKCS#8 PEM ("BEGIN PRIVATE KEY") for ${alg}`);
  }
  const kid = cfg.keyId ?? (await calculateJwkThumbprint(publicPart, 'sha256'));
  const publicJwk: PublicJwk = { ...publicPart, kty: publicPart.kty!, kid, alg, use: 'sig' };
  const header = cfg.header?.toLowerCase() ?? DEFAULT_HEADER;
  const ttlSeconds = Math.max(1, Math.ceil(durationOr(cfg.ttl, DEFAULT_TTL) / 1000));
  const protectedHeader = { alg, kid, typ: IDENTITY_TOKEN_TYPE };
  const { issuer, audience } = cfg;

  return {
    name,
    kind: 'identityToken',
    phase: 'transform',
    identityHeaders: [header],
    publicJwk,
    run(ctx) {
      const id = ctx.identity;
      if (id === null) return null;
      const now = Math.floor(Date.now() / 1000);
      const claims: Record<string, unknown> = { kind: id.kind, method: id.method, scopes: id.scopes, roles: id.roles, route: ctx.route };
      if (id.consumer !== undefined) claims.consumer = id.consumer;
      return new SignJWT(claims)
        .setProtectedHeader(protectedHeader)
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(id.subject)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .sign(key)
        .then(
          (token) => {
            addUpstreamHeader(ctx, header, token);
            return null;
          },
          (err: Error) => {
            deps.log.error({ policy: name, err: err.message }, 'identity token signing failed');
            return bearerError('CW_AUTH_IDENTITY_TOKEN_FAILED');
          },
        );
    },
  };
}

/**
 * Verify an identity token as a service or sidecar does: signature against the gateway's JWKS
 * (the document served at /.well-known/jwks.json), `typ`, `iss`, `aud`, `exp`. Rejects with a
 * jose error when anything is wrong.
 */
export async function verifyIdentityToken(
  token: string,
  jwks: JSONWebKeySet | { keys: readonly PublicJwk[] },
  { issuer, audience, clockTolerance = 5 }: { issuer: string; audience: string; clockTolerance?: number },
): Promise<IdentityTokenClaims> {
  const keySet = createLocalJWKSet(jwks as JSONWebKeySet);
  const { payload } = await jwtVerify(token, keySet, {
    issuer,
    audience,
    algorithms: [...IDENTITY_TOKEN_ALGORITHMS],
    typ: IDENTITY_TOKEN_TYPE,
    requiredClaims: ['exp', 'sub', 'kind', 'route'],
    clockTolerance,
  });
  return payload as IdentityTokenClaims;
}

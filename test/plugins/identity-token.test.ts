// The identityToken policy: tokens signed by the gateway, verified with its published JWK.
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { calculateJwkThumbprint, decodeProtectedHeader, exportPKCS8, generateKeyPair, SignJWT } from 'jose';
import type { IdentityTokenPolicyConfig } from '../../config/policy-model.ts';
import { compileApiKey, compileConsumers } from '../../plugins/api-key.ts';
import { compileIdentityToken, IDENTITY_TOKEN_TYPE, verifyIdentityToken } from '../../plugins/identity-token.ts';
import { compileChain, newContext, SharedResources, type Identity, type PolicyContext, type PolicyDeps } from '../../plugins/policy.ts';
import { tempDir } from '../helpers/gateway.ts';

function deps(t: ExecutionContext): PolicyDeps {
  const shared = new SharedResources();
  t.teardown(() => shared.close());
  const noop = () => {};
  return {
    consumers: compileConsumers({ partner: { keys: ['partner-key-0123456789'], scopes: ['orders:read'], roles: ['b2b'] } }),
    shared,
    log: { info: noop, warn: noop, error: noop },
  };
}

function request(headers: Record<string, string> = {}): PolicyContext {
  return newContext({ method: 'GET', path: '/orders/1', query: '', host: 'api.test', headers, clientIp: '127.0.0.1', route: 'orders-api' });
}

const user: Identity = {
  kind: 'user',
  subject: 'user-42',
  method: 'jwt',
  issuer: 'https://idp.test/',
  scopes: ['orders:read', 'orders:write'],
  roles: ['admin'],
  claims: { sub: 'user-42', email: 'u@example.test' },
};

async function keyFile(t: ExecutionContext, alg: 'ES256' | 'RS256' | 'EdDSA' = 'ES256'): Promise<string> {
  const dir = await tempDir(t);
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const file = join(dir, `identity-${alg}.pem`);
  await writeFile(file, await exportPKCS8(privateKey));
  return file;
}

async function setup(t: ExecutionContext, extra: Partial<IdentityTokenPolicyConfig> = {}) {
  const cfg: IdentityTokenPolicyConfig = { keyFile: await keyFile(t, extra.algorithm ?? 'ES256'), issuer: 'https://gateway.test', audience: 'mesh', ...extra };
  const policy = await compileIdentityToken('identity', cfg, deps(t));
  return { policy, cfg };
}

test('signs the identity into x-causeway-identity; the published JWK verifies it', async (t) => {
  const { policy } = await setup(t);
  t.is(policy.kind, 'identityToken');
  t.is(policy.phase, 'transform');
  t.deepEqual(policy.identityHeaders, ['x-causeway-identity']);
  t.like(policy.publicJwk, { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
  t.is(policy.publicJwk.d, undefined, 'no private part is published');
  t.is(policy.publicJwk.kid, await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: policy.publicJwk.x as string, y: policy.publicJwk.y as string }));

  const ctx = request();
  ctx.identity = user;
  t.is(await policy.run(ctx), null);
  t.is(ctx.upstreamHeaders?.length, 1);
  const [name, token] = ctx.upstreamHeaders![0]!;
  t.is(name, 'x-causeway-identity');
  t.like(decodeProtectedHeader(token), { alg: 'ES256', kid: policy.publicJwk.kid, typ: IDENTITY_TOKEN_TYPE });

  const claims = await verifyIdentityToken(token, { keys: [policy.publicJwk] }, { issuer: 'https://gateway.test', audience: 'mesh' });
  t.like(claims, { iss: 'https://gateway.test', aud: 'mesh', sub: 'user-42', kind: 'user', method: 'jwt', route: 'orders-api' });
  t.deepEqual(claims.scopes, ['orders:read', 'orders:write']);
  t.deepEqual(claims.roles, ['admin']);
  t.is(claims.consumer, undefined);
  t.is(claims.exp - claims.iat, 60);
  t.false('email' in claims, 'only the listed claims are carried');
});

test('no identity: no token is sent (the header is still stripped by the gateway)', async (t) => {
  const { policy } = await setup(t, { header: 'X-Identity' });
  t.deepEqual(policy.identityHeaders, ['x-identity']);
  const ctx = request({ 'x-identity': 'forged' });
  t.is(await policy.run(ctx), null);
  t.is(ctx.upstreamHeaders, null);
});

test('after an API key: a consumer identity, keyId, ttl and header from the config', async (t) => {
  const d = deps(t);
  const cfg: IdentityTokenPolicyConfig = { keyFile: await keyFile(t), issuer: 'gw', audience: 'orders', keyId: 'gw-2025', ttl: '5m', header: 'x-id' };
  const identity = await compileIdentityToken('identity', cfg, d);
  t.is(identity.publicJwk.kid, 'gw-2025');
  const chain = compileChain([identity, compileApiKey('keys', {}, d)])!;
  const ctx = request({ 'x-api-key': 'partner-key-0123456789' });
  t.is(await chain(ctx), null);
  const token = ctx.upstreamHeaders!.find(([h]) => h === 'x-id')![1];
  const claims = await verifyIdentityToken(token, { keys: [identity.publicJwk] }, { issuer: 'gw', audience: 'orders' });
  t.like(claims, { sub: 'partner', kind: 'consumer', method: 'api-key', consumer: 'partner', route: 'orders-api' });
  t.deepEqual(claims.scopes, ['orders:read']);
  t.is(claims.exp - claims.iat, 300);
  t.is(decodeProtectedHeader(token).kid, 'gw-2025');
});

test('RS256 and EdDSA keys', async (t) => {
  for (const algorithm of ['RS256', 'EdDSA'] as const) {
    const { policy } = await setup(t, { algorithm });
    t.is(policy.publicJwk.alg, algorithm);
    const ctx = request();
    ctx.identity = user;
    await policy.run(ctx);
    const claims = await verifyIdentityToken(ctx.upstreamHeaders![0]![1], { keys: [policy.publicJwk] }, { issuer: 'https://gateway.test', audience: 'mesh' });
    t.is(claims.sub, 'user-42');
  }
});

test('verification refuses another audience, issuer, key or token type', async (t) => {
  const { policy } = await setup(t);
  const other = await setup(t);
  const ctx = request();
  ctx.identity = user;
  await policy.run(ctx);
  const token = ctx.upstreamHeaders![0]![1];
  const jwks = { keys: [policy.publicJwk] };
  await t.throwsAsync(verifyIdentityToken(token, jwks, { issuer: 'https://gateway.test', audience: 'billing' }));
  await t.throwsAsync(verifyIdentityToken(token, jwks, { issuer: 'https://evil.test', audience: 'mesh' }));
  await t.throwsAsync(verifyIdentityToken(token, { keys: [{ ...other.policy.publicJwk, kid: policy.publicJwk.kid }] }, { issuer: 'https://gateway.test', audience: 'mesh' }));
  // a token from the same key without the identity-token type (e.g. a user's IdP token) is refused
  const { privateKey } = await generateKeyPair('ES256');
  const untyped = await new SignJWT({ kind: 'user', route: 'x' })
    .setProtectedHeader({ alg: 'ES256', kid: 'k' })
    .setIssuer('https://gateway.test')
    .setAudience('mesh')
    .setSubject('s')
    .setExpirationTime('1m')
    .sign(privateKey);
  await t.throwsAsync(verifyIdentityToken(untyped, jwks, { issuer: 'https://gateway.test', audience: 'mesh' }));
});

test('a key that does not fit the algorithm, or is not PKCS#8, is a compile error', async (t) => {
  const d = deps(t);
  const es = await keyFile(t, 'ES256');
  await t.throwsAsync(compileIdentityToken('identity', { keyFile: es, algorithm: 'RS256', issuer: 'gw', audience: 'mesh' }, d), {
    message: /must be an RSA private key in PKCS#8 PEM/,
  });
  const dir = await tempDir(t);
  const sec1 = join(dir, 'sec1.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(sec1, privateKey.export({ format: 'pem', type: 'sec1' }));
  await t.throwsAsync(compileIdentityToken('identity', { keyFile: sec1, issuer: 'gw', audience: 'mesh' }, d), { message: /PKCS#8/ });
  const p384 = join(dir, 'p384.pem');
  await writeFile(p384, generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
  await t.throwsAsync(compileIdentityToken('identity', { keyFile: p384, issuer: 'gw', audience: 'mesh' }, d), { message: /EC P-256/ });
  await t.throwsAsync(compileIdentityToken('identity', { keyFile: join(dir, 'absent.pem'), issuer: 'gw', audience: 'mesh' }, d), { message: /cannot read/ });
});

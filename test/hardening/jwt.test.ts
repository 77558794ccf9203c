// The JWT attack catalogue, through a real gateway, a real IdP (JWKS over HTTP) and a real
// upstream: every forged token gets 401 (431 when it does not even fit in the headers), the
// upstream sees nothing, and the IdP is never asked for anything but its JWKS.
import { createSign, KeyObject } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { CompactSign, exportJWK } from 'jose';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { makeKey, signWith, startIdp, type TestIdp } from '../helpers/idp.ts';
import { exchange, recordingUpstream, type RecordingUpstream } from './helpers/raw.ts';

interface Setup {
  gw: TestGateway;
  up: RecordingUpstream;
  idp: TestIdp;
}

async function setup(t: ExecutionContext): Promise<Setup> {
  const idp = await startIdp(t);
  const up = await recordingUpstream(t, 'svc');
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] } },
    policies: {
      auth: {
        jwt: {
          issuer: idp.issuer,
          audiences: ['api'],
          algorithms: ['RS256'],
          jwksUri: idp.jwksUri,
          jwks: { cooldown: '1m' },
          forward: { 'x-user-id': 'sub' },
        },
      },
    },
    routes: [{ name: 'api', upstream: 'svc', policies: ['auth'] }],
  });
  // a valid token first: the JWKS is cached, so later counts show only refetches
  const ok = await call(gw, await idp.sign());
  t.is(ok.status, 200);
  up.seen.length = 0;
  return { gw, up, idp };
}

const call = (gw: TestGateway, token: string) => rawRequest({ port: gw.port, path: '/data', headers: { authorization: `Bearer ${token}` } });

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function claims(idp: TestIdp, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, aud: 'api', sub: 'mallory', iat: now, exp: now + 300, ...extra };
}

/** A forged token must be refused with 401, never reach the upstream, never make the IdP fetch anything else. */
async function refused(t: ExecutionContext, s: Setup, token: string, code?: string | RegExp): Promise<void> {
  const r = await call(s.gw, token);
  t.is(r.status, 401, r.text);
  if (typeof code === 'string') t.is(r.json().error.code, code);
  else if (code) t.regex(r.json().error.code, code);
  t.regex(String(r.headers['www-authenticate']), /^Bearer /);
  t.is(s.up.seen.length, 0, 'the upstream saw nothing');
  t.deepEqual(s.idp.otherRequests, [], 'the IdP was asked for nothing but its JWKS');
}

test('alg none, None, NONE and nOnE: refused with or without a signature', async (t) => {
  const s = await setup(t);
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    const unsigned = `${b64({ alg, typ: 'JWT' })}.${b64(claims(s.idp))}.`;
    await refused(t, s, unsigned, /^CW_AUTH_(BAD_ALGORITHM|MALFORMED)$/);
    await refused(t, s, `${unsigned}c2lnbmF0dXJl`, 'CW_AUTH_BAD_ALGORITHM');
    await refused(t, s, `${b64({ alg, kid: s.idp.current.kid })}.${b64(claims(s.idp))}.`, /^CW_AUTH_(BAD_ALGORITHM|MALFORMED)$/);
  }
});

test('HS256 signed with the RS256 public key (PEM, JWK n, DER) is refused', async (t) => {
  const s = await setup(t);
  const k = s.idp.current;
  const secrets = [k.publicPem, k.publicPem.trim(), String(k.publicJwk.n), JSON.stringify(k.publicJwk)];
  for (const secret of secrets) {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      await refused(t, s, await signWith(new TextEncoder().encode(secret), claims(s.idp), { alg, kid: k.kid }), 'CW_AUTH_BAD_ALGORITHM');
    }
  }
});

test('kid with path traversal, SQL, a URL or odd types: refused, at most one JWKS refetch, no other fetch', async (t) => {
  const s = await setup(t);
  const before = s.idp.fetches;
  const attacker = await makeKey('RS256');
  const kids = ['../../../../../../dev/null', '/etc/passwd', "' OR '1'='1", "x' UNION SELECT 'secret' --", `${s.idp.url}/evil.json`, 'file:///etc/passwd', '\u0000', ''];
  for (const kid of kids) {
    await refused(t, s, await signWith(attacker, claims(s.idp), { alg: 'RS256', kid }), /^CW_AUTH_(UNKNOWN_KEY|BAD_SIGNATURE)$/);
  }
  for (const kid of [1, null, ['a'], { a: 1 }]) {
    await refused(t, s, `${b64({ alg: 'RS256', kid })}.${b64(claims(s.idp))}.c2ln`, 'CW_AUTH_MALFORMED');
  }
  t.true(s.idp.fetches - before <= 1, `JWKS refetches: ${s.idp.fetches - before} (cooldown 1m)`);
});

test('an embedded jwk header with the attacker key is not trusted', async (t) => {
  const s = await setup(t);
  const attacker = await makeKey('RS256', s.idp.current.kid);
  const jwk = await exportJWK(attacker.publicKey);
  await refused(t, s, await signWith(attacker, claims(s.idp), { alg: 'RS256', kid: s.idp.current.kid, jwk }), 'CW_AUTH_BAD_SIGNATURE');
  await refused(t, s, await signWith(attacker, claims(s.idp), { alg: 'RS256', kid: undefined, jwk }), 'CW_AUTH_BAD_SIGNATURE');
  await refused(t, s, await signWith(attacker, claims(s.idp), { alg: 'RS256', kid: undefined, x5c: ['MIIB'] }), 'CW_AUTH_BAD_SIGNATURE');
});

test('jku and x5u pointing elsewhere (even at the IdP itself) are never fetched', async (t) => {
  const s = await setup(t);
  const attacker = await makeKey('RS256', 'attacker-kid');
  for (const header of [
    { jku: `${s.idp.url}/attacker/jwks.json` },
    { x5u: `${s.idp.url}/attacker/cert.pem` },
    { jku: `${s.idp.url}/attacker/jwks.json`, kid: s.idp.current.kid },
    { jku: 'http://169.254.169.254/latest/meta-data/' },
  ]) {
    await refused(t, s, await signWith(attacker, claims(s.idp), { alg: 'RS256', kid: 'attacker-kid', ...header }));
  }
  t.deepEqual(s.idp.otherRequests, []);
});

test('crit headers the gateway does not understand: refused even with a valid signature', async (t) => {
  const s = await setup(t);
  const k = s.idp.current;
  for (const header of [{ crit: ['x-custom'], 'x-custom': true }, { crit: ['exp'] }, { crit: [] }, { crit: ['b64'], b64: false }]) {
    let token: string;
    try {
      token = await signWith(k, claims(s.idp), { alg: 'RS256', kid: k.kid, ...header });
    } catch {
      // jose will not even sign some of these: build them by hand
      token = `${b64({ alg: 'RS256', kid: k.kid, ...header })}.${b64(claims(s.idp))}.c2ln`;
    }
    await refused(t, s, token);
  }
});

test('a nested JWT (cty: JWT) is not unwrapped: an inner token signed by anyone is refused', async (t) => {
  const s = await setup(t);
  const attacker = await makeKey('RS256');
  const inner = await signWith(attacker, claims(s.idp, { sub: 'admin' }), { alg: 'RS256' });
  const outer = await new CompactSign(new TextEncoder().encode(inner))
    .setProtectedHeader({ alg: 'RS256', kid: s.idp.current.kid, cty: 'JWT' })
    .sign(s.idp.current.privateKey);
  await refused(t, s, outer, 'CW_AUTH_MALFORMED');
});

test('huge tokens: over maxTokenBytes → 401 before any parsing; 100 KiB does not fit in the headers → 431', async (t) => {
  const s = await setup(t);
  const k = s.idp.current;
  const big = await signWith(k, claims(s.idp, { pad: 'x'.repeat(8_000) }), { alg: 'RS256', kid: k.kid });
  await refused(t, s, big, 'CW_AUTH_TOKEN_TOO_LARGE');
  const huge = await signWith(k, claims(s.idp, { pad: 'x'.repeat(100 * 1024) }), { alg: 'RS256', kid: k.kid });
  const x = await exchange(s.gw.port, `GET /data HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${huge}\r\nConnection: close\r\n\r\n`, { end: false });
  t.is(x.responses[0]!.status, 431);
  t.is(s.up.seen.length, 0);
  t.false(s.up.wire().includes(huge.slice(0, 200)), 'not one byte of it went upstream');
});

test('malformed base64 and structure: refused as malformed', async (t) => {
  const s = await setup(t);
  const good = await s.idp.sign();
  const [h, p, sig] = good.split('.') as [string, string, string];
  const cases = [
    `${h}.${p}`, // two parts
    `${h}.${p}.${sig}.${sig}`, // four parts
    `${h}..${sig}`,
    `.${p}.${sig}`,
    `${h}=.${p}.${sig}`, // padding
    `${h.replace(/-/g, '+').replace(/_/g, '/')}+/.${p}.${sig}`, // standard alphabet
    `${h}.${p}!.${sig}`,
    `${h}.${p}.${sig}*`,
    `${b64('not json')}.${p}.${sig}`,
    `${b64('[]')}.${p}.${sig}`,
    `${b64('null')}.${p}.${sig}`,
    `${b64({ alg: 'RS256', kid: s.idp.current.kid })}.${b64('not json')}.${sig}`,
    'Bearer',
    '...',
    'a.b.c',
  ];
  for (const token of cases) await refused(t, s, token, /^CW_AUTH_(MALFORMED|BAD_SIGNATURE|BAD_ALGORITHM)$/);
});

test('duplicate claims and header parameters: the lexically last wins everywhere (RFC 7519 §4), consistently', async (t) => {
  const s = await setup(t);
  const k = s.idp.current;
  // A JWS over raw header/payload text with duplicate members, signed for real by the IdP key.
  const privateKey = KeyObject.from(k.privateKey as unknown as CryptoKey);
  const raw = (header: string, payload: string) => {
    const input = `${b64(header)}.${b64(payload)}`;
    const sig = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
    return `${input}.${sig}`;
  };
  const now = Math.floor(Date.now() / 1000);
  const body = (subs: string) => `{"iss":${JSON.stringify(s.idp.issuer)},"aud":"api",${subs},"exp":${now + 300}}`;
  const hdr = `{"alg":"RS256","kid":${JSON.stringify(k.kid)}}`;

  const dupSub = await call(s.gw, raw(hdr, body('"sub":"alice","sub":"admin"')));
  t.is(dupSub.status, 200);
  t.is(s.up.seen.at(-1)!.headers['x-user-id'], 'admin', 'the lexically last sub is the identity');

  const expLast = await call(s.gw, raw(hdr, `{"iss":${JSON.stringify(s.idp.issuer)},"aud":"api","sub":"a","exp":${now + 300},"exp":${now - 3600}}`));
  t.is(expLast.status, 401, 'an expired exp after a valid one: expired');
  t.is(expLast.json().error.code, 'CW_AUTH_EXPIRED');

  const algNoneLast = await call(s.gw, raw(`{"alg":"RS256","kid":${JSON.stringify(k.kid)},"alg":"none"}`, body('"sub":"a"')));
  t.is(algNoneLast.status, 401, 'alg none after RS256: none, refused');
  t.is(s.up.seen.length, 1);
});

test('two Authorization headers: the first decides, and only it is forwarded', async (t) => {
  const s = await setup(t);
  const good = await s.idp.sign({ sub: 'alice' });
  const a = await exchange(s.gw.port, `GET /data HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer forged\r\nAuthorization: Bearer ${good}\r\nConnection: close\r\n\r\n`, { end: false });
  t.is(a.responses[0]!.status, 401);
  t.is(s.up.seen.length, 0);
  const b = await exchange(s.gw.port, `GET /data HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${good}\r\nAuthorization: Bearer forged\r\nConnection: close\r\n\r\n`, { end: false });
  t.is(b.responses[0]!.status, 200);
  t.is(s.up.seen[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'authorization').length, 1);
  t.is(s.up.seen[0]!.headers.authorization, `Bearer ${good}`);
  t.is(s.up.seen[0]!.headers['x-user-id'], 'alice');
});

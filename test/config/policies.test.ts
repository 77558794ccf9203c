// Policies, consumers and redis in the config: merging a directory, schema messages, and the
// semantic checks. Every issue is asserted with its file:line:column.
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatIssue, type ConfigIssue } from '../../config/issues.ts';
import { loadConfig, loadConfigText } from '../../config/load.ts';
import { validateConfig } from '../../config/validate.ts';

type T = { teardown(fn: () => unknown): void };

/** Writes files into a fresh temp directory (removed after the test) and returns it. */
async function tmpDir(t: T, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-policies-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

/** The issues as text, every mention of the temp directory removed. */
const rel = (dir: string, issues: ConfigIssue[]) => issues.map((i) => formatIssue(i).split(dir + path.sep).join(''));

/**
 * Loads `files` (written to a fresh temp dir; other files such as keys may be given in `extra`):
 * one config file is loaded as a file, several as the directory. Returns the issues as text.
 */
async function issuesOf(t: T, files: Record<string, string>, extra: Record<string, string> = {}, env: Record<string, string> = {}): Promise<string[]> {
  const dir = await tmpDir(t, { ...files, ...extra });
  const names = Object.keys(files);
  const r = await loadConfig(names.length === 1 ? path.join(dir, names[0]!) : dir, env);
  return r.ok ? [] : rel(dir, r.issues);
}

const UPSTREAMS = `upstreams:
  m:
    endpoints: [http://10.0.0.5:8080]
`; // 3 lines

/** The required jwt fields, for a flow mapping ({ ${JWT}, ... }) or a block one (JWT_LINES). */
const JWT = 'issuer: https://idp.example/, audiences: [api]';
const JWT_LINES = (indent: string) => `${indent}issuer: https://idp.example/\n${indent}audiences: [api]\n`; // 2 lines

// ---------------------------------------------------------------------------------------------
// Merging a directory

test('the same policy name in two files is an issue naming both; different names merge', async (t) => {
  const dir = await tmpDir(t, {
    'a.yaml': `policies:
  small: { bodyLimit: 1MiB }
  read-only: { methods: [GET] }
`,
    'b.yaml': `# more policies
policies:
  cors:
    cors: { origins: ["https://app.example.com"] }
  small: { bodyLimit: 2MiB }
`,
  });
  const r = await loadConfig(dir, {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(rel(dir, r.issues), ['b.yaml:5:3 policies.small: policy "small" is defined in both a.yaml:2 and b.yaml:5']);

  const ok = loadConfigText([
    { file: 'a.yaml', text: 'policies:\n  small: { bodyLimit: 1MiB }\n' },
    { file: 'b.yaml', text: `${UPSTREAMS}policies:\n  read-only: { methods: [GET] }\nroutes:\n  - { name: r, upstream: m, policies: [small, read-only] }\n` },
  ]);
  if (!ok.ok) return t.fail(ok.issues.map(formatIssue).join('\n'));
  t.deepEqual(ok.model.policies, { small: { bodyLimit: '1MiB' }, 'read-only': { methods: ['GET'] } });
});

test('the same consumer name in two files is an issue naming both; different names merge', async (t) => {
  const dir = await tmpDir(t, {
    'a.yaml': 'consumers:\n  acme:\n    keys: [acme-key-0123456789ab]\n',
    'b.yaml': 'consumers:\n  globex:\n    keys: [globex-key-0123456789]\n  acme:\n    keys: [acme-key-other-0123456]\n',
  });
  const r = await loadConfig(dir, {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(rel(dir, r.issues), ['b.yaml:4:3 consumers.acme: consumer "acme" is defined in both a.yaml:2 and b.yaml:4']);

  const ok = loadConfigText([
    { file: 'a.yaml', text: 'consumers:\n  acme:\n    keys: [acme-key-0123456789ab]\n' },
    { file: 'b.yaml', text: 'consumers:\n  globex:\n    keys: [globex-key-0123456789]\n' },
  ]);
  if (!ok.ok) return t.fail(ok.issues.map(formatIssue).join('\n'));
  t.deepEqual(Object.keys(ok.model.consumers ?? {}), ['acme', 'globex']);
});

test('redis is merged field by field; the same field in two files is an issue', async (t) => {
  const ok = loadConfigText([
    { file: 'a.yaml', text: 'redis:\n  url: redis://10.0.0.9:6379\n' },
    { file: 'b.yaml', text: 'redis:\n  timeout: 250ms\n  keyPrefix: "gw:"\n' },
  ]);
  if (!ok.ok) return t.fail(ok.issues.map(formatIssue).join('\n'));
  t.deepEqual(ok.model.redis, { url: 'redis://10.0.0.9:6379', timeout: '250ms', keyPrefix: 'gw:' });

  const bad = loadConfigText([
    { file: 'a.yaml', text: 'redis:\n  url: redis://10.0.0.9:6379\n  timeout: 100ms\n' },
    { file: 'b.yaml', text: 'redis:\n  timeout: 250ms\n' },
  ]);
  t.false(bad.ok);
  if (bad.ok) return;
  t.deepEqual(bad.issues.map(formatIssue), [
    'b.yaml:2:3 redis.timeout: redis.timeout is set in both a.yaml:3 and b.yaml:2; each setting may appear in one file only',
  ]);
  // A redis section of the wrong kind is reported once, where it is.
  const list = loadConfigText([{ file: 'a.yaml', text: 'redis: [redis://x]\n' }]);
  t.deepEqual(list.ok ? [] : list.issues.map(formatIssue), ['a.yaml:1:8 redis: expected an object, got a list']);
});

test('defaultPolicies set in two files is an issue naming both', async (t) => {
  const policies = 'policies:\n  small: { bodyLimit: 1MiB }\n  get: { methods: [GET] }\n';
  const dir = await tmpDir(t, {
    'a.yaml': `${policies}defaultPolicies: [small]\n`,
    'b.yaml': '# b\n\ndefaultPolicies:\n  - get\n',
  });
  const r = await loadConfig(dir, {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(rel(dir, r.issues), ['b.yaml:3:1 defaultPolicies: defaultPolicies is set in both a.yaml:4 and b.yaml:3; set it in one file only']);

  // An empty "defaultPolicies:" (everything commented out) does not count.
  const ok = loadConfigText([
    { file: 'a.yaml', text: `${policies}defaultPolicies: [small]\n` },
    { file: 'b.yaml', text: 'defaultPolicies:\n#  - get\n' },
  ]);
  if (!ok.ok) return t.fail(ok.issues.map(formatIssue).join('\n'));
  t.deepEqual(ok.model.defaultPolicies, ['small']);
});

test('relative key files of jwt and identityToken policies are resolved against the declaring file', async (t) => {
  const dir = await tmpDir(t, {
    'conf/10-auth.yaml': `policies:
  local-jwks:
    jwt: { ${JWT}, algorithms: [RS256], jwksFile: keys/jwks.json }
  pem:
    jwt: { ${JWT}, algorithms: [ES256], publicKeyFile: ../shared/idp.pem }
`,
    'conf/20-mesh.yaml': `policies:
  mesh:
    identityToken: { keyFile: keys/id.pem, issuer: gw, audience: mesh }
  abs:
    jwt: { ${JWT}, algorithms: [RS256], jwksFile: ABS }
  headers:
    requestHeaders: { set: { keyFile: keys/id.pem } }
`,
    'conf/keys/jwks.json': '{"keys":[]}',
    'conf/keys/id.pem': 'not checked here',
    'shared/idp.pem': 'not checked here',
    'elsewhere/jwks.json': '{"keys":[]}',
  });
  const mesh = path.join(dir, 'conf/20-mesh.yaml');
  const { readFile } = await import('node:fs/promises');
  await writeFile(mesh, (await readFile(mesh, 'utf8')).replace('ABS', path.join(dir, 'elsewhere/jwks.json')));
  const r = await loadConfig(path.join(dir, 'conf'), {});
  if (!r.ok) return t.fail(rel(dir, r.issues).join('\n'));
  const p = r.model.policies ?? {};
  t.is(p['local-jwks']?.jwt?.jwksFile, path.join(dir, 'conf/keys/jwks.json'));
  t.is(p.pem?.jwt?.publicKeyFile, path.join(dir, 'shared/idp.pem'));
  t.is(p.mesh?.identityToken?.keyFile, path.join(dir, 'conf/keys/id.pem'));
  t.is(p.abs?.jwt?.jwksFile, path.join(dir, 'elsewhere/jwks.json'));
  // Only those fields: a header that happens to be called keyFile stays as it is.
  t.deepEqual(p.headers?.requestHeaders?.set, { keyFile: 'keys/id.pem' });

  // A file named relative to the working directory resolves against its own directory; the
  // issue for a missing key file names the path that was looked at.
  const text = loadConfigText([
    { file: 'some/dir/gw.yaml', text: `policies:\n  a:\n    jwt: { ${JWT}, algorithms: [RS256], jwksFile: ../jwks.json }\n` },
  ]);
  t.deepEqual(text.ok ? [] : text.issues.map(formatIssue), [
    `some/dir/gw.yaml:3:91 policies.a.jwt.jwksFile: file "${path.resolve('some/jwks.json')}" does not exist`,
  ]);
});

// ---------------------------------------------------------------------------------------------
// Schema messages

test('a policy has exactly one kind: none, two, an unknown one, or not an object', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `policies:
  empty: {}
  two:
    bodyLimit: 1MiB
    cors: { origins: ["*"] }
  typo:
    jwtt: { issuer: x }
  typo-and-kind:
    bodyLimit: 1MiB
    corss: {}
  text: jwt
  "bad name": { bodyLimit: 1 }
`,
    }),
    [
      'gw.yaml:2:10 policies.empty: a policy needs one of: jwt, apiKey, authz, rateLimit, cors, bodyLimit, methods, ipFilter, requestHeaders, responseHeaders, identityToken',
      'gw.yaml:4:5 policies.two: a policy has exactly one kind; found 2: bodyLimit, cors (give each its own name and list them all)',
      'gw.yaml:7:5 policies.typo.jwtt: unknown policy kind "jwtt" (kinds: jwt, apiKey, authz, rateLimit, cors, bodyLimit, methods, ipFilter, requestHeaders, responseHeaders, identityToken)',
      'gw.yaml:10:5 policies["typo-and-kind"].corss: unknown policy kind "corss" (kinds: jwt, apiKey, authz, rateLimit, cors, bodyLimit, methods, ipFilter, requestHeaders, responseHeaders, identityToken)',
      'gw.yaml:11:9 policies.text: expected an object with one of jwt, apiKey, authz, rateLimit, cors, bodyLimit, methods, ipFilter, requestHeaders, responseHeaders, identityToken, got a string ("jwt")',
      'gw.yaml:12:3 policies["bad name"]: invalid name "bad name": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"',
    ],
  );
});

test('schema messages inside policies: sizes, algorithms, claim matches, credential sources, choices', async (t) => {
  const issues = await issuesOf(t, {
    'gw.yaml': `policies:
  s1: { bodyLimit: lots }
  s2: { bodyLimit: -1 }
  s3: { bodyLimit: 1.5 }
  s4: { bodyLimit: "1 megabyte" }
  alg:
    jwt:
${JWT_LINES('      ')}      algorithms: [none, RS256, rs256, 5]
      jwksUri: https://idp.example/jwks
      from: authorization
  src:
    jwt:
${JWT_LINES('      ')}      algorithms: [RS256]
      jwksUri: https://idp.example/jwks
      from: { header: authorization, cookie: session }
  src2: { apiKey: { from: {} } }
  az:
    authz:
      allow:
        - claims:
            groups: [a, b]
            org: { in: [a], regex: x }
            tier: { equals: gold }
            level: { in: [] }
            n: ~
        - {}
  rl:
    rateLimit:
      limits: [{ requests: 0, per: soon }]
      key: [ip, user, "claim:"]
      store: disk
      headers: 429
  it:
    identityToken: { keyFile: k.pem, issuer: gw, audience: mesh, algorithm: HS256 }
  ip: { ipFilter: {} }
`,
  }, { 'k.pem': 'pem' });
  t.deepEqual(issues, [
    'gw.yaml:2:20 policies.s1.bodyLimit: expected a size like "1MiB" or a number of bytes',
    'gw.yaml:3:20 policies.s2.bodyLimit: expected a size like "1MiB" or a number of bytes',
    'gw.yaml:4:20 policies.s3.bodyLimit: expected a size like "1MiB" or a number of bytes, got a fractional number (1.5)',
    'gw.yaml:5:20 policies.s4.bodyLimit: expected a size like "1MiB" or a number of bytes',
    'gw.yaml:10:20 policies.alg.jwt.algorithms[0]: expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512',
    'gw.yaml:10:33 policies.alg.jwt.algorithms[2]: expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512',
    'gw.yaml:10:40 policies.alg.jwt.algorithms[3]: expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512, got a number (5)',
    'gw.yaml:12:13 policies.alg.jwt.from: expected an object with one of header, cookie, query, got a string ("authorization")',
    'gw.yaml:19:13 policies.src.jwt.from: must set exactly one of header, cookie, query (found: header, cookie)',
    'gw.yaml:20:27 policies.src2.apiKey.from: must set exactly one of header, cookie, query',
    'gw.yaml:25:21 policies.az.authz.allow[0].claims.groups: expected a value (a string, number, true or false) or one of {in: [...]}, {regex}, {present: true|false}, got a list',
    'gw.yaml:26:18 policies.az.authz.allow[0].claims.org: must set exactly one of in, regex, present (found: in, regex)',
    'gw.yaml:27:21 policies.az.authz.allow[0].claims.tier.equals: unknown field "equals" (allowed: in, regex, present)',
    'gw.yaml:28:26 policies.az.authz.allow[0].claims.level.in: must not be an empty list',
    'gw.yaml:29:16 policies.az.authz.allow[0].claims.n: expected a value (a string, number, true or false) or one of {in: [...]}, {regex}, {present: true|false}, got nothing (null)',
    'gw.yaml:30:11 policies.az.authz.allow[1]: must not be empty: set at least one of authenticated, kinds, subjects, consumers, scopes, anyScopes, roles, anyRoles, claims',
    'gw.yaml:33:28 policies.rl.rateLimit.limits[0].requests: must be at least 1, got 0',
    'gw.yaml:33:36 policies.rl.rateLimit.limits[0].per: expected a duration like "2s" or "250ms"',
    'gw.yaml:34:17 policies.rl.rateLimit.key[1]: must be ip, consumer, subject, route, claim:<name> or header:<name>',
    'gw.yaml:34:23 policies.rl.rateLimit.key[2]: must be ip, consumer, subject, route, claim:<name> or header:<name>',
    'gw.yaml:35:14 policies.rl.rateLimit.store: expected one of memory, redis',
    'gw.yaml:36:16 policies.rl.rateLimit.headers: expected one of all, limited, none, got a number (429)',
    'gw.yaml:38:77 policies.it.identityToken.algorithm: expected one of ES256, RS256, EdDSA',
    'gw.yaml:39:19 policies.ip.ipFilter: must not be empty: set at least one of allow, deny',
  ]);
  // "none" is never offered, not even as a thing that was given.
  t.false(issues.some((i) => /\bnone\b/.test(i) && i.includes('algorithms')));
});

test('schema messages never repeat a consumer key, a jwt secret or the redis URL', async (t) => {
  const issues = await issuesOf(t, {
    'gw.yaml': `consumers:
  a:
    keys: [12345678901234567890, short-secret, "", [x]]
policies:
  hs:
    jwt: { ${JWT}, algorithms: [HS256], secret: 98765432109876543210987654321098765 }
  hs2:
    jwt: { ${JWT}, algorithms: [HS256], secret: tooshort-secret }
redis:
  url: http://user:hunter2hunter2@cache:6379
`,
  });
  t.deepEqual(issues, [
    'gw.yaml:3:12 consumers.a.keys[0]: expected a string, got a number',
    'gw.yaml:3:34 consumers.a.keys[1]: must be at least 16 characters long',
    'gw.yaml:3:48 consumers.a.keys[2]: must be at least 16 characters long',
    'gw.yaml:3:52 consumers.a.keys[3]: expected a string, got a list',
    'gw.yaml:6:89 policies.hs.jwt.secret: expected a string, got a number',
    'gw.yaml:8:89 policies.hs2.jwt.secret: must be at least 32 characters long',
    'gw.yaml:10:8 redis.url: must be a URL starting with "redis://" or "rediss://"',
  ]);
  for (const secret of ['1234567890', 'short-secret', '9876543210', 'tooshort', 'hunter2']) {
    t.false(issues.some((i) => i.includes(secret)), secret);
  }
});

// ---------------------------------------------------------------------------------------------
// Semantic checks

test('route policies and defaultPolicies name existing policies, each once', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}policies:
  small: { bodyLimit: 1MiB }
  get: { methods: [GET] }
defaultPolicies: [small, smal, small]
routes:
  - name: a
    upstream: m
    match: { prefix: /a }
    policies: [get, auth, get, small]
  - name: b
    upstream: m
    useDefaultPolicies: false
    policies: []
`,
    }),
    [
      'gw.yaml:7:26 defaultPolicies[1]: unknown policy "smal" (known: small, get)',
      'gw.yaml:7:32 defaultPolicies[2]: policy "small" is listed twice (first at [0])',
      'gw.yaml:12:21 routes[0].policies[1]: unknown policy "auth" (known: small, get)',
      'gw.yaml:12:27 routes[0].policies[2]: policy "get" is listed twice (first at [0])',
    ],
  );
  t.deepEqual(await issuesOf(t, { 'gw.yaml': `${UPSTREAMS}routes:\n  - { name: a, upstream: m, policies: [auth] }\n` }), [
    'gw.yaml:5:40 routes[0].policies[0]: unknown policy "auth" (no policies are defined)',
  ]);
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'defaultPolicies: [auth]\n' }), [
    'gw.yaml:1:19 defaultPolicies[0]: unknown policy "auth" (no policies are defined)',
  ]);
});

test('jwt: exactly one key source; HS algorithms only with secret, secret only with HS algorithms', async (t) => {
  const secret = 'a-very-long-shared-secret-0123456789';
  t.deepEqual(
    await issuesOf(
      t,
      {
        'gw.yaml': `policies:
  nokey:
    jwt: { ${JWT}, algorithms: [RS256] }
  twokeys:
    jwt: { ${JWT}, algorithms: [RS256], jwksUri: "https://idp.example/jwks", secret: ${secret} }
  hs-with-jwks:
    jwt: { ${JWT}, algorithms: [RS256, HS256], jwksUri: "https://idp.example/jwks" }
  rs-with-secret:
    jwt: { ${JWT}, algorithms: [HS512, ES256, PS256], secret: ${secret} }
  hs-with-pem:
    jwt: { ${JWT}, algorithms: [HS384], publicKeyFile: idp.pem }
  twice:
    jwt: { ${JWT}, algorithms: [RS256, RS256], jwksFile: jwks.json }
  ok-hs:
    jwt: { ${JWT}, algorithms: [HS256, HS384, HS512], secret: ${secret} }
  ok-public:
    jwt: { ${JWT}, algorithms: [RS256, PS512, ES384, EdDSA], jwksUri: "https://idp.example/jwks" }
`,
      },
      { 'idp.pem': 'pem', 'jwks.json': '{"keys":[]}' },
    ),
    [
      'gw.yaml:3:10 policies.nokey.jwt: needs a key to verify tokens: set one of jwksUri, jwksFile, publicKeyFile or secret',
      'gw.yaml:5:10 policies.twokeys.jwt: set only one of jwksUri, jwksFile, publicKeyFile and secret (found: jwksUri, secret)',
      'gw.yaml:7:80 policies["hs-with-jwks"].jwt.algorithms[1]: HS256 needs "secret": a public key (jwksUri) never verifies HS tokens, and must never be used as an HS secret',
      'gw.yaml:9:80 policies["rs-with-secret"].jwt.algorithms[1]: ES256 needs a public key (jwksUri, jwksFile or publicKeyFile), not "secret": an HS key never verifies RS/ES tokens',
      'gw.yaml:9:87 policies["rs-with-secret"].jwt.algorithms[2]: PS256 needs a public key (jwksUri, jwksFile or publicKeyFile), not "secret": an HS key never verifies RS/ES tokens',
      'gw.yaml:11:73 policies["hs-with-pem"].jwt.algorithms[0]: HS384 needs "secret": a public key (publicKeyFile) never verifies HS tokens, and must never be used as an HS secret',
      'gw.yaml:13:80 policies.twice.jwt.algorithms[1]: algorithm RS256 is listed twice',
    ],
  );
});

test('jwt and identityToken key files must exist and be readable files (an issue, not a throw)', async (t) => {
  const dir = await tmpDir(t, {
    'gw.yaml': `policies:
  missing:
    jwt: { ${JWT}, algorithms: [RS256], jwksFile: keys/missing.json }
  dir:
    jwt: { ${JWT}, algorithms: [RS256], publicKeyFile: keys }
  under-a-file:
    jwt: { ${JWT}, algorithms: [RS256], publicKeyFile: keys/ok.pem/x.pem }
  ok:
    jwt: { ${JWT}, algorithms: [RS256], publicKeyFile: keys/ok.pem }
  mesh:
    identityToken: { keyFile: keys/id.pem, issuer: gw, audience: mesh }
  mesh-ok:
    identityToken: { keyFile: keys/ok.pem, issuer: gw, audience: mesh, header: x-mesh-identity }
`,
    'keys/ok.pem': 'pem',
  });
  const r = await loadConfig(path.join(dir, 'gw.yaml'), {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(rel(dir, r.issues), [
    'gw.yaml:3:91 policies.missing.jwt.jwksFile: file "keys/missing.json" does not exist',
    'gw.yaml:5:96 policies.dir.jwt.publicKeyFile: "keys" is not a file',
    'gw.yaml:7:96 policies["under-a-file"].jwt.publicKeyFile: file "keys/ok.pem/x.pem" does not exist',
    'gw.yaml:11:31 policies.mesh.identityToken.keyFile: file "keys/id.pem" does not exist',
  ]);
});

test('jwt.forward: header names unique ignoring case, never one the gateway manages', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `policies:
  users:
    jwt:
${JWT_LINES('      ')}      algorithms: [RS256]
      jwksUri: https://idp.example/jwks
      forward:
        x-user-id: sub
        X-User-Id: email
        Host: aud
        content-length: sub
        Transfer-Encoding: sub
        connection: sub
        x-scopes: scope
  partners:
    apiKey: { forward: { consumer: Connection } }
  mesh:
    identityToken: { keyFile: k.pem, issuer: gw, audience: mesh, header: host }
`,
    }, { 'k.pem': 'pem' }),
    [
      'gw.yaml:10:9 policies.users.jwt.forward["X-User-Id"]: header "X-User-Id" is already forwarded as "x-user-id" (header names are case-insensitive)',
      'gw.yaml:11:9 policies.users.jwt.forward.Host: "Host" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway',
      'gw.yaml:12:9 policies.users.jwt.forward["content-length"]: "content-length" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway',
      'gw.yaml:13:9 policies.users.jwt.forward["Transfer-Encoding"]: "Transfer-Encoding" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway',
      'gw.yaml:14:9 policies.users.jwt.forward.connection: "connection" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway',
      'gw.yaml:17:36 policies.partners.apiKey.forward.consumer: "Connection" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway',
      'gw.yaml:19:74 policies.mesh.identityToken.header: "host" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway',
    ],
  );
});

test('identity headers: policies of the same kind may share one, policies of different kinds may not', async (t) => {
  // users and partners-idp (both jwt) share x-user-id, mesh and mesh-2 (both identityToken) the
  // default x-causeway-identity: fine. Each policy of another kind setting one is reported.
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `policies:
  users:
    jwt: { ${JWT}, algorithms: [RS256], jwksUri: "https://a.example/jwks", forward: { x-user-id: sub, x-causeway-identity: sub } }
  partners-idp:
    jwt: { ${JWT}, algorithms: [RS256], jwksUri: "https://b.example/jwks", forward: { X-User-Id: sub } }
  partners:
    apiKey: { forward: { consumer: X-USER-ID } }
  mesh:
    identityToken: { keyFile: k.pem, issuer: gw, audience: mesh }
  mesh-2:
    identityToken: { keyFile: k.pem, issuer: gw2, audience: mesh }
`,
    }, { 'k.pem': 'pem' }),
    [
      'gw.yaml:7:36 policies.partners.apiKey.forward.consumer: header "x-user-id" is also set by policy "users" (jwt, gw.yaml:3); policies of different kinds must not set the same identity header',
      'gw.yaml:9:20 policies.mesh.identityToken: header "x-causeway-identity" is also set by policy "users" (jwt, gw.yaml:3); policies of different kinds must not set the same identity header',
      'gw.yaml:11:20 policies["mesh-2"].identityToken: header "x-causeway-identity" is also set by policy "users" (jwt, gw.yaml:3); policies of different kinds must not set the same identity header',
    ],
  );
});

test('apiKey.consumers name existing consumers; a key belongs to one consumer and is never printed', async (t) => {
  const issues = await issuesOf(t, {
    'gw.yaml': `consumers:
  acme:
    keys:
      - acme-key-0123456789abc
      - shared-key-0123456789ab
      - acme-key-0123456789abc
  globex:
    keys: [globex-key-0123456789ab]
  initech:
    keys:
      - initech-key-01234567890
      - shared-key-0123456789ab
policies:
  partners:
    apiKey:
      consumers: [acme, globex, umbrella, acme]
`,
  });
  t.deepEqual(issues, [
    'gw.yaml:6:9 consumers.acme.keys[2]: repeats keys[0] of the same consumer',
    'gw.yaml:12:9 consumers.initech.keys[1]: this key is also a key of consumer "acme" (gw.yaml:5); a key must identify one consumer',
    'gw.yaml:16:33 policies.partners.apiKey.consumers[2]: unknown consumer "umbrella" (known: acme, globex, initech)',
    'gw.yaml:16:43 policies.partners.apiKey.consumers[3]: consumer "acme" is listed twice (first at [0])',
  ]);
  t.false(issues.some((i) => i.includes('shared-key') || i.includes('acme-key')));
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'policies:\n  p: { apiKey: { consumers: [acme] } }\n' }), [
    'gw.yaml:2:30 policies.p.apiKey.consumers[0]: unknown consumer "acme" (no consumers are defined)',
  ]);
});

test('rateLimit: redis store needs redis; overrides name consumers; one limit per window; key parts are not second-guessed', async (t) => {
  const consumers = 'consumers:\n  acme: { keys: [acme-key-0123456789abc] }\n'; // 2 lines
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${consumers}policies:
  shared:
    rateLimit:
      limits:
        - { requests: 10, per: 1m }
        - { requests: 20, per: 60s }
        - { requests: 30, per: 60000 }
        - { requests: 5, per: 1s }
        - { requests: 1, per: 0s }
        - { requests: 1, per: 500ms }
        - { requests: 1, per: 1.5s }
        - { requests: 1, per: 2000 }
      store: redis
      overrides:
        acme: [{ requests: 100, per: 1h }, { requests: 50, per: 1h }]
        umbrella: [{ requests: 1, per: 1s }]
  no-authn-needed:
    rateLimit:
      limits: [{ requests: 1, per: 1s }]
      key: [consumer, subject, "claim:org.id", "header:x-tenant"]
      store: memory
`,
    }),
    [
      'gw.yaml:8:32 policies.shared.rateLimit.limits[1].per: limits[0] already limits this window ("1m"); keep one limit per window',
      'gw.yaml:9:32 policies.shared.rateLimit.limits[2].per: limits[0] already limits this window ("1m"); keep one limit per window',
      'gw.yaml:11:31 policies.shared.rateLimit.limits[4].per: a window must be a whole number of seconds, 1s or more',
      'gw.yaml:12:31 policies.shared.rateLimit.limits[5].per: a window must be a whole number of seconds, 1s or more',
      'gw.yaml:13:31 policies.shared.rateLimit.limits[6].per: a window must be a whole number of seconds, 1s or more',
      'gw.yaml:15:14 policies.shared.rateLimit.store: store "redis" needs the top-level "redis" section (its url)',
      'gw.yaml:17:65 policies.shared.rateLimit.overrides.acme[1].per: overrides.acme[0] already limits this window; keep one limit per window',
      'gw.yaml:18:9 policies.shared.rateLimit.overrides.umbrella: unknown consumer "umbrella" (known: acme)',
    ],
  );
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `redis: { url: "redis://cache:6379" }\npolicies:\n  p: { rateLimit: { limits: [{ requests: 1, per: 1s }], store: redis } }\n`,
    }),
    [],
  );
});

test('authz: claim regexes compile, consumers exist, and a policy without rules is an issue', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `consumers:
  acme: { keys: [acme-key-0123456789abc] }
policies:
  admins:
    authz:
      deny:
        - claims: { email: { regex: "(" } }
      allow:
        - roles: [admin]
        - consumers: [acme, umbrella]
          claims:
            org.id: { regex: "^acme-[0-9]+$" }
            tier: { regex: "[gold" }
            "": x
            org..id: x
            .sub: x
      rolesClaim: realm_access.roles
      scopesClaim: scp
  nothing:
    authz: { rolesClaim: roles }
`,
    }),
    [
      'gw.yaml:7:37 policies.admins.authz.deny[0].claims.email.regex: Invalid regular expression: /(/: Unterminated group',
      'gw.yaml:10:29 policies.admins.authz.allow[1].consumers[1]: unknown consumer "umbrella" (known: acme)',
      'gw.yaml:13:28 policies.admins.authz.allow[1].claims.tier.regex: Invalid regular expression: /[gold/: Unterminated character class',
      'gw.yaml:14:13 policies.admins.authz.allow[1].claims[""]: claim name must not be empty',
      'gw.yaml:15:13 policies.admins.authz.allow[1].claims["org..id"]: claim path "org..id" has an empty segment',
      'gw.yaml:16:13 policies.admins.authz.allow[1].claims[".sub"]: claim path ".sub" has an empty segment',
      'gw.yaml:20:12 policies.nothing.authz: needs "allow" or "deny" rules; without them it allows every request',
    ],
  );
});

test('cors: origins are "*" or scheme://host[:port] with an optional "*." label; no credentials with "*"', async (t) => {
  const good = ['https://app.example.com', 'https://*.example.com', 'http://localhost:3000', 'http://[::1]:8080', 'capacitor://localhost', 'http://my_host'];
  const bad = [
    'https://app.example.com/',
    'https://app.example.com/path',
    'app.example.com',
    '*.example.com',
    'https://app.*.example.com',
    'https://app.example.com:99999',
    'null',
    'https://*.com',
    'http://*.[::1]',
  ];
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `policies:
  web:
    cors:
      origins: ${JSON.stringify([...good, ...bad])}
      methods: [GET, FETCH]
  open:
    cors:
      origins: ["*"]
      credentials: true
  open-ok:
    cors: { origins: ["*"], credentials: false }
`,
    }),
    [
      'gw.yaml:4:152 policies.web.cors.origins[6]: "https://app.example.com/" is not an origin: write "*" or scheme://host[:port], optionally with a leading "*." label as in "https://*.example.com" (an origin has no path, not even a trailing "/")',
      'gw.yaml:4:179 policies.web.cors.origins[7]: "https://app.example.com/path" is not an origin: write "*" or scheme://host[:port], optionally with a leading "*." label as in "https://*.example.com" (an origin has no path, not even a trailing "/")',
      'gw.yaml:4:210 policies.web.cors.origins[8]: "app.example.com" is not an origin: write "*" or scheme://host[:port], optionally with a leading "*." label as in "https://*.example.com" (an origin starts with the scheme: "https://app.example.com", "https://*.example.com")',
      'gw.yaml:4:228 policies.web.cors.origins[9]: "*.example.com" is not an origin: write "*" or scheme://host[:port], optionally with a leading "*." label as in "https://*.example.com" (an origin starts with the scheme: "https://app.example.com", "https://*.example.com")',
      'gw.yaml:4:244 policies.web.cors.origins[10]: "https://app.*.example.com" is not an origin: write "*" or scheme://host[:port], optionally with a leading "*." label as in "https://*.example.com"',
      'gw.yaml:4:272 policies.web.cors.origins[11]: "https://app.example.com:99999" is not an origin: the port must be 1 to 65535',
      'gw.yaml:4:304 policies.web.cors.origins[12]: origin "null" cannot be allowed: sandboxed frames, local files and some redirects send it, so any site can produce it',
      'gw.yaml:4:311 policies.web.cors.origins[13]: "https://*.com": a "*." wildcard needs a domain of at least two labels after it ("https://*.example.com")',
      'gw.yaml:4:327 policies.web.cors.origins[14]: "http://*.[::1]": a "*." wildcard needs a domain of at least two labels after it ("https://*.example.com")',
      'gw.yaml:5:22 policies.web.cors.methods[1]: unknown HTTP method "FETCH"',
      'gw.yaml:9:20 policies.open.cors.credentials: credentials: true cannot be combined with origin "*" (browsers refuse it); list the allowed origins instead',
    ],
  );
});

test('ipFilter entries, bodyLimit, methods and the redis URL are checked', async (t) => {
  const issues = await issuesOf(t, {
    'gw.yaml': `policies:
  office:
    ipFilter:
      allow: [10.0.0.0/8, 10.0.0/8, "fd00::/8", "fe80::1%eth0"]
      deny: [192.168.1.1/33, ::1]
  half-byte: { bodyLimit: "1.5" }
  huge: { bodyLimit: 99999999999999GiB }
  ok-size: { bodyLimit: 512KiB }
  tag:
    requestHeaders:
      set: { x-a: "line\\nbreak", x-ok: fine }
      add: { x-b: "bell\\a" }
  untag: { responseHeaders: { set: { x-c: "a\\rb" } } }
  verbs: { methods: [GET, FETCH, GET] }
redis:
  url: "redis://:hunter2@/0"
`,
  });
  t.deepEqual(issues, [
    'gw.yaml:4:27 policies.office.ipFilter.allow[1]: "10.0.0/8": "10.0.0" is not an IPv4 or IPv6 address',
    'gw.yaml:4:49 policies.office.ipFilter.allow[3]: "fe80::1%eth0": zone indexes (%...) are not supported; write the address without it',
    'gw.yaml:5:14 policies.office.ipFilter.deny[0]: "192.168.1.1/33": prefix length /33 is too long for IPv4 (at most /32)',
    'gw.yaml:6:27 policies["half-byte"].bodyLimit: "1.5" is not a whole number of bytes',
    'gw.yaml:7:22 policies.huge.bodyLimit: "99999999999999GiB" is too large',
    'gw.yaml:11:19 policies.tag.requestHeaders.set["x-a"]: has characters not allowed in a header value (line breaks or control characters)',
    'gw.yaml:12:19 policies.tag.requestHeaders.add["x-b"]: has characters not allowed in a header value (line breaks or control characters)',
    'gw.yaml:13:43 policies.untag.responseHeaders.set["x-c"]: has characters not allowed in a header value (line breaks or control characters)',
    'gw.yaml:14:27 policies.verbs.methods[1]: unknown HTTP method "FETCH"',
    'gw.yaml:14:34 policies.verbs.methods[2]: method "GET" is listed twice',
    'gw.yaml:16:8 redis.url: is not a valid redis:// or rediss:// URL with a host',
  ]);
  t.false(issues.some((i) => i.includes('hunter2')));
});

test('semantic checks skip what failed the schema or a ${...}', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `consumers:
  a: { keys: ["\${KEY_A}"] }
  b: { keys: ["\${KEY_A}"] }
policies:
  j:
    jwt: { ${JWT}, algorithms: [none, HS256], jwksUri: "https://idp.example/jwks", forward: { "bad header": sub } }
  r:
    rateLimit: { limits: [{ requests: 1, per: soon }, { requests: 2, per: soon }] }
  s: { bodyLimit: "\${SIZE}" }
defaultPolicies: [5]
`,
    }),
    [
      'gw.yaml:2:15 consumers.a.keys[0]: environment variable KEY_A is not set',
      'gw.yaml:3:15 consumers.b.keys[0]: environment variable KEY_A is not set',
      'gw.yaml:6:73 policies.j.jwt.algorithms[0]: expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512',
      'gw.yaml:6:135 policies.j.jwt.forward["bad header"]: invalid header name "bad header": must be a valid header name (letters, digits and !#$%&\'*+.^_`|~-)',
      'gw.yaml:8:47 policies.r.rateLimit.limits[0].per: expected a duration like "2s" or "250ms"',
      'gw.yaml:8:75 policies.r.rateLimit.limits[1].per: expected a duration like "2s" or "250ms"',
      'gw.yaml:9:19 policies.s.bodyLimit: environment variable SIZE is not set',
      'gw.yaml:10:19 defaultPolicies[0]: expected a string, got a number (5)',
    ],
  );
});

test('validateConfig checks policies of a model without source locations', (t) => {
  const good = validateConfig({
    upstreams: { m: { endpoints: ['http://10.0.0.1:80'] } },
    policies: { small: { bodyLimit: '1MiB' }, auth: { apiKey: {} } },
    consumers: { acme: { keys: ['acme-key-0123456789abc'] } },
    defaultPolicies: ['small'],
    routes: [{ name: 'a', upstream: 'm', policies: ['auth'] }],
  });
  t.true(good.ok, good.ok ? '' : JSON.stringify(good.issues));
  const bad = validateConfig({
    consumers: { a: { keys: ['same-key-0123456789ab'] }, b: { keys: ['same-key-0123456789ab'] } },
    policies: { c: { cors: { origins: ['*'], credentials: true } } },
    routes: [{ name: 'a', upstream: 'm', policies: ['x'] }],
    upstreams: { m: { endpoints: ['http://10.0.0.1:80'] } },
  });
  t.false(bad.ok);
  if (bad.ok) return;
  t.deepEqual(bad.issues, [
    { path: 'policies.c.cors.credentials', message: 'credentials: true cannot be combined with origin "*" (browsers refuse it); list the allowed origins instead' },
    {
      path: 'consumers.b.keys[0]',
      message: 'this key is also a key of consumer "a" (consumers.a.keys[0]); a key must identify one consumer',
    },
    { path: 'routes[0].policies[0]', message: 'unknown policy "x" (known: c)' },
  ]);
});

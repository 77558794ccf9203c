import test from 'ava';
import type { AuthzPolicyConfig, AuthzRuleConfig } from '../../config/policy-model.ts';
import { compileAuthz } from '../../plugins/authz.ts';
import { newContext, SharedResources, type CompiledPolicy, type Identity, type PolicyContext, type PolicyDeps, type PolicyResult } from '../../plugins/policy.ts';

function makeDeps(warnings: string[] = []): PolicyDeps {
  return {
    consumers: new Map(),
    shared: new SharedResources(),
    log: { info() {}, warn: (_o, msg) => void warnings.push(msg ?? ''), error() {} },
  };
}

function ctxFor(identity: Identity | null): PolicyContext {
  const ctx = newContext({ method: 'GET', path: '/orders', query: '', host: 'api.example.com', headers: {}, clientIp: '203.0.113.7', route: 'orders' });
  ctx.identity = identity;
  return ctx;
}

function run(p: CompiledPolicy, identity: Identity | null): PolicyResult {
  const out = p.run(ctxFor(identity));
  if (out instanceof Promise) throw new Error('authz must answer synchronously');
  return out;
}

const authz = (cfg: AuthzPolicyConfig, deps = makeDeps()) => compileAuthz('orders-authz', cfg, deps);

const user: Identity = {
  kind: 'user',
  subject: 'user-123',
  method: 'jwt',
  issuer: 'https://idp.example.com/',
  scopes: ['orders:read', 'profile'],
  roles: ['customer'],
  claims: {
    sub: 'user-123',
    scope: 'orders:read profile',
    org: { id: 'acme', tier: 2, plan: { name: 'gold' } },
    groups: ['eng', 'ops'],
    email_verified: true,
    age: 42,
    nothing: null,
    realm_access: { roles: ['admin', 'auditor'] },
    perms: 'orders:write  orders:delete',
    'https://example.com/roles': ['support'],
  },
};

const consumer: Identity = {
  kind: 'consumer',
  subject: 'partner-a',
  method: 'api-key',
  consumer: 'partner-a',
  scopes: ['orders:read', 'orders:write'],
  roles: ['partner'],
  claims: { plan: 'gold', region: 'eu' },
};

const service: Identity = {
  kind: 'service',
  subject: 'spiffe://cluster.local/ns/shop/sa/orders',
  method: 'mtls',
  scopes: [],
  roles: [],
  claims: {},
};

const AUTH_REQUIRED = {
  status: 401,
  code: 'CW_AUTH_REQUIRED',
  message: 'authentication required',
  headers: [['www-authenticate', 'Bearer realm="causeway"']],
};

const forbidden = (...why: string[]) => ({
  status: 403,
  code: 'CW_AUTHZ_FORBIDDEN',
  message: `no allow rule of policy "orders-authz" matches this identity (${why.map((w, i) => `rule ${i + 1} failed on ${w}`).join('; ')})`,
});

const denied = (n: number) => ({ status: 403, code: 'CW_AUTHZ_DENIED', message: `refused by deny rule ${n} of policy "orders-authz"` });

test('compiled policy: name, kind, phase', (t) => {
  const p = authz({ allow: [{ authenticated: true }] });
  t.is(p.name, 'orders-authz');
  t.is(p.kind, 'authz');
  t.is(p.phase, 'authz');
});

test('authenticated: true → 401 with WWW-Authenticate without identity, passes with any identity kind', (t) => {
  const p = authz({ allow: [{ authenticated: true }] });
  t.deepEqual(run(p, null), AUTH_REQUIRED);
  t.is(run(p, user), null);
  t.is(run(p, consumer), null);
  t.is(run(p, service), null);
});

test('authenticated: false allows only anonymous requests', (t) => {
  const p = authz({ allow: [{ authenticated: false }] });
  t.is(run(p, null), null);
  t.deepEqual(run(p, user), forbidden('authenticated'));
  t.deepEqual(run(p, service), forbidden('authenticated'));
});

test('kinds', (t) => {
  const p = authz({ allow: [{ kinds: ['service', 'consumer'] }] });
  t.is(run(p, service), null);
  t.is(run(p, consumer), null);
  t.deepEqual(run(p, user), forbidden('kinds'));
  t.deepEqual(run(p, null), AUTH_REQUIRED);
});

test('subjects: service identities by SPIFFE id', (t) => {
  const p = authz({ allow: [{ kinds: ['service'], subjects: ['spiffe://cluster.local/ns/shop/sa/orders', 'spiffe://cluster.local/ns/shop/sa/cart'] }] });
  t.is(run(p, service), null);
  t.deepEqual(run(p, { ...service, subject: 'spiffe://cluster.local/ns/shop/sa/payments' }), forbidden('subjects'));
  // Prefixes and near-misses are different subjects.
  t.deepEqual(run(p, { ...service, subject: 'spiffe://cluster.local/ns/shop/sa/orders/x' }), forbidden('subjects'));
  t.deepEqual(run(p, { ...service, subject: 'spiffe://cluster.local/ns/shop/sa/Orders' }), forbidden('subjects'));
  // Same subject, wrong kind: a user whose `sub` is a SPIFFE id is not the service.
  t.deepEqual(run(p, { ...user, subject: 'spiffe://cluster.local/ns/shop/sa/orders' }), forbidden('kinds'));
});

test('consumers', (t) => {
  const p = authz({ allow: [{ consumers: ['partner-a', 'partner-b'] }] });
  t.is(run(p, consumer), null);
  t.deepEqual(run(p, { ...consumer, consumer: 'partner-c', subject: 'partner-c' }), forbidden('consumers'));
  // A user whose subject happens to be a consumer name is not that consumer.
  t.deepEqual(run(p, { ...user, subject: 'partner-a' }), forbidden('consumers'));
});

test('scopes (all of) and anyScopes (one of)', (t) => {
  const all = authz({ allow: [{ scopes: ['orders:read', 'profile'] }] });
  t.is(run(all, user), null);
  t.deepEqual(run(all, consumer), forbidden('scopes'));
  const any = authz({ allow: [{ anyScopes: ['orders:write', 'admin'] }] });
  t.is(run(any, consumer), null);
  t.deepEqual(run(any, user), forbidden('anyScopes'));
  t.deepEqual(run(any, service), forbidden('anyScopes'));
});

test('roles (all of) and anyRoles (one of)', (t) => {
  const all = authz({ allow: [{ roles: ['customer'] }] });
  t.is(run(all, user), null);
  t.deepEqual(run(all, { ...user, roles: [] }), forbidden('roles'));
  const any = authz({ allow: [{ anyRoles: ['partner', 'admin'] }] });
  t.is(run(any, consumer), null);
  t.deepEqual(run(any, user), forbidden('anyRoles'));
});

test('rolesClaim and scopesClaim read a dotted claim (list or space-separated string)', (t) => {
  const roles = authz({ rolesClaim: 'realm_access.roles', allow: [{ roles: ['admin', 'auditor'] }] });
  t.is(run(roles, user), null);
  // The identity's own roles no longer count when the claim is there.
  const own = authz({ rolesClaim: 'realm_access.roles', allow: [{ anyRoles: ['customer'] }] });
  t.deepEqual(run(own, user), forbidden('anyRoles'));
  const scopes = authz({ scopesClaim: 'perms', allow: [{ scopes: ['orders:write', 'orders:delete'] }] });
  t.is(run(scopes, user), null);
  t.deepEqual(run(authz({ scopesClaim: 'perms', allow: [{ scopes: ['orders:read'] }] }), user), forbidden('scopes'));
  // A claim named with dots (namespaced claims) is read by its whole name first.
  t.is(run(authz({ rolesClaim: 'https://example.com/roles', allow: [{ roles: ['support'] }] }), user), null);
  // The claim holds something that is not a list: no roles.
  t.deepEqual(run(authz({ rolesClaim: 'org', allow: [{ anyRoles: ['customer'] }] }), user), forbidden('anyRoles'));
});

test('rolesClaim/scopesClaim absent from an identity: its own roles and scopes count (consumers, services)', (t) => {
  const p = authz({ rolesClaim: 'realm_access.roles', scopesClaim: 'perms', allow: [{ roles: ['partner'], scopes: ['orders:write'] }] });
  t.is(run(p, consumer), null);
  t.is(run(authz({ rolesClaim: 'realm_access.roles', allow: [{ roles: ['mesh'] }] }), { ...service, roles: ['mesh'] }), null);
});

test('claims: equality with strings, numbers and booleans compared as text', (t) => {
  t.is(run(authz({ allow: [{ claims: { 'org.id': 'acme' } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { 'org.tier': 2 } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { 'org.tier': '2' } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { email_verified: true } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { email_verified: 'true' } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { 'org.plan.name': 'gold' } }] }), user), null);
  t.deepEqual(run(authz({ allow: [{ claims: { 'org.id': 'ACME' } }] }), user), forbidden('claims.org.id'));
  t.deepEqual(run(authz({ allow: [{ claims: { email_verified: false } }] }), user), forbidden('claims.email_verified'));
  // Objects and null never equal a value, even their text form.
  t.deepEqual(run(authz({ allow: [{ claims: { org: '[object Object]' } }] }), user), forbidden('claims.org'));
  t.deepEqual(run(authz({ allow: [{ claims: { nothing: 'null' } }] }), user), forbidden('claims.nothing'));
  // Consumer metadata is matched as claims.
  t.is(run(authz({ allow: [{ kinds: ['consumer'], claims: { plan: 'gold' } }] }), consumer), null);
});

test('claims: {in}, {regex} (whole value), {present}', (t) => {
  t.is(run(authz({ allow: [{ claims: { 'org.id': { in: ['acme', 'globex'] } } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { age: { in: [41, 42] } } }] }), user), null);
  t.deepEqual(run(authz({ allow: [{ claims: { 'org.id': { in: ['globex'] } } }] }), user), forbidden('claims.org.id'));
  t.is(run(authz({ allow: [{ claims: { 'org.id': { regex: 'ac.e' } } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { age: { regex: '[0-9]+' } } }] }), user), null);
  // The regex must match the whole value.
  t.deepEqual(run(authz({ allow: [{ claims: { 'org.id': { regex: 'cm' } } }] }), user), forbidden('claims.org.id'));
  t.deepEqual(run(authz({ allow: [{ claims: { 'org.id': { regex: 'acm|x' } } }] }), user), forbidden('claims.org.id'));
  t.is(run(authz({ allow: [{ claims: { 'org.id': { present: true } } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { 'org.missing': { present: false } } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { nothing: { present: false } } }] }), user), null);
  t.deepEqual(run(authz({ allow: [{ claims: { 'org.id': { present: false } } }] }), user), forbidden('claims.org.id'));
  t.deepEqual(run(authz({ allow: [{ claims: { 'org.id.deeper': { present: true } } }] }), user), forbidden('claims.org.id.deeper'));
});

test('claims: an array claim matches when any element does', (t) => {
  t.is(run(authz({ allow: [{ claims: { groups: 'ops' } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { groups: { in: ['hr', 'eng'] } } }] }), user), null);
  t.is(run(authz({ allow: [{ claims: { groups: { regex: 'o.s' } } }] }), user), null);
  t.deepEqual(run(authz({ allow: [{ claims: { groups: 'hr' } }] }), user), forbidden('claims.groups'));
  t.deepEqual(run(authz({ allow: [{ claims: { groups: 'eng ops' } }] }), user), forbidden('claims.groups'));
});

test('claims: inherited properties are not claims', (t) => {
  for (const path of ['constructor', 'toString', '__proto__', 'org.constructor', 'groups.length', 'org.id.length']) {
    t.deepEqual(run(authz({ allow: [{ claims: { [path]: { present: true } } }] }), user), forbidden(`claims.${path}`), path);
  }
});

test('a rule is the AND of its conditions; allow is the OR of its rules', (t) => {
  const p = authz({
    allow: [
      { kinds: ['user'], scopes: ['orders:read'], claims: { 'org.id': 'globex' } },
      { kinds: ['service'], subjects: ['spiffe://cluster.local/ns/shop/sa/orders'] },
    ],
  });
  t.deepEqual(run(p, user), forbidden('claims.org.id', 'kinds'));
  t.is(run(p, { ...user, claims: { org: { id: 'globex' } } }), null);
  t.is(run(p, service), null);
  t.deepEqual(run(p, consumer), forbidden('kinds', 'kinds'));
});

test('deny is checked before allow', (t) => {
  const p = authz({
    allow: [{ authenticated: true }],
    deny: [{ kinds: ['consumer'], claims: { region: 'us' } }, { subjects: ['user-123'] }],
  });
  t.deepEqual(run(p, user), denied(2));
  t.is(run(p, consumer), null);
  t.deepEqual(run(p, { ...consumer, claims: { region: 'us' } }), denied(1));
  t.is(run(p, service), null);
  // Deny rules about identities do not match anonymous requests; allow then asks for one.
  t.deepEqual(run(p, null), AUTH_REQUIRED);
});

test('deny only: everything not denied passes, anonymous included', (t) => {
  const p = authz({ deny: [{ kinds: ['service'], subjects: ['spiffe://cluster.local/ns/shop/sa/orders'] }] });
  t.deepEqual(run(p, service), denied(1));
  t.is(run(p, user), null);
  t.is(run(p, null), null);
  t.deepEqual(run(authz({ deny: [{ authenticated: false }] }), null), denied(1));
});

test('401 only without an identity; with one it is 403 whatever failed', (t) => {
  const p = authz({ allow: [{ scopes: ['admin'] }, { kinds: ['service'] }] });
  t.deepEqual(run(p, null), AUTH_REQUIRED);
  t.deepEqual(run(p, user), forbidden('scopes', 'kinds'));
});

test('messages name the failed condition, never claim values or credentials', (t) => {
  const secretish = { ...user, subject: 'sub-SECRET', claims: { ...user.claims, org: { id: 'org-SECRET' }, token: 'eyJ-SECRET' } };
  const p = authz({ allow: [{ claims: { 'org.id': 'acme' } }, { subjects: ['someone'] }], deny: [{ claims: { token: { present: true } }, kinds: ['consumer'] }] });
  const r = run(p, secretish);
  t.is(r?.status, 403);
  t.false(r!.message!.includes('SECRET'));
  t.true(r!.message!.includes('claims.org.id'));
  t.true(r!.message!.includes('subjects'));
});

test('long rule lists are summarised in the message', (t) => {
  const p = authz({ allow: Array.from({ length: 8 }, (_, i) => ({ subjects: [`s${i}`] })) });
  t.is(run(p, user)!.message, 'no allow rule of policy "orders-authz" matches this identity (rule 1 failed on subjects; rule 2 failed on subjects; rule 3 failed on subjects; rule 4 failed on subjects; rule 5 failed on subjects; 3 more)');
});

test('compile errors are clear', (t) => {
  const bad = (cfg: AuthzPolicyConfig) => t.throws(() => authz(cfg))?.message ?? '';
  t.is(bad({}), 'policy "orders-authz" (authz): give allow, deny or both');
  t.regex(bad({ allow: [{ claims: { 'org.id': { regex: '(' } } }] }), /^policy "orders-authz" \(authz\): allow rule 1: claim "org.id": invalid regex: /);
  t.is(bad({ allow: [{ kinds: ['user'] }], deny: [{ claims: {} }] }), 'policy "orders-authz" (authz): deny rule 1: the rule has no conditions');
  t.is(bad({ allow: [{ scopes: [] }] }), 'policy "orders-authz" (authz): allow rule 1: scopes is empty (it could never match); remove it or list values');
  t.is(bad({ allow: [] }), 'policy "orders-authz" (authz): allow is empty; remove it or add rules');
  t.is(bad({ allow: [{ claims: { 'org..id': 'x' } }] }), 'policy "orders-authz" (authz): allow rule 1: claim path "org..id" has an empty segment');
  t.is(
    bad({ allow: [{ claims: { x: { in: ['a'], present: true } } }] }),
    'policy "orders-authz" (authz): allow rule 1: claim "x": give exactly one of in, regex, present',
  );
  t.is(bad({ rolesClaim: 'a..b', allow: [{ roles: ['x'] }] }), 'policy "orders-authz" (authz): claim path "a..b" has an empty segment');
});

test('a rule that can never match is reported in the log', (t) => {
  const warnings: string[] = [];
  const p = authz({ allow: [{ authenticated: false, kinds: ['user'] }] }, makeDeps(warnings));
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, /allow rule 1 has authenticated: false with identity conditions and never matches/);
  t.deepEqual(run(p, null), AUTH_REQUIRED);
  t.deepEqual(run(p, user), forbidden('authenticated'));
});

test('the policy keeps no state between requests', (t) => {
  const p = authz({ allow: [{ kinds: ['service'] }] });
  const ids = [service, user, null, consumer, service];
  const first = ids.map((i) => run(p, i));
  const again = ids.map((i) => run(p, i));
  t.deepEqual(first, again);
});

// ---- property-style: random rules and identities against a plain reference evaluator ----

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = ['user', 'consumer', 'service'] as const;
const SUBJECTS = ['u1', 'u2', 'spiffe://cluster.local/ns/shop/sa/orders', 'spiffe://cluster.local/ns/shop/sa/cart', 'c1'];
const CONSUMERS = ['c1', 'c2', 'c3'];
const SCOPES = ['read', 'write', 'admin', 'orders:read'];
const ROLES = ['viewer', 'editor', 'owner'];
const ORGS = ['acme', 'globex', 'initech'];
const GROUPS = ['eng', 'ops', 'hr'];
// Regexes with their meaning written out, so the reference does not reuse the implementation.
const REGEXES: Array<[string, (s: string) => boolean]> = [
  ['a.*', (s) => s.startsWith('a')],
  ['.*ch', (s) => s.endsWith('ch')],
  ['glob|ini', () => false],
  ['[0-9]', (s) => s.length === 1 && s >= '0' && s <= '9'],
];

type Ref = { kind: 'eq'; v: string | number | boolean } | { kind: 'in'; v: Array<string | number> } | { kind: 're'; i: number } | { kind: 'present'; v: boolean };

test('property: compiled rules agree with a reference evaluator (fixed seed)', (t) => {
  const r = rng(20240611);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const some = <T>(xs: readonly T[], min = 0): T[] => {
    const out = xs.filter(() => r() < 0.4);
    while (out.length < min) out.push(pick(xs));
    return [...new Set(out)];
  };

  const genIdentity = (): Identity | null => {
    if (r() < 0.15) return null;
    const kind = pick(KINDS);
    const claims: Record<string, unknown> = {};
    if (r() < 0.7) claims.org = { id: pick(ORGS), size: Math.floor(r() * 12) };
    if (r() < 0.6) claims.groups = some(GROUPS);
    if (r() < 0.5) claims.level = pick([1, 2, 3, '2', true, 'x']);
    return {
      kind,
      subject: pick(SUBJECTS),
      method: kind === 'user' ? 'jwt' : kind === 'consumer' ? 'api-key' : 'mtls',
      ...(kind === 'consumer' || r() < 0.1 ? { consumer: pick(CONSUMERS) } : {}),
      scopes: some(SCOPES),
      roles: some(ROLES),
      claims,
    };
  };

  const genRule = (): { rule: AuthzRuleConfig; claimRefs: Array<[string, Ref]> } => {
    const rule: AuthzRuleConfig = {};
    const claimRefs: Array<[string, Ref]> = [];
    while (Object.keys(rule).length === 0) {
      if (r() < 0.15) rule.authenticated = r() < 0.7;
      if (r() < 0.25) rule.kinds = some(KINDS, 1);
      if (r() < 0.2) rule.subjects = some(SUBJECTS, 1);
      if (r() < 0.15) rule.consumers = some(CONSUMERS, 1);
      if (r() < 0.25) rule.scopes = some(SCOPES, 1);
      if (r() < 0.2) rule.anyScopes = some(SCOPES, 1);
      if (r() < 0.2) rule.roles = some(ROLES, 1);
      if (r() < 0.2) rule.anyRoles = some(ROLES, 1);
      if (r() < 0.35) {
        const claims: Record<string, unknown> = {};
        for (const path of some(['org.id', 'org.size', 'groups', 'level', 'missing'], 1)) {
          const x = r();
          let ref: Ref;
          if (x < 0.3) ref = { kind: 'eq', v: pick<string | number | boolean>([...ORGS, ...GROUPS, 1, 2, '3', true, 'x']) };
          else if (x < 0.55) ref = { kind: 'in', v: some<string | number>([...ORGS, ...GROUPS, 1, 2, '3', 'x'], 1) };
          else if (x < 0.8) ref = { kind: 're', i: Math.floor(r() * REGEXES.length) };
          else ref = { kind: 'present', v: r() < 0.5 };
          claims[path] = ref.kind === 'eq' ? ref.v : ref.kind === 'in' ? { in: ref.v } : ref.kind === 're' ? { regex: REGEXES[ref.i]![0] } : { present: ref.v };
          claimRefs.push([path, ref]);
        }
        rule.claims = claims as AuthzRuleConfig['claims'];
      }
    }
    return { rule, claimRefs };
  };

  const claimAt = (claims: Record<string, unknown>, path: string): unknown => {
    let cur: unknown = claims;
    for (const s of path.split('.')) {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, s)) return undefined;
      cur = (cur as Record<string, unknown>)[s];
    }
    return cur;
  };
  const refClaim = (v: unknown, ref: Ref): boolean => {
    if (ref.kind === 'present') return (v !== undefined && v !== null) === ref.v;
    const one = (e: unknown): boolean => {
      if (typeof e !== 'string' && typeof e !== 'number' && typeof e !== 'boolean') return false;
      const s = String(e);
      if (ref.kind === 'eq') return s === String(ref.v);
      if (ref.kind === 'in') return ref.v.map(String).includes(s);
      return REGEXES[ref.i]![1](s);
    };
    return Array.isArray(v) ? v.some(one) : one(v);
  };
  const refRule = (g: { rule: AuthzRuleConfig; claimRefs: Array<[string, Ref]> }, id: Identity | null): boolean => {
    const { rule } = g;
    const identityConditions = Object.keys(rule).some((k) => k !== 'authenticated');
    if (id === null) return !identityConditions && rule.authenticated !== true;
    if (rule.authenticated === false) return false;
    if (rule.kinds && !rule.kinds.includes(id.kind)) return false;
    if (rule.subjects && !rule.subjects.includes(id.subject)) return false;
    if (rule.consumers && (id.consumer === undefined || !rule.consumers.includes(id.consumer))) return false;
    if (rule.scopes && !rule.scopes.every((s) => id.scopes.includes(s))) return false;
    if (rule.anyScopes && !rule.anyScopes.some((s) => id.scopes.includes(s))) return false;
    if (rule.roles && !rule.roles.every((s) => id.roles.includes(s))) return false;
    if (rule.anyRoles && !rule.anyRoles.some((s) => id.roles.includes(s))) return false;
    return g.claimRefs.every(([path, ref]) => refClaim(claimAt(id.claims as Record<string, unknown>, path), ref));
  };

  const seen = new Map<string, number>();
  for (let round = 0; round < 400; round++) {
    const allow = r() < 0.8 ? Array.from({ length: 1 + Math.floor(r() * 3) }, genRule) : undefined;
    const deny = r() < 0.5 || !allow ? Array.from({ length: 1 + Math.floor(r() * 2) }, genRule) : undefined;
    const cfg: AuthzPolicyConfig = {
      ...(allow ? { allow: allow.map((g) => g.rule) } : {}),
      ...(deny ? { deny: deny.map((g) => g.rule) } : {}),
    };
    const p = compileAuthz('orders-authz', cfg, makeDeps());
    for (let k = 0; k < 25; k++) {
      const id = genIdentity();
      const got = run(p, id);
      let want: string;
      const d = deny?.findIndex((g) => refRule(g, id)) ?? -1;
      if (d >= 0) want = `403 CW_AUTHZ_DENIED ${d + 1}`;
      else if (allow && !allow.some((g) => refRule(g, id))) want = id === null ? '401 CW_AUTH_REQUIRED' : '403 CW_AUTHZ_FORBIDDEN';
      else want = 'pass';
      const gotS =
        got === null ? 'pass' : got.code === 'CW_AUTHZ_DENIED' ? `403 CW_AUTHZ_DENIED ${/deny rule (\d+)/.exec(got.message!)![1]}` : `${got.status} ${got.code}`;
      if (gotS !== want) {
        t.fail(`round ${round}: ${JSON.stringify(cfg)} on ${JSON.stringify(id)}: got ${gotS}, want ${want}`);
        return;
      }
      const bucket = want.replace(/ \d+$/, '');
      seen.set(bucket, (seen.get(bucket) ?? 0) + 1);
    }
  }
  // Every outcome was exercised a fair number of times.
  for (const outcome of ['pass', '403 CW_AUTHZ_DENIED', '401 CW_AUTH_REQUIRED', '403 CW_AUTHZ_FORBIDDEN']) {
    t.true((seen.get(outcome) ?? 0) > 100, `${outcome}: ${seen.get(outcome) ?? 0}`);
  }
});

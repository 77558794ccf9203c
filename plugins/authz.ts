// authz: allow or refuse a request by its verified identity (a user, an API-key consumer or a
// service). The same rule language serves the gateway's routes and the mesh's
// service-to-service rules.
//
// Each rule compiles once into a closure: lists become sets, regexes are compiled, claim paths
// are split. A rule is the AND of its conditions; `allow` is the OR of its rules; `deny` rules
// are checked first.
import type { AuthzPolicyConfig, AuthzRuleConfig } from '../config/policy-model.ts';
import type { CompiledPolicy, Identity, PolicyDeps, PolicyResult, Verdict } from './policy.ts';

type Primitive = string | number | boolean;
type ClaimMatchConfig = Primitive | { in?: Primitive[]; regex?: string; present?: boolean };

/** A rule's test: null when it matches, else what failed (for messages). */
type RuleFn = (id: Identity | null, scopes: readonly string[], roles: readonly string[]) => string | null;
type Condition = (id: Identity, scopes: readonly string[], roles: readonly string[]) => boolean;

/** A rule failed because the request has no identity. */
const NO_IDENTITY = 'an authenticated identity';

const isPrimitive = (v: unknown): v is Primitive => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/**
 * A claim by path. A claim whose own name is the whole path wins ("https://example.com/roles");
 * otherwise the path is followed through nested objects ("org.id"). Only own properties count.
 */
export function compileClaimPath(path: string): (claims: Readonly<Record<string, unknown>>) => unknown {
  const segments = path.split('.');
  if (segments.some((s) => s === '')) throw new Error(`claim path ${JSON.stringify(path)} has an empty segment`);
  return (claims) => {
    if (claims === null || typeof claims !== 'object') return undefined;
    if (Object.hasOwn(claims, path)) return claims[path];
    if (segments.length === 1) return undefined;
    let cur: unknown = claims;
    for (const s of segments) {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, s)) return undefined;
      cur = (cur as Record<string, unknown>)[s];
    }
    return cur;
  };
}

/** A space-separated string or a list (of strings; numbers are taken as text) → names. */
function nameList(v: unknown): readonly string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.split(/\s+/).filter((s) => s !== '');
  if (Array.isArray(v)) {
    const out: string[] = [];
    for (const e of v) if (typeof e === 'string' || typeof e === 'number') out.push(String(e));
    return out;
  }
  return [];
}

function compileClaimMatch(path: string, m: ClaimMatchConfig): (v: unknown) => boolean {
  let one: (v: Primitive) => boolean;
  if (isPrimitive(m)) {
    const want = String(m);
    one = (v) => String(v) === want;
  } else if (m !== null && typeof m === 'object') {
    const keys = Object.keys(m).filter((k) => (m as Record<string, unknown>)[k] !== undefined);
    if (keys.length !== 1) throw new Error(`claim ${JSON.stringify(path)}: give exactly one of in, regex, present`);
    if (m.present !== undefined) {
      const want = m.present === true;
      return (v) => (v !== undefined && v !== null) === want;
    }
    if (m.in !== undefined) {
      if (!Array.isArray(m.in) || m.in.length === 0) throw new Error(`claim ${JSON.stringify(path)}: "in" needs at least one value`);
      const set = new Set(m.in.map(String));
      one = (v) => set.has(String(v));
    } else {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${m.regex})$`);
      } catch (err) {
        throw new Error(`claim ${JSON.stringify(path)}: invalid regex: ${(err as Error).message}`);
      }
      one = (v) => re.test(String(v));
    }
  } else {
    throw new Error(`claim ${JSON.stringify(path)}: expected a value or one of {in}, {regex}, {present}`);
  }
  return (v) => {
    if (isPrimitive(v)) return one(v);
    if (Array.isArray(v)) {
      for (const e of v) if (isPrimitive(e) && one(e)) return true;
    }
    return false;
  };
}

function nonEmpty(field: string, list: readonly unknown[] | undefined): void {
  if (list !== undefined && list.length === 0) throw new Error(`${field} is empty (it could never match); remove it or list values`);
}

function compileRule(rule: AuthzRuleConfig): { fn: RuleFn; usesScopes: boolean; usesRoles: boolean; contradictory: boolean } {
  const conds: Array<{ label: string; test: Condition }> = [];
  for (const f of ['kinds', 'subjects', 'consumers', 'scopes', 'anyScopes', 'roles', 'anyRoles'] as const) nonEmpty(f, rule[f]);
  if (rule.kinds) {
    const set = new Set<string>(rule.kinds);
    conds.push({ label: 'kinds', test: (id) => set.has(id.kind) });
  }
  if (rule.subjects) {
    const set = new Set(rule.subjects);
    conds.push({ label: 'subjects', test: (id) => set.has(id.subject) });
  }
  if (rule.consumers) {
    const set = new Set(rule.consumers);
    conds.push({ label: 'consumers', test: (id) => id.consumer !== undefined && set.has(id.consumer) });
  }
  const all = (label: string, want: string[], pick: (s: readonly string[], r: readonly string[]) => readonly string[]) => {
    const list = [...new Set(want)];
    conds.push({
      label,
      test: (_id, s, r) => {
        const have = pick(s, r);
        for (const w of list) if (!have.includes(w)) return false;
        return true;
      },
    });
  };
  const any = (label: string, want: string[], pick: (s: readonly string[], r: readonly string[]) => readonly string[]) => {
    const set = new Set(want);
    conds.push({
      label,
      test: (_id, s, r) => {
        for (const h of pick(s, r)) if (set.has(h)) return true;
        return false;
      },
    });
  };
  const scopesOf = (s: readonly string[]) => s;
  const rolesOf = (_s: readonly string[], r: readonly string[]) => r;
  if (rule.scopes) all('scopes', rule.scopes, scopesOf);
  if (rule.anyScopes) any('anyScopes', rule.anyScopes, scopesOf);
  if (rule.roles) all('roles', rule.roles, rolesOf);
  if (rule.anyRoles) any('anyRoles', rule.anyRoles, rolesOf);
  for (const [path, m] of Object.entries(rule.claims ?? {})) {
    const get = compileClaimPath(path);
    const match = compileClaimMatch(path, m as ClaimMatchConfig);
    conds.push({ label: `claims.${path}`, test: (id) => match(get(id.claims)) });
  }
  const authenticated = rule.authenticated;
  if (conds.length === 0 && authenticated === undefined) throw new Error('the rule has no conditions');
  const needsIdentity = conds.length > 0 || authenticated === true;
  const tests = conds.map((c) => c.test);
  const labels = conds.map((c) => c.label);
  const n = tests.length;
  const fn: RuleFn = (id, scopes, roles) => {
    if (id === null) return needsIdentity ? NO_IDENTITY : null;
    if (authenticated === false) return 'authenticated';
    for (let i = 0; i < n; i++) if (!tests[i]!(id, scopes, roles)) return labels[i]!;
    return null;
  };
  return {
    fn,
    usesScopes: rule.scopes !== undefined || rule.anyScopes !== undefined,
    usesRoles: rule.roles !== undefined || rule.anyRoles !== undefined,
    contradictory: authenticated === false && conds.length > 0,
  };
}

const EMPTY: readonly string[] = Object.freeze([]);

export function compileAuthz(name: string, cfg: AuthzPolicyConfig, deps: PolicyDeps): CompiledPolicy {
  const where = `policy "${name}" (authz)`;
  if (cfg.allow === undefined && cfg.deny === undefined) throw new Error(`${where}: give allow, deny or both`);
  const compileList = (field: 'allow' | 'deny') => {
    const rules = cfg[field];
    if (rules === undefined) return null;
    if (rules.length === 0) throw new Error(`${where}: ${field} is empty; remove it or add rules`);
    return rules.map((r, i) => {
      try {
        const c = compileRule(r);
        if (c.contradictory) {
          deps.log.warn({ policy: name, rule: `${field}[${i}]` }, `${where}: ${field} rule ${i + 1} has authenticated: false with identity conditions and never matches`);
        }
        return c;
      } catch (err) {
        throw new Error(`${where}: ${field} rule ${i + 1}: ${(err as Error).message}`);
      }
    });
  };
  const allow = compileList('allow');
  const deny = compileList('deny');
  const every = [...(allow ?? []), ...(deny ?? [])];
  let scopesClaim: ((c: Readonly<Record<string, unknown>>) => unknown) | null = null;
  let rolesClaim: ((c: Readonly<Record<string, unknown>>) => unknown) | null = null;
  try {
    if (cfg.scopesClaim !== undefined) scopesClaim = compileClaimPath(cfg.scopesClaim);
    if (cfg.rolesClaim !== undefined) rolesClaim = compileClaimPath(cfg.rolesClaim);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  const usesScopes = every.some((r) => r.usesScopes);
  const usesRoles = every.some((r) => r.usesRoles);
  const allowFns = allow?.map((r) => r.fn) ?? null;
  const denyFns = deny?.map((r) => r.fn) ?? EMPTY_RULES;

  // Scopes and roles: from the claim when one is configured and the identity has it, else the
  // identity's own (an API-key consumer's configured scopes, a token's `scope`).
  const scopesOf = (id: Identity): readonly string[] =>
    !usesScopes ? EMPTY : (scopesClaim === null ? undefined : nameList(scopesClaim(id.claims))) ?? id.scopes;
  const rolesOf = (id: Identity): readonly string[] =>
    !usesRoles ? EMPTY : (rolesClaim === null ? undefined : nameList(rolesClaim(id.claims))) ?? id.roles;

  return {
    name,
    kind: 'authz',
    phase: 'authz',
    run(ctx): PolicyResult {
      const id = ctx.identity;
      const scopes = id === null ? EMPTY : scopesOf(id);
      const roles = id === null ? EMPTY : rolesOf(id);
      for (let i = 0; i < denyFns.length; i++) {
        if (denyFns[i]!(id, scopes, roles) === null) {
          return { status: 403, code: 'CW_AUTHZ_DENIED', message: `refused by deny rule ${i + 1} of policy "${name}"` };
        }
      }
      if (allowFns === null) return null;
      let failed: string[] | null = null;
      for (let i = 0; i < allowFns.length; i++) {
        const why = allowFns[i]!(id, scopes, roles);
        if (why === null) return null;
        (failed ??= []).push(why);
      }
      if (id === null) return authRequired();
      return forbidden(name, failed!);
    },
  };
}

const EMPTY_RULES: readonly RuleFn[] = Object.freeze([]);

function authRequired(): Verdict {
  return {
    status: 401,
    code: 'CW_AUTH_REQUIRED',
    message: 'authentication required',
    headers: [['www-authenticate', 'Bearer realm="causeway"']],
  };
}

function forbidden(policy: string, failed: string[]): Verdict {
  const shown = failed.slice(0, 5).map((why, i) => `rule ${i + 1} failed on ${why}`);
  if (failed.length > 5) shown.push(`${failed.length - 5} more`);
  return {
    status: 403,
    code: 'CW_AUTHZ_FORBIDDEN',
    message: `no allow rule of policy "${policy}" matches this identity (${shown.join('; ')})`,
  };
}

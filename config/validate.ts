// Validation of a (merged) config value: the JSON Schema from config/model.ts, with ajv's
// errors turned into one clear message each, then the semantic checks a schema cannot express.
import { METHODS } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ConfigFile, type ConfigModel, type RouteConfig } from './model.ts';
import type { ConfigIssue } from './issues.ts';
import { findShadowedRoutes } from './routes.ts';
import { patternText } from './schema-text.ts';
import { formatPath, shortLoc, type Loc, type Segment } from './source-map.ts';

/** Finds where a path of the config came from (undefined: no source locations). */
export type Locate = (segs: readonly Segment[], kind?: 'key' | 'value') => Loc | undefined;

/** An issue before it has a location. `kind: 'key'` points at the key rather than its value. */
export interface RawIssue {
  segs: Segment[];
  message: string;
  kind?: 'key';
  /** An explicit location (e.g. the second of two definitions), instead of the path's own. */
  at?: Loc;
}

export function toIssue(raw: RawIssue, locate?: Locate): ConfigIssue {
  const loc = raw.at ?? locate?.(raw.segs, raw.kind);
  const issue: ConfigIssue = { path: formatPath(raw.segs), message: raw.message };
  if (loc) {
    issue.file = loc.file;
    issue.line = loc.line;
    issue.column = loc.column;
  }
  return issue;
}

// ---------------------------------------------------------------------------------------------
// Schema

type Schema = Record<string, unknown>;

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    // ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module.
    const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
      addFormatsModule) as (a: Ajv) => Ajv;
    addFormats(ajv);
    compiled = ajv.compile(JSON.parse(JSON.stringify(ConfigFile)) as Schema);
  }
  return compiled;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'an object',
  null: 'null',
};

const PLURAL: Record<string, string> = {
  string: 'strings',
  integer: 'whole numbers',
  number: 'numbers',
  boolean: 'booleans',
  object: 'objects',
  array: 'lists',
};

function typeWords(type: unknown): string {
  const types = Array.isArray(type) ? type : [type];
  return types.map((t) => TYPE_WORDS[String(t)] ?? String(t)).join(' or ');
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)})`;
    case 'number':
      return Number.isInteger(v) ? `a number (${v})` : `a fractional number (${v})`;
    case 'boolean':
      return `a boolean (${v})`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

function unionExpectation(union: Schema): string {
  switch (union.title) {
    case 'duration':
      return 'expected a duration like "2s" or "250ms"';
    case 'endpoint':
      return 'expected an endpoint URL like "http://10.0.0.5:8080" or an object {url, weight}';
    case 'string match':
      return 'expected a string or one of {exact}, {prefix}, {regex}, {present: true|false}';
  }
  const branches = (union.anyOf as Schema[] | undefined) ?? [];
  const words = branches.map((b) => {
    const items = b.items as Schema | undefined;
    if (b.type === 'array' && typeof items?.type === 'string') return `a list of ${PLURAL[items.type] ?? items.type}`;
    return typeWords(b.type);
  });
  return `expected ${[...new Set(words)].join(' or ')}`;
}

/** JSON pointer → path segments (array indexes become numbers). */
function pointerToSegs(pointer: string, data: unknown): Segment[] {
  if (pointer === '') return [];
  const segs: Segment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const n = Number(token);
      segs.push(n);
      cur = cur[n];
    } else {
      segs.push(token);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[token] : undefined;
    }
  }
  return segs;
}

const within = (e: ErrorObject, a: ErrorObject) =>
  e.schemaPath.startsWith(`${a.schemaPath}/`) &&
  (e.instancePath === a.instancePath || e.instancePath.startsWith(`${a.instancePath}/`));

/**
 * Replaces each anyOf error and its branches' errors by what is useful: the errors of the one
 * branch whose type fits the value, or a single "expected …" message.
 */
function collapseUnions(errors: ErrorObject[]): Array<ErrorObject | { custom: string; instancePath: string }> {
  const live = new Set<ErrorObject>(errors);
  const replacement = new Map<ErrorObject, string>();
  const anyOfs = errors
    .filter((e) => e.keyword === 'anyOf')
    .sort((a, b) => a.schemaPath.length - b.schemaPath.length || a.instancePath.length - b.instancePath.length);
  for (const a of anyOfs) {
    if (!live.has(a)) continue;
    const union = (a.parentSchema ?? {}) as Schema;
    const branchCount = Array.isArray(a.schema) ? a.schema.length : 0;
    const inner = errors.filter((e) => e !== a && live.has(e) && within(e, a));
    const branchOf = (e: ErrorObject) => Number(e.schemaPath.slice(a.schemaPath.length + 1).split('/')[0]);
    const mismatched = new Set(
      inner
        .filter((e) => e.keyword === 'type' && e.instancePath === a.instancePath && e.schemaPath === `${a.schemaPath}/${branchOf(e)}/type`)
        .map(branchOf),
    );
    const candidates = [...Array(branchCount).keys()].filter((i) => !mismatched.has(i));
    if (union.title !== 'duration' && candidates.length === 1) {
      // Keep the fitting branch's own errors; the anyOf error itself says nothing more.
      live.delete(a);
      for (const e of inner) if (branchOf(e) !== candidates[0]) live.delete(e);
    } else {
      for (const e of inner) live.delete(e);
      const got = candidates.length === 0 ? `, got ${describeValue(a.data)}` : '';
      replacement.set(a, unionExpectation(union) + got);
    }
  }
  const out: Array<ErrorObject | { custom: string; instancePath: string }> = [];
  for (const e of errors) {
    if (!live.has(e)) continue;
    const custom = replacement.get(e);
    out.push(custom !== undefined ? { custom, instancePath: e.instancePath } : e);
  }
  return out;
}

function propertyNames(schema: Schema | undefined): string[] {
  const props = schema?.properties as Record<string, unknown> | undefined;
  return props ? Object.keys(props).filter((k) => k !== '$schema') : [];
}

function errorToRaw(e: ErrorObject, data: unknown): RawIssue {
  const segs = pointerToSegs(e.instancePath, data);
  const parent = e.parentSchema as Schema | undefined;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const patterns = parent?.patternProperties as Record<string, unknown> | undefined;
      if (patterns && !parent?.properties) {
        const text = patternText(Object.keys(patterns)[0] ?? '');
        return { segs: [...segs, key], kind: 'key', message: `invalid ${text.keyLabel} "${key}": ${text.message}` };
      }
      return {
        segs: [...segs, key],
        kind: 'key',
        message: `unknown field "${key}" (allowed: ${propertyNames(parent).join(', ')})`,
      };
    }
    case 'required':
      return { segs, message: `missing required field "${String(params.missingProperty)}"` };
    case 'type':
      return { segs, message: `expected ${typeWords(params.type)}, got ${describeValue(e.data)}` };
    case 'pattern':
      return { segs, message: patternText(String(params.pattern)).message };
    case 'minLength':
      return { segs, message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long` };
    case 'maxLength':
      return { segs, message: `must be at most ${String(params.limit)} characters long` };
    case 'minItems':
      return { segs, message: params.limit === 1 ? 'must not be an empty list' : `must have at least ${String(params.limit)} items` };
    case 'maxItems':
      return { segs, message: `must have at most ${String(params.limit)} items` };
    case 'minimum':
      return { segs, message: `must be at least ${String(params.limit)}, got ${String(e.data)}` };
    case 'maximum':
      return { segs, message: `must be at most ${String(params.limit)}, got ${String(e.data)}` };
    case 'exclusiveMinimum':
      return { segs, message: `must be more than ${String(params.limit)}, got ${String(e.data)}` };
    case 'exclusiveMaximum':
      return { segs, message: `must be less than ${String(params.limit)}, got ${String(e.data)}` };
    case 'minProperties':
    case 'maxProperties': {
      const names = propertyNames(parent);
      const present = e.data && typeof e.data === 'object' ? Object.keys(e.data) : [];
      if (names.length > 0 && parent?.minProperties === 1 && parent?.maxProperties === 1) {
        return {
          segs,
          message:
            present.length === 0
              ? `must set exactly one of ${names.join(', ')}`
              : `must set exactly one of ${names.join(', ')} (found: ${present.join(', ')})`,
        };
      }
      return {
        segs,
        message:
          e.keyword === 'minProperties'
            ? `must have at least ${String(params.limit)} fields`
            : `must have at most ${String(params.limit)} fields`,
      };
    }
    case 'enum':
      return {
        segs,
        message: `expected one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(e.data)}`,
      };
    case 'const':
      return { segs, message: `expected ${JSON.stringify(params.allowedValue)}, got ${describeValue(e.data)}` };
    case 'format':
      return { segs, message: `must be a valid ${String(params.format)}` };
    case 'uniqueItems':
      return { segs, message: `must not repeat items (items ${String(params.j)} and ${String(params.i)} are equal)` };
    default:
      return { segs, message: e.message ?? `fails the "${e.keyword}" rule` };
  }
}

/** Schema errors for a config value, one clear message each, deduplicated. */
export function schemaIssues(data: unknown): RawIssue[] {
  const validate = validator();
  if (validate(data)) return [];
  const out: RawIssue[] = [];
  const seen = new Set<string>();
  for (const e of collapseUnions(validate.errors ?? [])) {
    const raw: RawIssue =
      'custom' in e ? { segs: pointerToSegs(e.instancePath, data), message: e.custom } : errorToRaw(e, data);
    const key = `${formatPath(raw.segs)}\0${raw.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(raw);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const KNOWN_METHODS = new Set(METHODS);
const DEFAULT_GATEWAY_LISTEN = { host: '0.0.0.0', port: 8080 };
const DEFAULT_ADMIN_LISTEN = { host: '127.0.0.1', port: 9901 };
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '*']);

/** `:name` segments of a path pattern. */
function pathParams(pattern: string): string[] {
  return pattern
    .split('/')
    .filter((s) => s.startsWith(':') && s.length > 1)
    .map((s) => s.slice(1));
}

function regexError(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why an address or CIDR is not valid, or undefined. */
function addressError(entry: string): string | undefined {
  const bad = `"${entry}" is not a valid IP address or CIDR`;
  const slash = entry.indexOf('/');
  if (slash === -1) return isIP(entry) === 0 ? bad : undefined;
  const addr = entry.slice(0, slash);
  const bits = entry.slice(slash + 1);
  const family = isIP(addr);
  if (family === 0 || !/^[0-9]{1,3}$/.test(bits)) return bad;
  const prefix = Number(bits);
  if (prefix > (family === 4 ? 32 : 128)) return `${bad}: the prefix length must be at most ${family === 4 ? 32 : 128}`;
  try {
    new BlockList().addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return bad;
  }
  return undefined;
}

function endpointUrlError(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a valid URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `"${url}" must use http:// or https://`;
  if (u.username || u.password) return `endpoint URL "${url}" must not contain credentials`;
  if (u.pathname !== '/' && u.pathname !== '') return `endpoint URL "${url}" must not have a path ("${u.pathname}"); use a route rewrite instead`;
  if (u.search || url.includes('?')) return `endpoint URL "${url}" must not have a query`;
  if (u.hash || url.includes('#')) return `endpoint URL "${url}" must not have a fragment`;
  return undefined;
}

/**
 * Checks a schema cannot express. `clean(segs)` says whether that part of the config passed the
 * schema (and every earlier check); a check only looks at clean parts.
 */
export function semanticIssues(
  model: Record<string, unknown>,
  clean: (segs: readonly Segment[]) => boolean,
  locate?: Locate,
): RawIssue[] {
  const out: RawIssue[] = [];
  const where = (segs: Segment[]) => shortLoc(locate?.(segs)) ?? formatPath(segs);

  // gateway
  const gateway = isObject(model.gateway) ? model.gateway : undefined;
  if (gateway && Array.isArray(gateway.trustedProxies)) {
    gateway.trustedProxies.forEach((entry, i) => {
      const segs = ['gateway', 'trustedProxies', i];
      if (typeof entry !== 'string' || !clean(segs)) return;
      const err = addressError(entry.trim());
      if (err) out.push({ segs, message: err });
    });
  }
  const admin = isObject(model.admin) ? model.admin : undefined;
  if ((gateway?.listen !== undefined || admin?.listen !== undefined) && clean(['gateway', 'listen']) && clean(['admin', 'listen'])) {
    const g = (gateway?.listen as { host: string; port: number } | undefined) ?? DEFAULT_GATEWAY_LISTEN;
    const a = (admin?.listen as { host: string; port: number } | undefined) ?? DEFAULT_ADMIN_LISTEN;
    const sameHost =
      g.host.toLowerCase() === a.host.toLowerCase() || WILDCARD_HOSTS.has(g.host) || WILDCARD_HOSTS.has(a.host);
    if (g.port !== 0 && g.port === a.port && sameHost) {
      const adminSet = admin?.listen !== undefined;
      const gwSet = gateway?.listen !== undefined;
      const segs = adminSet ? ['admin', 'listen'] : ['gateway', 'listen'];
      const other = adminSet
        ? gwSet
          ? `gateway.listen (${where(['gateway', 'listen'])})`
          : 'the default gateway.listen'
        : 'the default admin.listen';
      const mine = adminSet ? a : g;
      const theirs = adminSet ? g : a;
      out.push({
        segs,
        message: `${mine.host}:${mine.port} clashes with ${other} ${theirs.host}:${theirs.port}; the gateway and admin listeners need different addresses (or port 0)`,
      });
    }
  }

  // upstreams
  const upstreams = isObject(model.upstreams) ? model.upstreams : undefined;
  const upstreamNames = upstreams ? Object.keys(upstreams) : [];
  for (const name of upstreamNames) {
    const up = upstreams![name];
    if (!isObject(up) || !Array.isArray(up.endpoints)) continue;
    const endpointsSegs = ['upstreams', name, 'endpoints'];
    let total = 0;
    let allClean = true;
    up.endpoints.forEach((ep, i) => {
      const segs: Segment[] = [...endpointsSegs, i];
      if (!clean(segs)) {
        allClean = false;
        return;
      }
      const url = typeof ep === 'string' ? ep : isObject(ep) ? ep.url : undefined;
      const urlSegs = typeof ep === 'string' ? segs : [...segs, 'url'];
      total += isObject(ep) && typeof ep.weight === 'number' ? ep.weight : 1;
      if (typeof url === 'string') {
        const err = endpointUrlError(url);
        if (err) out.push({ segs: urlSegs, message: err });
      }
    });
    if (allClean && up.endpoints.length > 0 && total <= 0) {
      out.push({ segs: endpointsSegs, message: 'endpoint weights add up to 0: at least one endpoint needs a weight above 0' });
    }
  }

  // routes
  const routes = Array.isArray(model.routes) ? model.routes : [];
  const firstByName = new Map<string, number>();
  routes.forEach((route, i) => {
    if (!isObject(route)) return;
    const r: Segment[] = ['routes', i];
    const at = (...rest: Segment[]) => [...r, ...rest];

    if (typeof route.name === 'string' && clean(at('name'))) {
      const first = firstByName.get(route.name);
      if (first === undefined) firstByName.set(route.name, i);
      else out.push({ segs: at('name'), message: `route name "${route.name}" is already used by routes[${first}] (${where(['routes', first])})` });
    }

    const hasUpstream = route.upstream !== undefined;
    const hasBackends = route.backends !== undefined;
    if (hasUpstream && hasBackends) {
      out.push({ segs: r, message: 'set either "upstream" or "backends", not both' });
    } else if (!hasUpstream && !hasBackends) {
      out.push({ segs: r, message: 'missing a target: set "upstream" or "backends"' });
    }
    const known = upstreamNames.length > 0 ? `known: ${upstreamNames.join(', ')}` : 'no upstreams are defined';
    if (typeof route.upstream === 'string' && clean(at('upstream')) && !upstreamNames.includes(route.upstream)) {
      out.push({ segs: at('upstream'), message: `unknown upstream "${route.upstream}" (${known})` });
    }
    if (Array.isArray(route.backends) && clean(at('backends'))) {
      let total = 0;
      route.backends.forEach((b, j) => {
        if (!isObject(b)) return;
        total += typeof b.weight === 'number' ? b.weight : 1;
        if (typeof b.upstream === 'string' && !upstreamNames.includes(b.upstream)) {
          out.push({ segs: at('backends', j, 'upstream'), message: `unknown upstream "${b.upstream}" (${known})` });
        }
      });
      if (route.backends.length > 0 && total <= 0) {
        out.push({ segs: at('backends'), message: 'backend weights add up to 0: at least one backend needs a weight above 0' });
      }
    }

    const match = isObject(route.match) ? route.match : undefined;
    if (match) {
      const kinds = ['path', 'prefix', 'regex'].filter((k) => match[k] !== undefined);
      if (kinds.length > 1) {
        out.push({
          segs: at('match'),
          message: `use only one of "path", "prefix" or "regex" (found: ${kinds.join(', ')})`,
        });
      }
      if (typeof match.regex === 'string' && clean(at('match', 'regex'))) {
        const err = regexError(match.regex);
        if (err) out.push({ segs: at('match', 'regex'), message: err });
      }
      if (Array.isArray(match.methods)) {
        const seen = new Set<string>();
        match.methods.forEach((m, j) => {
          if (typeof m !== 'string' || !clean(at('match', 'methods', j))) return;
          if (!KNOWN_METHODS.has(m)) out.push({ segs: at('match', 'methods', j), message: `unknown HTTP method "${m}"` });
          else if (seen.has(m)) out.push({ segs: at('match', 'methods', j), message: `method "${m}" is listed twice` });
          seen.add(m);
        });
      }
      for (const field of ['headers', 'query'] as const) {
        const conds = match[field];
        if (!isObject(conds)) continue;
        const byLower = new Map<string, string>();
        for (const [name, cond] of Object.entries(conds)) {
          const segs = at('match', field, name);
          if (field === 'headers') {
            const lower = name.toLowerCase();
            const first = byLower.get(lower);
            if (first !== undefined) {
              out.push({ segs, kind: 'key', message: `header "${name}" is already matched as "${first}" (header names are case-insensitive)` });
            } else {
              byLower.set(lower, name);
            }
          } else if (name === '') {
            out.push({ segs, kind: 'key', message: 'query parameter name must not be empty' });
          }
          if (isObject(cond) && typeof cond.regex === 'string' && clean(segs)) {
            const err = regexError(cond.regex);
            if (err) out.push({ segs: [...segs, 'regex'], message: err });
          }
        }
      }
    }

    const rewrite = isObject(route.rewrite) ? route.rewrite : undefined;
    if (rewrite && clean(at('rewrite'))) {
      if (rewrite.prefix !== undefined && match?.prefix === undefined) {
        out.push({ segs: at('rewrite', 'prefix'), message: 'rewrite.prefix needs match.prefix (the prefix it replaces)' });
      }
      if (typeof rewrite.path === 'string') {
        const wanted = pathParams(rewrite.path);
        const have = typeof match?.path === 'string' ? pathParams(match.path) : [];
        for (const p of wanted) {
          if (have.includes(p)) continue;
          out.push({
            segs: at('rewrite', 'path'),
            message:
              typeof match?.path === 'string'
                ? `uses ":${p}" but match.path "${match.path}" has no such parameter${have.length ? ` (has: ${have.map((h) => `:${h}`).join(', ')})` : ''}`
                : `uses ":${p}" but the route has no match.path to take it from`,
          });
        }
      }
    }
  });

  // Shadowing needs a wholly valid route list (the route table compiles every regex).
  const routesClean = clean(['routes']) && !out.some((o) => o.segs[0] === 'routes');
  if (routes.length > 1 && routesClean) {
    for (const { index, by } of findShadowedRoutes(routes as RouteConfig[])) {
      const name = (routes[index] as { name?: string }).name;
      const byName = (routes[by] as { name?: string }).name;
      out.push({
        segs: ['routes', index],
        message: `route "${name}" can never match: route "${byName}" (${where(['routes', by])}) takes every request it would`,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Both together, for a value with or without source locations

/** Path-prefix test: is `path` equal to `base` or inside it? */
export function isWithin(path: string, base: string): boolean {
  if (base === '') return true;
  if (!path.startsWith(base)) return false;
  const next = path.charAt(base.length);
  return next === '' || next === '.' || next === '[';
}

/**
 * Validates a config value (already merged and interpolated). `tainted` paths already have
 * issues (e.g. a missing environment variable); nothing more is reported inside them.
 */
export function validateValue(
  data: unknown,
  locate?: Locate,
  tainted: readonly string[] = [],
): { ok: true; model: ConfigModel } | { ok: false; issues: ConfigIssue[] } {
  const notTainted = (raw: RawIssue) => {
    const p = formatPath(raw.segs);
    return !tainted.some((t) => isWithin(p, t));
  };
  const raws = schemaIssues(data).filter(notTainted);
  const dirty = [...tainted, ...raws.map((r) => formatPath(r.segs))];
  // A part is clean when no issue lies at or inside it.
  const clean = (segs: readonly Segment[]) => {
    const p = formatPath(segs);
    return !dirty.some((d) => isWithin(d, p));
  };
  if (isObject(data)) {
    for (const raw of semanticIssues(data, clean, locate)) if (notTainted(raw)) raws.push(raw);
  }
  if (raws.length === 0 && tainted.length === 0) return { ok: true, model: data as ConfigModel };
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const raw of raws) {
    const issue = toIssue(raw, locate);
    const key = `${issue.path}\0${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return { ok: false, issues };
}

/**
 * Validates a config model that did not come from files (e.g. one pushed by the control
 * plane): the same schema and semantic checks, issues without file locations.
 */
export function validateConfig(data: unknown): { ok: true; model: ConfigModel } | { ok: false; issues: ConfigIssue[] } {
  return validateValue(data);
}

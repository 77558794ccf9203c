// Validation of a (merged) config value: the JSON Schema from config/model.ts, with ajv's
// errors turned into one clear message each, then the semantic checks a schema cannot express.
import { closeSync, openSync, statSync } from 'node:fs';
import { METHODS, validateHeaderValue } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { ErrorObject } from 'ajv';
import { parseCidr } from './cidr.ts';
import { parseDuration } from './duration.ts';
import type { ConfigModel, DurationValue, RouteConfig } from './model.ts';
import type { ConfigIssue } from './issues.ts';
import { findShadowedRoutes } from './routes.ts';
import { patternText } from './schema-text.ts';
import { validate as generatedValidate } from './schema-validator.generated.ts';
import { byteSizeError } from './size.ts';
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

/** The schema validator, compiled ahead of time by `npm run schema` (config/gen-validator.ts). */
const validator = generatedValidate as unknown as { (data: unknown): boolean; errors?: ErrorObject[] | null };

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

/** Titled unions whose branches' own errors never help: always one "expected …" message. */
const ALWAYS_COLLAPSE = new Set(['duration', 'size']);

function unionExpectation(union: Schema): string {
  switch (union.title) {
    case 'duration':
      return 'expected a duration like "2s" or "250ms"';
    case 'size':
      return 'expected a size like "1MiB" or a number of bytes';
    case 'endpoint':
      return 'expected an endpoint URL like "http://10.0.0.5:8080" or an object {url, weight}';
    case 'string match':
      return 'expected a string or one of {exact}, {prefix}, {regex}, {present: true|false}';
    case 'claim match':
      return 'expected a value (a string, number, true or false) or one of {in: [...]}, {regex}, {present: true|false}';
  }
  const branches = (union.anyOf as Schema[] | undefined) ?? [];
  // A choice of literals ("RS256" | "RS384" | …): name them, unquoted.
  if (branches.length > 0 && branches.every((b) => b.const !== undefined)) {
    return `expected one of ${branches.map((b) => String(b.const)).join(', ')}`;
  }
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
    if (!ALWAYS_COLLAPSE.has(String(union.title)) && candidates.length === 1) {
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

/** Values never repeated in a message (they are credentials): consumer keys, jwt secrets, the Redis URL. */
function isSecret(segs: readonly Segment[]): boolean {
  const [a, , c, d] = segs;
  return (
    (a === 'consumers' && c === 'keys') ||
    (a === 'policies' && c === 'jwt' && d === 'secret') ||
    (a === 'redis' && segs[1] === 'url')
  );
}

/** "{header}, {cookie}, {query}" for an object that takes exactly one of its fields. */
const exactlyOneOf = (schema: Schema | undefined): boolean =>
  schema?.type === 'object' && schema.minProperties === 1 && schema.maxProperties === 1 && propertyNames(schema).length > 0;

function policyError(e: ErrorObject, segs: Segment[], kinds: string[]): RawIssue | undefined {
  const params = e.params as Record<string, unknown>;
  const present = e.data && typeof e.data === 'object' ? Object.keys(e.data) : [];
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      return { segs: [...segs, key], kind: 'key', message: `unknown policy kind "${key}" (kinds: ${kinds.join(', ')})` };
    }
    case 'minProperties':
      return { segs, message: `a policy needs one of: ${kinds.join(', ')}` };
    case 'maxProperties': {
      // An unknown kind next to a known one is already reported as unknown.
      const found = present.filter((k) => kinds.includes(k));
      if (found.length < 2) return undefined;
      return {
        segs,
        message: `a policy has exactly one kind; found ${found.length}: ${found.join(', ')} (give each its own name and list them all)`,
      };
    }
  }
  return undefined;
}

function errorToRaw(e: ErrorObject, data: unknown): RawIssue | undefined {
  const segs = pointerToSegs(e.instancePath, data);
  const parent = e.parentSchema as Schema | undefined;
  const params = e.params as Record<string, unknown>;
  if (parent?.title === 'policy' && e.keyword !== 'type') {
    const raw = policyError(e, segs, propertyNames(parent));
    if (raw || e.keyword === 'maxProperties') return raw;
  }
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
    case 'type': {
      const got = isSecret(segs) ? describeValue(e.data).replace(/ \(.*\)$/, '') : describeValue(e.data);
      if (params.type === 'object' && exactlyOneOf(parent)) {
        return { segs, message: `expected an object with one of ${propertyNames(parent).join(', ')}, got ${got}` };
      }
      return { segs, message: `expected ${typeWords(params.type)}, got ${got}` };
    }
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
      if (e.keyword === 'minProperties' && params.limit === 1 && names.length > 0) {
        return { segs, message: `must not be empty: set at least one of ${names.join(', ')}` };
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
  if (validator(data)) return [];
  const out: RawIssue[] = [];
  const seen = new Set<string>();
  for (const e of collapseUnions(validator.errors ?? [])) {
    const raw: RawIssue | undefined =
      'custom' in e ? { segs: pointerToSegs(e.instancePath, data), message: e.custom } : errorToRaw(e, data);
    if (!raw) continue;
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
  if (gateway) listenerIssues(model, gateway, admin, clean, where, out);
  if ((gateway?.listen !== undefined || admin?.listen !== undefined) && gateway?.listeners === undefined && clean(['gateway', 'listen']) && clean(['admin', 'listen'])) {
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
    if (isObject(up.tls) && clean(['upstreams', name, 'tls'])) {
      const t = up.tls;
      if ((t.cert === undefined) !== (t.key === undefined)) {
        out.push({ segs: ['upstreams', name, 'tls'], message: 'set both cert and key (the client certificate and its private key), or neither' });
      }
      const https = up.endpoints.some((ep) => {
        const url = typeof ep === 'string' ? ep : isObject(ep) ? ep.url : undefined;
        return typeof url === 'string' && url.startsWith('https://');
      });
      if (!https) out.push({ segs: ['upstreams', name, 'tls'], message: 'no endpoint of this upstream uses https://, so its tls settings would never apply' });
    }
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

  policyIssues(model, clean, where, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Listeners and TLS

const VERSION_RANK: Record<string, number> = { 'TLSv1.2': 2, 'TLSv1.3': 3 };

function tlsIssues(tls: Record<string, unknown>, segs: Segment[], clean: (segs: readonly Segment[]) => boolean, out: RawIssue[]): void {
  if (!clean(segs)) return;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    out.push({ segs, message: 'set both cert and key, or neither (and list certificates instead)' });
  }
  const certs = Array.isArray(tls.certificates) ? tls.certificates : [];
  if (tls.cert === undefined && tls.key === undefined && certs.length === 0) {
    out.push({ segs, message: 'needs a certificate: set cert and key, or certificates' });
  }
  const defaults = certs.filter((c) => isObject(c) && c.default === true).length;
  if (defaults > 1) out.push({ segs: [...segs, 'certificates'], message: `only one certificate may be the default (found ${defaults} with default: true)` });
  if (typeof tls.minVersion === 'string' && typeof tls.maxVersion === 'string' && VERSION_RANK[tls.minVersion]! > VERSION_RANK[tls.maxVersion]!) {
    out.push({ segs: [...segs, 'minVersion'], message: `minVersion ${tls.minVersion} is above maxVersion ${tls.maxVersion}` });
  }
  if (typeof tls.ciphers === 'string') {
    try {
      createSecureContext({ ciphers: tls.ciphers });
    } catch (err) {
      out.push({ segs: [...segs, 'ciphers'], message: `OpenSSL does not accept this cipher list: ${(err as Error).message}` });
    }
  }
}

function listenerIssues(
  model: Record<string, unknown>,
  gateway: Record<string, unknown>,
  admin: Record<string, unknown> | undefined,
  clean: (segs: readonly Segment[]) => boolean,
  where: (segs: Segment[]) => string,
  out: RawIssue[],
): void {
  if (isObject(gateway.tls)) tlsIssues(gateway.tls, ['gateway', 'tls'], clean, out);
  if (!Array.isArray(gateway.listeners)) return;
  if (gateway.listen !== undefined || gateway.tls !== undefined) {
    const both = ['listen', 'tls'].filter((k) => gateway[k] !== undefined).map((k) => `gateway.${k}`).join(' and ');
    out.push({ segs: ['gateway', 'listeners'], kind: 'key', message: `set either listeners or ${both}, not both (listeners replace the single listener)` });
  }
  const routeNames = (Array.isArray(model.routes) ? model.routes : []).flatMap((r) => (isObject(r) && typeof r.name === 'string' ? [r.name] : []));
  const seen: Array<{ host: string; port: number; segs: Segment[] }> = [];
  const names = new Map<string, number>();
  const adminListen = isObject(admin?.listen) ? (admin!.listen as { host: string; port: number }) : DEFAULT_ADMIN_LISTEN;
  gateway.listeners.forEach((l, i) => {
    const segs: Segment[] = ['gateway', 'listeners', i];
    if (!isObject(l) || !clean(segs)) return;
    const tls = isObject(l.tls) ? l.tls : undefined;
    if (tls) tlsIssues(tls, [...segs, 'tls'], clean, out);
    if (typeof l.name === 'string') {
      const first = names.get(l.name);
      if (first !== undefined) out.push({ segs: [...segs, 'name'], message: `listener name "${l.name}" is already used by listeners[${first}]` });
      else names.set(l.name, i);
    }
    if (!tls) {
      if (l.http2 !== undefined) out.push({ segs: [...segs, 'http2'], kind: 'key', message: 'HTTP/2 is offered on TLS listeners only (plain-text h2c is off); add tls or remove http2' });
      if (l.hsts !== undefined && l.hsts !== false) out.push({ segs: [...segs, 'hsts'], kind: 'key', message: 'Strict-Transport-Security is only sent over TLS; set it on the TLS listener' });
    } else if (l.redirectToHttps !== undefined && l.redirectToHttps !== false) {
      out.push({ segs: [...segs, 'redirectToHttps'], kind: 'key', message: 'redirectToHttps belongs on a plain listener; this one already serves TLS' });
    }
    if (Array.isArray(l.routes)) {
      l.routes.forEach((r, j) => {
        if (typeof r === 'string' && !routeNames.includes(r)) {
          out.push({ segs: [...segs, 'routes', j], message: `unknown route "${r}" (${routeNames.length > 0 ? `known: ${routeNames.join(', ')}` : 'no routes are defined'})` });
        }
      });
    }
    const listen = isObject(l.listen) ? (l.listen as { host: string; port: number }) : undefined;
    if (!listen || typeof listen.port !== 'number' || typeof listen.host !== 'string' || listen.port === 0) return;
    const clash = (h: string) => h.toLowerCase() === listen.host.toLowerCase() || WILDCARD_HOSTS.has(h) || WILDCARD_HOSTS.has(listen.host);
    const other = seen.find((o) => o.port === listen.port && clash(o.host));
    if (other) {
      out.push({ segs: [...segs, 'listen'], message: `${listen.host}:${listen.port} clashes with listeners[${String(other.segs[2])}] (${where(other.segs)}); listeners need different addresses` });
    } else if (adminListen.port === listen.port && clash(adminListen.host)) {
      out.push({ segs: [...segs, 'listen'], message: `${listen.host}:${listen.port} clashes with ${admin?.listen !== undefined ? 'admin.listen' : 'the default admin.listen'} ${adminListen.host}:${adminListen.port}` });
    }
    seen.push({ host: listen.host, port: listen.port, segs });
  });
}

// ---------------------------------------------------------------------------------------------
// Semantic checks of policies, consumers and redis

const JWT_KEY_SOURCES = ['jwksUri', 'jwksFile', 'publicKeyFile', 'secret'] as const;
/** Headers the gateway manages itself: a policy must not set them from an identity. */
const MANAGED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
]);
const DEFAULT_IDENTITY_TOKEN_HEADER = 'x-causeway-identity';
/** scheme://host[:port] where host may start with a "*." label wildcard. */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/(\*\.)?([a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?$/i;

/** Why a file named in the config cannot be used, or undefined. Never throws. */
function fileError(file: string): string | undefined {
  let info;
  try {
    info = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `file "${file}" does not exist`;
    return `cannot read "${file}": ${code ?? (err as Error).message}`;
  }
  if (!info.isFile()) return `"${file}" is not a file`;
  try {
    closeSync(openSync(file, 'r'));
  } catch (err) {
    return `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return undefined;
}

function originError(origin: string): string | undefined {
  if (origin === '*') return undefined;
  if (origin === 'null') {
    return 'origin "null" cannot be allowed: sandboxed frames, local files and some redirects send it, so any site can produce it';
  }
  const m = ORIGIN.exec(origin);
  const rule = 'write "*" or scheme://host[:port], optionally with a leading "*." label as in "https://*.example.com"';
  if (!m) {
    const hint = /^[a-z][a-z0-9+.-]*:\/\/[^/]+\/.*$/i.test(origin)
      ? ' (an origin has no path, not even a trailing "/")'
      : !origin.includes('://')
        ? ' (an origin starts with the scheme: "https://app.example.com", "https://*.example.com")'
        : '';
    return `"${origin}" is not an origin: ${rule}${hint}`;
  }
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return `"${origin}" is not an origin: the port must be 1 to 65535`;
  if (m[1] !== undefined && (m[2]!.startsWith('[') || !m[2]!.includes('.'))) {
    return `"${origin}": a "*." wildcard needs a domain of at least two labels after it ("https://*.example.com")`;
  }
  return undefined;
}

const listKnown = (names: readonly string[], what: string) =>
  names.length > 0 ? `known: ${names.join(', ')}` : `no ${what} are defined`;

interface IdentityHeader {
  lower: string;
  policy: string;
  kind: string;
  segs: Segment[];
  kindKey?: boolean;
}

function policyIssues(
  model: Record<string, unknown>,
  clean: (segs: readonly Segment[]) => boolean,
  where: (segs: Segment[]) => string,
  out: RawIssue[],
): void {
  const policies = isObject(model.policies) ? model.policies : {};
  const policyNames = Object.keys(policies);
  const consumers = isObject(model.consumers) ? model.consumers : {};
  const consumerNames = Object.keys(consumers);
  const identityHeaders: IdentityHeader[] = [];

  /** Names in a list exist (`names`) and are not repeated. */
  const checkNames = (list: unknown, segs: Segment[], names: readonly string[], what: 'policy' | 'consumer') => {
    if (!Array.isArray(list)) return;
    const first = new Map<string, number>();
    list.forEach((n, i) => {
      const s = [...segs, i];
      if (typeof n !== 'string' || !clean(s)) return;
      if (!names.includes(n)) {
        out.push({ segs: s, message: `unknown ${what} "${n}" (${listKnown(names, what === 'policy' ? 'policies' : 'consumers')})` });
      } else if (first.has(n)) {
        out.push({ segs: s, message: `${what} "${n}" is listed twice (first at [${first.get(n)}])` });
      }
      if (!first.has(n)) first.set(n, i);
    });
  };

  const checkMethods = (list: unknown, segs: Segment[]) => {
    if (!Array.isArray(list)) return;
    const seen = new Set<string>();
    list.forEach((m, i) => {
      if (typeof m !== 'string' || !clean([...segs, i])) return;
      if (!KNOWN_METHODS.has(m)) out.push({ segs: [...segs, i], message: `unknown HTTP method "${m}"` });
      else if (seen.has(m)) out.push({ segs: [...segs, i], message: `method "${m}" is listed twice` });
      seen.add(m);
    });
  };

  const checkFile = (value: unknown, segs: Segment[]) => {
    if (typeof value !== 'string' || !clean(segs)) return;
    const err = fileError(value);
    if (err) out.push({ segs, message: err });
  };

  /** A header a policy sets from an identity: not one the gateway manages. */
  const identityHeader = (header: string, segs: Segment[], policy: string, kind: string, kindKey: boolean) => {
    const lower = header.toLowerCase();
    if (MANAGED_HEADERS.has(lower)) {
      out.push({
        segs,
        ...(kindKey ? { kind: 'key' as const } : {}),
        message: `"${header}" cannot carry an identity: host, content-length, transfer-encoding, connection and the other hop-by-hop headers are managed by the gateway`,
      });
      return;
    }
    identityHeaders.push({ lower, policy, kind, segs, kindKey });
  };

  /** Limits of one list do not repeat a window. */
  const checkLimits = (list: unknown, segs: Segment[]) => {
    if (!Array.isArray(list) || !clean(segs)) return;
    const windows = new Map<number, number>();
    list.forEach((limit, i) => {
      if (!isObject(limit)) return;
      const per = limit.per as DurationValue;
      const ms = parseDuration(per);
      if (ms < 1000 || ms % 1000 !== 0) {
        out.push({ segs: [...segs, i, 'per'], message: 'a window must be a whole number of seconds, 1s or more' });
        return;
      }
      const first = windows.get(ms);
      if (first !== undefined) {
        const firstPer = (list[first] as { per: DurationValue }).per;
        const same = String(firstPer) === String(per) ? '' : ` (${JSON.stringify(firstPer)})`;
        out.push({
          segs: [...segs, i, 'per'],
          message: `${formatPath([...segs.slice(3), first])} already limits this window${same}; keep one limit per window`,
        });
      } else {
        windows.set(ms, i);
      }
    });
  };

  for (const name of policyNames) {
    const policy = policies[name];
    if (!isObject(policy)) continue;
    const kinds = Object.keys(policy);
    if (kinds.length !== 1) continue; // the schema has said so
    const kind = kinds[0]!;
    const cfg = policy[kind];
    const at = (...rest: Segment[]): Segment[] => ['policies', name, kind, ...rest];

    switch (kind) {
      case 'jwt': {
        if (!isObject(cfg)) break;
        const sources = JWT_KEY_SOURCES.filter((k) => cfg[k] !== undefined);
        if (sources.length === 0) {
          out.push({ segs: at(), message: 'needs a key to verify tokens: set one of jwksUri, jwksFile, publicKeyFile or secret' });
        } else if (sources.length > 1) {
          out.push({
            segs: at(),
            message: `set only one of jwksUri, jwksFile, publicKeyFile and secret (found: ${sources.join(', ')})`,
          });
        } else if (Array.isArray(cfg.algorithms) && clean(at('algorithms'))) {
          const source = sources[0]!;
          const seen = new Set<string>();
          cfg.algorithms.forEach((alg, i) => {
            if (typeof alg !== 'string') return;
            const hs = alg.startsWith('HS');
            if (seen.has(alg)) out.push({ segs: at('algorithms', i), message: `algorithm ${alg} is listed twice` });
            else if (source === 'secret' && !hs) {
              out.push({
                segs: at('algorithms', i),
                message: `${alg} needs a public key (jwksUri, jwksFile or publicKeyFile), not "secret": an HS key never verifies RS/ES tokens`,
              });
            } else if (source !== 'secret' && hs) {
              out.push({
                segs: at('algorithms', i),
                message: `${alg} needs "secret": a public key (${source}) never verifies HS tokens, and must never be used as an HS secret`,
              });
            }
            seen.add(alg);
          });
        }
        checkFile(cfg.jwksFile, at('jwksFile'));
        checkFile(cfg.publicKeyFile, at('publicKeyFile'));
        if (isObject(cfg.forward) && clean(at('forward'))) {
          const byLower = new Map<string, string>();
          for (const header of Object.keys(cfg.forward)) {
            const lower = header.toLowerCase();
            const first = byLower.get(lower);
            if (first !== undefined) {
              out.push({
                segs: at('forward', header),
                kind: 'key',
                message: `header "${header}" is already forwarded as "${first}" (header names are case-insensitive)`,
              });
              continue;
            }
            byLower.set(lower, header);
            identityHeader(header, at('forward', header), name, kind, true);
          }
        }
        break;
      }
      case 'apiKey': {
        if (!isObject(cfg)) break;
        checkNames(cfg.consumers, at('consumers'), consumerNames, 'consumer');
        const forward = isObject(cfg.forward) ? cfg.forward : undefined;
        if (typeof forward?.consumer === 'string' && clean(at('forward', 'consumer'))) {
          identityHeader(forward.consumer, at('forward', 'consumer'), name, kind, false);
        }
        break;
      }
      case 'authz': {
        if (!isObject(cfg)) break;
        if (cfg.allow === undefined && cfg.deny === undefined) {
          out.push({ segs: at(), message: 'needs "allow" or "deny" rules; without them it allows every request' });
        }
        for (const list of ['allow', 'deny'] as const) {
          const rules = cfg[list];
          if (!Array.isArray(rules)) continue;
          rules.forEach((rule, i) => {
            if (!isObject(rule)) return;
            checkNames(rule.consumers, at(list, i, 'consumers'), consumerNames, 'consumer');
            if (!isObject(rule.claims)) return;
            for (const [claim, match] of Object.entries(rule.claims)) {
              const segs = at(list, i, 'claims', claim);
              if (claim.trim() === '') out.push({ segs, kind: 'key', message: 'claim name must not be empty' });
              else if (claim.split('.').includes('')) {
                out.push({ segs, kind: 'key', message: `claim path "${claim}" has an empty segment` });
              }
              if (isObject(match) && typeof match.regex === 'string' && clean([...segs, 'regex'])) {
                const err = regexError(match.regex);
                if (err) out.push({ segs: [...segs, 'regex'], message: err });
              }
            }
          });
        }
        break;
      }
      case 'rateLimit': {
        if (!isObject(cfg)) break;
        if (cfg.store === 'redis' && model.redis === undefined) {
          out.push({ segs: at('store'), message: 'store "redis" needs the top-level "redis" section (its url)' });
        }
        checkLimits(cfg.limits, at('limits'));
        if (isObject(cfg.overrides)) {
          for (const [consumer, limits] of Object.entries(cfg.overrides)) {
            if (!clean(at('overrides', consumer))) continue;
            if (!consumerNames.includes(consumer)) {
              out.push({
                segs: at('overrides', consumer),
                kind: 'key',
                message: `unknown consumer "${consumer}" (${listKnown(consumerNames, 'consumers')})`,
              });
            }
            checkLimits(limits, at('overrides', consumer));
          }
        }
        break;
      }
      case 'cors': {
        if (!isObject(cfg)) break;
        const origins = Array.isArray(cfg.origins) ? cfg.origins : [];
        origins.forEach((origin, i) => {
          if (typeof origin !== 'string' || !clean(at('origins', i))) return;
          const err = originError(origin);
          if (err) out.push({ segs: at('origins', i), message: err });
        });
        if (cfg.credentials === true && origins.includes('*')) {
          out.push({
            segs: at('credentials'),
            message: 'credentials: true cannot be combined with origin "*" (browsers refuse it); list the allowed origins instead',
          });
        }
        checkMethods(cfg.methods, at('methods'));
        break;
      }
      case 'bodyLimit': {
        if (!clean(at())) break;
        const err = byteSizeError(cfg);
        if (err) out.push({ segs: at(), message: err });
        break;
      }
      case 'methods':
        checkMethods(cfg, at());
        break;
      case 'ipFilter': {
        if (!isObject(cfg)) break;
        for (const list of ['allow', 'deny'] as const) {
          const entries = cfg[list];
          if (!Array.isArray(entries)) continue;
          entries.forEach((entry, i) => {
            if (typeof entry !== 'string' || !clean(at(list, i))) return;
            const r = parseCidr(entry.trim());
            if (!r.ok) out.push({ segs: at(list, i), message: r.message });
          });
        }
        break;
      }
      case 'requestHeaders':
      case 'responseHeaders': {
        if (!isObject(cfg)) break;
        for (const op of ['set', 'add'] as const) {
          const headers = cfg[op];
          if (!isObject(headers)) continue;
          for (const [header, value] of Object.entries(headers)) {
            if (typeof value !== 'string' || !clean(at(op, header))) continue;
            try {
              validateHeaderValue(header, value);
            } catch {
              out.push({ segs: at(op, header), message: 'has characters not allowed in a header value (line breaks or control characters)' });
            }
          }
        }
        break;
      }
      case 'identityToken': {
        if (!isObject(cfg)) break;
        checkFile(cfg.keyFile, at('keyFile'));
        if (cfg.header === undefined) identityHeaders.push({ lower: DEFAULT_IDENTITY_TOKEN_HEADER, policy: name, kind, segs: at() });
        else if (typeof cfg.header === 'string' && clean(at('header'))) identityHeader(cfg.header, at('header'), name, kind, false);
        break;
      }
    }
  }

  // Two policies may set the same identity header only when they are of the same kind (two jwt
  // policies for two issuers): otherwise an upstream could not tell what the header means.
  identityHeaders.forEach((h, i) => {
    const other = identityHeaders.slice(0, i).find((o) => o.lower === h.lower && o.kind !== h.kind);
    if (!other) return;
    const header = h.kindKey ? String(h.segs.at(-1)) : h.lower;
    out.push({
      segs: h.segs,
      ...(h.kindKey ? { kind: 'key' as const } : {}),
      message: `header "${header}" is also set by policy "${other.policy}" (${other.kind}, ${where(other.segs)}); policies of different kinds must not set the same identity header`,
    });
  });

  // consumers: a key identifies one consumer. Keys are never repeated in messages.
  const keyOwner = new Map<string, Segment[]>();
  for (const consumer of consumerNames) {
    const c = consumers[consumer];
    if (!isObject(c) || !Array.isArray(c.keys)) continue;
    c.keys.forEach((key, i) => {
      const segs: Segment[] = ['consumers', consumer, 'keys', i];
      if (typeof key !== 'string' || !clean(segs)) return;
      const first = keyOwner.get(key);
      if (!first) {
        keyOwner.set(key, segs);
      } else if (first[1] === consumer) {
        out.push({ segs, message: `repeats keys[${String(first[3])}] of the same consumer` });
      } else {
        out.push({
          segs,
          message: `this key is also a key of consumer "${String(first[1])}" (${where(first)}); a key must identify one consumer`,
        });
      }
    });
  }

  // redis
  const redis = isObject(model.redis) ? model.redis : undefined;
  if (typeof redis?.url === 'string' && clean(['redis', 'url'])) {
    let ok = false;
    try {
      ok = new URL(redis.url).hostname !== '';
    } catch {
      // not a URL; the message must not repeat it (it may hold a password)
    }
    if (!ok) out.push({ segs: ['redis', 'url'], message: 'is not a valid redis:// or rediss:// URL with a host' });
  }

  // Where policies are used.
  checkNames(model.defaultPolicies, ['defaultPolicies'], policyNames, 'policy');
  const routes = Array.isArray(model.routes) ? model.routes : [];
  routes.forEach((route, i) => {
    if (isObject(route)) checkNames(route.policies, ['routes', i, 'policies'], policyNames, 'policy');
  });
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

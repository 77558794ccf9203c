// The route table: match order, compiled matchers and the shadowing check.
//
// Match order (docs/routing.md explains it to users):
//   1. host: routes for the exact request host, then wildcard hosts (longest suffix first),
//      then routes without a host. A request only falls through to the next host group when
//      no route of the current group matches.
//   2. path, within a host group: exact paths, then parameter patterns (/users/:id; more
//      literal segments first, then more segments), then regexes (in file order), then
//      prefixes (longest first).
//   3. routes with the same path: more conditions first (a method list, each header and each
//      query condition counts one), then file order.
import type { MatchConfig, RouteConfig, StringMatchConfig } from './model.ts';

export type PathKind = 'exact' | 'params' | 'regex' | 'prefix';
const KIND_RANK: Record<PathKind, number> = { exact: 0, params: 1, regex: 2, prefix: 3 };

export interface RequestFacts {
  method: string;
  /** Lower-case host without port or trailing dot. */
  host: string;
  /** Normalised path. */
  path: string;
  /** Raw query string without '?'. */
  query: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface PathSpec {
  kind: PathKind;
  /** exact path, param pattern, regex source or prefix (no trailing slash except "/"). */
  value: string;
  /** Pattern with parameter names erased (/users/:): two params routes compare equal by it. */
  shape: string;
  literalSegments: number;
  segments: number;
  paramNames: string[];
}

export interface HostSpec {
  kind: 'exact' | 'wildcard' | 'any';
  /** exact host, or the suffix with its dot (".example.com") for a wildcard. */
  value: string;
}

/** One (route × host) line of the table, in match order. */
export interface TableEntry<R> {
  route: R;
  routeIndex: number;
  host: HostSpec;
  path: PathSpec;
  conditions: number;
  test: ((f: RequestFacts) => boolean) | null;
  pathRegex: RegExp | null;
  /** Canonical text of the conditions, for the shadowing check and `causeway routes`. */
  conditionKeys: string[];
  methods: string[] | null;
}

export interface RouteHit<R> {
  route: R;
  params: Record<string, string> | null;
}

export function normaliseHost(raw: string | undefined): string {
  if (!raw) return '';
  let h = raw;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

export function hostSpecs(match: MatchConfig | undefined): HostSpec[] {
  const hosts = match?.host === undefined ? [] : Array.isArray(match.host) ? match.host : [match.host];
  if (hosts.length === 0) return [{ kind: 'any', value: '' }];
  return hosts.map((h) => {
    const lower = h.toLowerCase().replace(/\.$/, '');
    if (lower === '*') return { kind: 'any', value: '' };
    if (lower.startsWith('*.')) return { kind: 'wildcard', value: lower.slice(1) };
    return { kind: 'exact', value: normaliseHost(lower) };
  });
}

export function pathSpec(match: MatchConfig | undefined): PathSpec {
  if (match?.path !== undefined) {
    const segs = match.path.split('/').slice(1);
    const paramNames = segs.filter((s) => s.startsWith(':')).map((s) => s.slice(1));
    if (paramNames.length === 0) {
      return { kind: 'exact', value: match.path, shape: match.path, literalSegments: segs.length, segments: segs.length, paramNames };
    }
    return {
      kind: 'params',
      value: match.path,
      shape: segs.map((s) => (s.startsWith(':') ? ':' : s)).join('/'),
      literalSegments: segs.length - paramNames.length,
      segments: segs.length,
      paramNames,
    };
  }
  if (match?.regex !== undefined) {
    return { kind: 'regex', value: match.regex, shape: match.regex, literalSegments: 0, segments: 0, paramNames: [] };
  }
  let prefix = match?.prefix ?? '/';
  while (prefix.length > 1 && prefix.endsWith('/')) prefix = prefix.slice(0, -1);
  return { kind: 'prefix', value: prefix, shape: prefix, literalSegments: 0, segments: 0, paramNames: [] };
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function paramsRegex(pattern: string): RegExp {
  const body = pattern
    .split('/')
    .slice(1)
    .map((s) => (s.startsWith(':') ? '([^/]+)' : escapeRegex(s)))
    .join('/');
  return new RegExp(`^/${body}$`);
}

/** A compiled string condition; `undefined` value means the header/parameter is absent. */
export function compileStringMatch(m: StringMatchConfig): (value: string | undefined) => boolean {
  if (typeof m === 'string') return (v) => v === m;
  if (m.exact !== undefined) {
    const e = m.exact;
    return (v) => v === e;
  }
  if (m.prefix !== undefined) {
    const p = m.prefix;
    return (v) => v !== undefined && v.startsWith(p);
  }
  if (m.regex !== undefined) {
    const re = new RegExp(m.regex);
    return (v) => v !== undefined && re.test(v);
  }
  const present = m.present === true;
  return (v) => (v !== undefined) === present;
}

function stringMatchKey(m: StringMatchConfig): string {
  if (typeof m === 'string') return `=${m}`;
  if (m.exact !== undefined) return `=${m.exact}`;
  if (m.prefix !== undefined) return `^${m.prefix}`;
  if (m.regex !== undefined) return `~${m.regex}`;
  return m.present ? '?present' : '?absent';
}

export function describeStringMatch(m: StringMatchConfig): string {
  if (typeof m === 'string') return m;
  if (m.exact !== undefined) return m.exact;
  if (m.prefix !== undefined) return `${m.prefix}*`;
  if (m.regex !== undefined) return `~/${m.regex}/`;
  return m.present ? '(present)' : '(absent)';
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function compileConditions(match: MatchConfig | undefined): {
  test: ((f: RequestFacts) => boolean) | null;
  count: number;
  keys: string[];
  methods: string[] | null;
} {
  const tests: Array<(f: RequestFacts) => boolean> = [];
  const keys: string[] = [];
  let methods: string[] | null = null;
  if (match?.methods) {
    methods = [...new Set(match.methods)].sort();
    const set = new Set(methods);
    // A route that takes GET also takes HEAD, as every HTTP server does.
    if (set.has('GET')) set.add('HEAD');
    tests.push((f) => set.has(f.method));
  }
  for (const [rawName, m] of Object.entries(match?.headers ?? {})) {
    const name = rawName.toLowerCase();
    const check = compileStringMatch(m);
    keys.push(`header:${name}${stringMatchKey(m)}`);
    tests.push((f) => check(headerValue(f.headers[name])));
  }
  const queryEntries = Object.entries(match?.query ?? {});
  if (queryEntries.length > 0) {
    const checks = queryEntries.map(([name, m]) => {
      keys.push(`query:${name}${stringMatchKey(m)}`);
      const check = compileStringMatch(m);
      return (q: URLSearchParams) => check(q.get(name) ?? undefined);
    });
    tests.push((f) => {
      const q = new URLSearchParams(f.query);
      for (const c of checks) if (!c(q)) return false;
      return true;
    });
  }
  keys.sort();
  const count = (methods ? 1 : 0) + keys.length;
  let test: ((f: RequestFacts) => boolean) | null = null;
  if (tests.length === 1) test = tests[0]!;
  else if (tests.length > 1) {
    test = (f) => {
      for (const t of tests) if (!t(f)) return false;
      return true;
    };
  }
  return { test, count, keys, methods };
}

function hostRank(h: HostSpec): number {
  return h.kind === 'exact' ? 0 : h.kind === 'wildcard' ? 1 : 2;
}

function compareEntries<R>(a: TableEntry<R>, b: TableEntry<R>): number {
  return (
    hostRank(a.host) - hostRank(b.host) ||
    b.host.value.length - a.host.value.length ||
    (a.host.value < b.host.value ? -1 : a.host.value > b.host.value ? 1 : 0) ||
    KIND_RANK[a.path.kind] - KIND_RANK[b.path.kind] ||
    (a.path.kind === 'params'
      ? b.path.literalSegments - a.path.literalSegments || b.path.segments - a.path.segments
      : 0) ||
    (a.path.kind === 'prefix' ? b.path.value.length - a.path.value.length : 0) ||
    (a.path.kind === 'regex' ? a.routeIndex - b.routeIndex : 0) ||
    b.conditions - a.conditions ||
    a.routeIndex - b.routeIndex
  );
}

/** Every (route × host) entry in match order. */
export function tableEntries<R>(routes: readonly R[], matchOf: (r: R) => MatchConfig | undefined): TableEntry<R>[] {
  const entries: TableEntry<R>[] = [];
  routes.forEach((route, routeIndex) => {
    const match = matchOf(route);
    const path = pathSpec(match);
    const cond = compileConditions(match);
    const pathRegex =
      path.kind === 'params' ? paramsRegex(path.value) : path.kind === 'regex' ? new RegExp(path.value) : null;
    for (const host of hostSpecs(match)) {
      entries.push({
        route,
        routeIndex,
        host,
        path,
        conditions: cond.count,
        test: cond.test,
        pathRegex,
        conditionKeys: cond.keys,
        methods: cond.methods,
      });
    }
  });
  return entries.sort(compareEntries);
}

function covers<R>(a: TableEntry<R>, b: TableEntry<R>): boolean {
  if (a.methods && (!b.methods || !b.methods.every((m) => a.methods!.includes(m)))) return false;
  return a.conditionKeys.every((k) => b.conditionKeys.includes(k));
}

/** Routes that can never match because an earlier route in match order takes all their requests. */
export function findShadowedRoutes(routes: RouteConfig[]): Array<{ index: number; by: number }> {
  const entries = tableEntries(routes, (r) => r.match);
  const shadowedEntries = new Map<number, { total: number; hidden: number; by: number }>();
  for (const e of entries) {
    const s = shadowedEntries.get(e.routeIndex) ?? { total: 0, hidden: 0, by: -1 };
    s.total++;
    shadowedEntries.set(e.routeIndex, s);
  }
  for (let j = 0; j < entries.length; j++) {
    const b = entries[j]!;
    for (let i = 0; i < j; i++) {
      const a = entries[i]!;
      if (a.routeIndex === b.routeIndex) continue;
      if (a.host.kind !== b.host.kind || a.host.value !== b.host.value) continue;
      if (a.path.kind !== b.path.kind || a.path.shape !== b.path.shape) continue;
      if (!covers(a, b)) continue;
      const s = shadowedEntries.get(b.routeIndex)!;
      s.hidden++;
      if (s.by === -1) s.by = a.routeIndex;
      break;
    }
  }
  const out: Array<{ index: number; by: number }> = [];
  for (const [index, s] of shadowedEntries) if (s.hidden === s.total) out.push({ index, by: s.by });
  return out.sort((x, y) => x.index - y.index);
}

interface PathTable<R> {
  exact: Map<string, TableEntry<R>[]>;
  patterns: TableEntry<R>[]; // params then regex, in order
  /**
   * Patterns indexed by the literal leading path segments they require (api, v1, users for
   * /api/v1/users/:id or ^/api/v1/users/[0-9]+$). A request walks the trie down its own
   * segments as far as it goes and tries only that node's list: the patterns pinned there or
   * above (the root holds those that pin nothing), in match order.
   */
  patternTrie: PatternNode<R>;
  prefix: Map<string, TableEntry<R>[]>;
  hasRootPrefix: boolean;
}

interface PatternNode<R> {
  children: Map<string, PatternNode<R>> | null;
  /** The patterns a path reaching this node (and no deeper) can match, in match order. */
  list: TableEntry<R>[];
}

function newTable<R>(): PathTable<R> {
  return { exact: new Map(), patterns: [], patternTrie: { children: null, list: [] }, prefix: new Map(), hasRootPrefix: false };
}

const SEGMENT_CHAR = /[A-Za-z0-9_~-]/;
const QUANTIFIER = /[?*+{]/;

/**
 * The literal leading path segments every path a pattern matches must have (possibly none).
 * A `:param` pattern pins its segments up to the first parameter. A regex pins only what is
 * certain: it must be anchored (^/) and free of alternation, and a segment counts when it is
 * plain literal characters followed by an unquantified "/" or by the final "$".
 */
export function requiredSegments(path: PathSpec): string[] {
  if (path.kind === 'params') {
    const out: string[] = [];
    for (const seg of path.value.split('/').slice(1)) {
      if (seg === '' || seg.startsWith(':')) break;
      out.push(seg);
    }
    return out;
  }
  if (path.kind !== 'regex') return [];
  const src = path.value;
  if (!src.startsWith('^/') || src.includes('|')) return [];
  const out: string[] = [];
  let i = 2;
  for (;;) {
    const start = i;
    while (i < src.length && SEGMENT_CHAR.test(src[i]!)) i++;
    if (i === start) return out;
    const next = src[i];
    if (next === '$' && i === src.length - 1) {
      out.push(src.slice(start, i));
      return out;
    }
    if (next !== '/' || QUANTIFIER.test(src[i + 1] ?? '')) return out;
    out.push(src.slice(start, i));
    i++;
  }
}

/** The first required segment (see requiredSegments), or null. */
export function requiredFirstSegment(path: PathSpec): string | null {
  return requiredSegments(path)[0] ?? null;
}

/** Build the pattern trie of a table, keeping match order in every list. */
function indexPatterns<R>(t: PathTable<R>): void {
  const root: PatternNode<R> = { children: null, list: [] };
  const pinned = new Map<TableEntry<R>, PatternNode<R>>();
  for (const e of t.patterns) {
    let node = root;
    for (const seg of requiredSegments(e.path)) {
      node.children ??= new Map();
      let child = node.children.get(seg);
      if (child === undefined) node.children.set(seg, (child = { children: null, list: [] }));
      node = child;
    }
    pinned.set(e, node);
  }
  // Each node's list: the patterns pinned at it or at an ancestor, in table order.
  const fill = (node: PatternNode<R>, path: Set<PatternNode<R>>): void => {
    path.add(node);
    node.list = t.patterns.filter((e) => path.has(pinned.get(e)!));
    for (const child of node.children?.values() ?? []) fill(child, path);
    path.delete(node);
  };
  fill(root, new Set());
  t.patternTrie = root;
}

/** The list of the deepest trie node the path's leading segments reach. */
function patternsFor<R>(root: PatternNode<R>, path: string): TableEntry<R>[] {
  let node = root;
  let start = 1;
  while (node.children !== null) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    const child = node.children.get(path.slice(start, end));
    if (child === undefined) break;
    node = child;
    if (end === path.length) break;
    start = end + 1;
  }
  return node.list;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

const NO_PARAMS = null;

function firstPassing<R>(list: TableEntry<R>[] | undefined, f: RequestFacts): TableEntry<R> | undefined {
  if (!list) return undefined;
  for (const e of list) if (e.test === null || e.test(f)) return e;
  return undefined;
}

function matchTable<R>(t: PathTable<R>, f: RequestFacts): RouteHit<R> | null {
  const path = f.path;
  const exact = firstPassing(t.exact.get(path), f);
  if (exact) return { route: exact.route, params: NO_PARAMS };
  const patterns = patternsFor(t.patternTrie, path);
  for (const e of patterns) {
    const m = e.pathRegex!.exec(path);
    if (m === null || (e.test !== null && !e.test(f))) continue;
    if (e.path.kind === 'regex') return { route: e.route, params: NO_PARAMS };
    const params: Record<string, string> = {};
    e.path.paramNames.forEach((n, i) => (params[n] = m[i + 1]!));
    return { route: e.route, params };
  }
  if (t.prefix.size > 0) {
    // Walk the path's own prefixes, longest first: /a/b/c, /a/b, /a, /.
    let end = path.length;
    if (end > 1 && path.charCodeAt(end - 1) === 47) end--;
    while (end > 0) {
      const hit = firstPassing(t.prefix.get(end === path.length ? path : path.slice(0, end)), f);
      if (hit) return { route: hit.route, params: NO_PARAMS };
      end = path.lastIndexOf('/', end - 1);
    }
    if (t.hasRootPrefix) {
      const hit = firstPassing(t.prefix.get('/'), f);
      if (hit) return { route: hit.route, params: NO_PARAMS };
    }
  }
  return null;
}

export interface RouteTable<R> {
  entries: TableEntry<R>[];
  match(f: RequestFacts): RouteHit<R> | null;
}

/** Build the lookup structure: host maps first, then per-host path tables. */
export function buildRouteTable<R>(routes: readonly R[], matchOf: (r: R) => MatchConfig | undefined): RouteTable<R> {
  const entries = tableEntries(routes, matchOf);
  const exactHosts = new Map<string, PathTable<R>>();
  const wildcards: Array<{ suffix: string; table: PathTable<R> }> = [];
  let any: PathTable<R> | null = null;
  for (const e of entries) {
    let table: PathTable<R>;
    if (e.host.kind === 'exact') {
      table = exactHosts.get(e.host.value) ?? newTable();
      exactHosts.set(e.host.value, table);
    } else if (e.host.kind === 'wildcard') {
      let w = wildcards.find((x) => x.suffix === e.host.value);
      if (!w) wildcards.push((w = { suffix: e.host.value, table: newTable() }));
      table = w.table;
    } else {
      table = any ??= newTable();
    }
    if (e.path.kind === 'exact') pushTo(table.exact, e.path.value, e);
    else if (e.path.kind === 'prefix') {
      pushTo(table.prefix, e.path.value, e);
      if (e.path.value === '/') table.hasRootPrefix = true;
    } else table.patterns.push(e);
  }
  for (const t of [...exactHosts.values(), ...wildcards.map((w) => w.table), ...(any ? [any] : [])]) indexPatterns(t);
  const anyTable = any;
  const hasHostTables = exactHosts.size > 0 || wildcards.length > 0;
  return {
    entries,
    match(f) {
      if (hasHostTables) {
        const t = exactHosts.get(f.host);
        if (t) {
          const hit = matchTable(t, f);
          if (hit) return hit;
        }
        for (const w of wildcards) {
          if (f.host.length > w.suffix.length && f.host.endsWith(w.suffix)) {
            const hit = matchTable(w.table, f);
            if (hit) return hit;
          }
        }
      }
      return anyTable ? matchTable(anyTable, f) : null;
    },
  };
}

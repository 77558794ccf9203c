// Property-based tests (fast-check) of the three pieces that see hostile input first: the config
// loader, the path normaliser and the route matcher. Runs are bounded so the file takes seconds;
// a failure prints the seed and the shrunk counterexample.
import test from 'ava';
import fc from 'fast-check';
import { stringify as yamlStringify } from 'yaml';
import { compile } from '../../config/compile.ts';
import { loadConfigText, type LoadResult } from '../../config/load.ts';
import type { MatchConfig, RouteConfig } from '../../config/model.ts';
import { buildRouteTable, normaliseHost, type RequestFacts, type TableEntry } from '../../config/routes.ts';
import { normaliseUrl } from '../../gateway/path.ts';

// ---------------------------------------------------------------------------------------------
// config loader: arbitrary text never throws; the answer is ok (and compiles) or issues

function checkLoad(t: import('ava').ExecutionContext, text: string, file = 'fuzz.yaml'): LoadResult {
  const r = loadConfigText([{ file, text }], { HOST: '127.0.0.1', EMPTY: '' });
  if (r.ok) {
    // a model the loader accepted compiles without throwing
    compile(r.model, [file], (spec) => spec);
  } else {
    if (r.issues.length === 0) throw new Error('not ok, but no issues');
    for (const i of r.issues) if (typeof i.message !== 'string' || i.message === '') throw new Error(`issue without a message: ${JSON.stringify(i)}`);
  }
  return r;
}

const VALID = {
  upstreams: { mono: { endpoints: ['http://127.0.0.1:3000'] }, svc: { endpoints: [{ url: 'http://${HOST}:3001', weight: 2 }] } },
  policies: { lim: { bodyLimit: '1MiB' }, m: { methods: ['GET'] } },
  routes: [
    { name: 'mono', upstream: 'mono' },
    { name: 'orders', upstream: 'svc', match: { prefix: '/orders', methods: ['GET'] }, policies: ['lim'] },
    { name: 'user', upstream: 'svc', match: { path: '/users/:id' }, rewrite: { path: '/u/:id' } },
  ],
};

test('config loader: arbitrary text never throws; ok or a list of issues', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
      checkLoad(t, text);
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('config loader: YAML-looking text built from config tokens never throws', (t) => {
  const token = fc.constantFrom(
    'routes:', 'upstreams:', 'policies:', 'gateway:', '  - name: a', '    upstream: u', '  u:', '    endpoints: [http://x:1]',
    'match: {prefix: /a}', '${HOST}', '${UNSET:-x}', '${', '&a', '*a', '<<: *a', '!!binary', '---', '...', '[', ']', '{', '}', ':', '- ',
    '  ', '\t', '#', '"', "'", '\\', '? ', '|', '>', '%YAML 1.2', 'null', '~', '1e309', '-0', '0x10', 'true', '.inf',
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(token, fc.constantFrom('', ' ', '\n', '\n  ')), { maxLength: 40 }), (parts) => {
      checkLoad(t, parts.map(([a, b]) => a + b).join(''));
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('config loader: arbitrary JSON values, and a valid config with parts replaced by arbitrary values, never throw', (t) => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
      checkLoad(t, JSON.stringify(v), 'fuzz.json');
      checkLoad(t, yamlStringify(v));
    }),
    { numRuns: 100 },
  );
  const paths: Array<(c: any, v: unknown) => void> = [
    (c, v) => (c.routes[1].match = v),
    (c, v) => (c.routes[1].match.prefix = v),
    (c, v) => (c.routes[2].match.path = v),
    (c, v) => (c.routes[2].rewrite = v),
    (c, v) => (c.routes[0].upstream = v),
    (c, v) => (c.upstreams.mono = v),
    (c, v) => (c.upstreams.svc.endpoints = v),
    (c, v) => (c.policies.lim = v),
    (c, v) => (c.policies.lim.bodyLimit = v),
    (c, v) => (c.routes[1].policies = v),
    (c, v) => (c.gateway = v),
    (c, v) => (c.routes = v),
    (c, v) => (c.routes[1].match.regex = v),
    (c, v) => (c.routes[1].match.headers = v),
  ];
  fc.assert(
    fc.property(fc.nat(paths.length - 1), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 20 }), fc.constantFrom('(', '[', '/a/:', '//', '/..', '*', '')), (i, v) => {
      const c = structuredClone(VALID) as any;
      paths[i]!(c, v);
      checkLoad(t, yamlStringify(c));
    }),
    { numRuns: 200 },
  );
  t.true(checkLoad(t, yamlStringify(VALID)).ok, 'the base config is valid');
});

test('config loader: an alias bomb is refused, not expanded', (t) => {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  const r = checkLoad(t, lines.join('\n'));
  t.false(r.ok);
});

// ---------------------------------------------------------------------------------------------
// path normaliser

const PATH_TOKENS = [
  '/', '/', '/', '.', '..', '%2e', '%2E', '%2e%2e', '%2f', '%2F', '%5c', '\\', '%25', '%252e', '%00', '%0a', ';', '..;', '?', '#', '%3f',
  'a', 'b', 'admin', '~', '%7e', '%41', '%c0%ae', '%ef%bc%8e', 'é', '．', ' ', '%', '%z', '%4', '@', ':', '=', '&', '+', '*',
];
const hostilePath = fc.array(fc.constantFrom(...PATH_TOKENS), { maxLength: 24 }).map((parts) => '/' + parts.join(''));

function checkNormalised(path: string): void {
  if (!path.startsWith('/')) throw new Error(`does not start with /: ${path}`);
  if (path.includes('//')) throw new Error(`has //: ${path}`);
  for (const seg of path.split('/').slice(1)) {
    if (seg === '.' || seg === '..') throw new Error(`dot segment in ${path}`);
    if (/^\.\.?;/.test(seg)) throw new Error(`dot segment with parameters in ${path}`);
  }
  if (/%(2[eE]|2[fF]|5[cC]|[01][0-9a-fA-F]|7[fF])/.test(path)) throw new Error(`encoded dot, slash, backslash or control left in ${path}`);
  if (/%[0-9A-F]?[a-f]/.test(path)) throw new Error(`lower-case escape in ${path}`);
  if (/[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/.test(path)) throw new Error(`raw character outside pchar in ${path}`);
}

test('path normaliser: never throws; accepted paths are normal and idempotent; the query is kept byte for byte', (t) => {
  let accepted = 0;
  fc.assert(
    fc.property(hostilePath, fc.option(fc.string({ maxLength: 12 }), { nil: undefined }), (path, query) => {
      const raw = query === undefined ? path : `${path}?${query}`;
      const r = normaliseUrl(raw);
      if ('error' in r) {
        if (r.error !== 'CW_BAD_PATH' || typeof r.message !== 'string') throw new Error('bad error shape');
        return;
      }
      accepted++;
      checkNormalised(r.path);
      const again = normaliseUrl(r.path);
      if ('error' in again || again.path !== r.path || again.query !== '') throw new Error(`not idempotent: ${r.path} → ${JSON.stringify(again)}`);
      const q = raw.indexOf('?');
      const expectedQuery = q < 0 ? '' : raw.slice(q + 1);
      if (r.query !== expectedQuery) throw new Error(`query changed: ${expectedQuery} → ${r.query}`);
      const withQuery = normaliseUrl(`${r.path}?${r.query}`);
      if ('error' in withQuery || withQuery.path !== r.path) throw new Error('not idempotent with its query');
    }),
    { numRuns: 2000 },
  );
  t.true(accepted > 100, `enough accepted paths to mean something (${accepted})`);
});

test('path normaliser: any string at all never throws', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (s) => {
      const r = normaliseUrl(s);
      if (!('error' in r)) checkNormalised(r.path);
      const r2 = normaliseUrl('/' + s);
      if (!('error' in r2)) checkNormalised(r2.path);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// route matcher: never throws; the winner is the first entry, in `causeway routes` order,
// among the entries that match

const SEGMENTS = ['a', 'b', 'users', '1', 'x'];
const routePath = fc.array(fc.constantFrom(...SEGMENTS, ':id'), { minLength: 1, maxLength: 3 }).map((s) => '/' + s.join('/'));
const routePrefix = fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 3 }).map((s) => '/' + s.join('/'));
const matchArb: fc.Arbitrary<MatchConfig> = fc.record(
  {
    kind: fc.constantFrom('path', 'prefix', 'regex', 'none'),
    path: routePath,
    prefix: routePrefix,
    regex: fc.constantFrom('^/a', '^/users/[0-9]+$', 'b$', '^/(a|b)/', 'x'),
    methods: fc.option(fc.subarray(['GET', 'POST', 'DELETE'], { minLength: 1 }), { nil: undefined }),
    host: fc.option(fc.constantFrom('example.com', '*.example.com', '*.a.example.com', 'a.example.com'), { nil: undefined }),
    header: fc.option(fc.constantFrom<Record<string, unknown>>({ 'x-beta': '1' }, { 'x-beta': { present: true } }, { 'x-beta': { present: false } }), { nil: undefined }),
    query: fc.option(fc.constant({ debug: 'true' }), { nil: undefined }),
  },
  { requiredKeys: ['kind', 'path', 'prefix', 'regex'] },
).map((r) => {
  const m: Record<string, unknown> = {};
  if (r.kind === 'path') m.path = r.path;
  if (r.kind === 'prefix') m.prefix = r.prefix;
  if (r.kind === 'regex') m.regex = r.regex;
  if (r.methods) m.methods = r.methods;
  if (r.host) m.host = r.host;
  if (r.header) m.headers = r.header;
  if (r.query) m.query = r.query;
  return m as MatchConfig;
});

const requestArb: fc.Arbitrary<RequestFacts> = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'POST', 'DELETE', 'PUT'),
  host: fc.constantFrom('', 'example.com', 'a.example.com', 'b.a.example.com', 'other.test', 'EXAMPLE.com.', 'example.com:8080').map(normaliseHost),
  path: fc.array(fc.constantFrom(...SEGMENTS, ''), { maxLength: 4 }).map((s) => '/' + s.join('/')),
  query: fc.constantFrom('', 'debug=true', 'debug=false'),
  headers: fc.constantFrom<Record<string, string | undefined>>({}, { 'x-beta': '1' }, { 'x-beta': '2' }),
});

/** Does this table entry, taken alone, match the request? (host, path kind, conditions) */
function entryMatches(e: TableEntry<unknown>, f: RequestFacts): boolean {
  const h = e.host;
  if (h.kind === 'exact' && f.host !== h.value) return false;
  if (h.kind === 'wildcard' && !(f.host.length > h.value.length && f.host.endsWith(h.value))) return false;
  const p = e.path;
  let pathOk: boolean;
  if (p.kind === 'exact') pathOk = f.path === p.value;
  else if (p.kind === 'prefix') pathOk = p.value === '/' || f.path === p.value || f.path.startsWith(p.value + '/');
  else pathOk = e.pathRegex!.test(f.path);
  return pathOk && (e.test === null || e.test(f));
}

test('route matcher: never throws, and the winner is the first matching entry of the route table', (t) => {
  let hits = 0;
  fc.assert(
    fc.property(fc.array(matchArb, { minLength: 1, maxLength: 8 }), fc.array(requestArb, { minLength: 1, maxLength: 10 }), (matches, requests) => {
      const routes: RouteConfig[] = matches.map((match, i) => ({ name: `r${i}`, upstream: 'u', match }));
      const table = buildRouteTable(routes, (r) => r.match);
      for (const f of requests) {
        const hit = table.match(f);
        const first = table.entries.find((e) => entryMatches(e as TableEntry<unknown>, f));
        if ((hit?.route ?? null) !== (first?.route ?? null)) {
          throw new Error(`${f.method} ${f.host} ${f.path}?${f.query}: matcher chose ${hit?.route.name ?? 'nothing'}, table order says ${first?.route.name ?? 'nothing'}`);
        }
        if (hit) hits++;
      }
    }),
    { numRuns: 400 },
  );
  t.true(hits > 200, `enough requests matched to mean something (${hits})`);
});

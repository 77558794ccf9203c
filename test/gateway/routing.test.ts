import test from 'ava';
import fc from 'fast-check';
import { compile } from '../../config/compile.ts';
import type { ConfigModel, RouteConfig } from '../../config/model.ts';
import { findShadowedRoutes, pathSpec, requiredFirstSegment, requiredSegments, type RequestFacts } from '../../config/routes.ts';

function table(routes: RouteConfig[]) {
  const model: ConfigModel = { upstreams: { a: { endpoints: ['http://127.0.0.1:1'] } }, routes };
  return compile(model, [], (spec) => spec);
}

function req(path: string, more: Partial<RequestFacts> = {}): RequestFacts {
  return { method: 'GET', host: 'example.com', path, query: '', headers: {}, ...more };
}

const r = (name: string, match?: RouteConfig['match']): RouteConfig => ({ name, upstream: 'a', match });

function hit(s: ReturnType<typeof table>, facts: RequestFacts): string | null {
  return s.match(facts)?.route.name ?? null;
}

test('exact paths beat params, params beat regex, regex beats prefix', (t) => {
  const s = table([
    r('prefix', { prefix: '/users' }),
    r('regex', { regex: '^/users/[0-9]+$' }),
    r('params', { path: '/users/:id' }),
    r('exact', { path: '/users/me' }),
    r('root', {}),
  ]);
  t.is(hit(s, req('/users/me')), 'exact');
  t.is(hit(s, req('/users/alice')), 'params');
  t.is(hit(s, req('/users/42')), 'params');
  t.is(hit(s, req('/users/42/orders')), 'prefix');
  t.is(hit(s, req('/users')), 'prefix');
  t.is(hit(s, req('/other')), 'root');
  t.deepEqual(
    s.table.map((e) => e.route.name),
    ['exact', 'params', 'regex', 'prefix', 'root'],
  );
});

test('regex routes are tried in file order and must match the whole path when anchored', (t) => {
  const s = table([r('digits', { regex: '^/n/[0-9]+$' }), r('any-n', { regex: '^/n/' })]);
  t.is(hit(s, req('/n/12')), 'digits');
  t.is(hit(s, req('/n/ab')), 'any-n');
  t.is(hit(s, req('/m')), null);
});

test('prefixes match whole segments, longest first', (t) => {
  const s = table([r('api', { prefix: '/api' }), r('api-v2', { prefix: '/api/v2/' })]);
  t.is(hit(s, req('/api')), 'api');
  t.is(hit(s, req('/api/')), 'api');
  t.is(hit(s, req('/api/v2')), 'api-v2');
  t.is(hit(s, req('/api/v2/x/y')), 'api-v2');
  t.is(hit(s, req('/api/v20')), 'api');
  t.is(hit(s, req('/apix')), null);
});

test('param patterns: more literal segments first and params are captured', (t) => {
  const s = table([r('any-any', { path: '/:a/:b' }), r('users-any', { path: '/users/:id' })]);
  t.is(hit(s, req('/users/7')), 'users-any');
  t.is(hit(s, req('/x/7')), 'any-any');
  t.deepEqual(s.match(req('/users/7'))?.params, { id: '7' });
  t.is(hit(s, req('/users/7/x')), null);
});

test('host: exact beats wildcard beats any; fall through when nothing matches in a host group', (t) => {
  const s = table([
    r('any', { prefix: '/' }),
    r('wild', { host: '*.example.com', prefix: '/' }),
    r('deep-wild', { host: '*.eu.example.com', prefix: '/' }),
    r('exact', { host: 'api.example.com', prefix: '/v1' }),
  ]);
  t.is(hit(s, req('/v1/x', { host: 'api.example.com' })), 'exact');
  t.is(hit(s, req('/v2', { host: 'api.example.com' })), 'wild');
  t.is(hit(s, req('/', { host: 'a.eu.example.com' })), 'deep-wild');
  t.is(hit(s, req('/', { host: 'example.com' })), 'any', 'a wildcard does not match the bare domain');
  t.is(hit(s, req('/', { host: 'other.org' })), 'any');
});

test('host lists and case-insensitive hosts', (t) => {
  const s = table([r('two', { host: ['A.example.com', 'b.example.com'], path: '/' })]);
  t.is(hit(s, req('/', { host: 'a.example.com' })), 'two');
  t.is(hit(s, req('/', { host: 'b.example.com' })), 'two');
  t.is(hit(s, req('/', { host: 'c.example.com' })), null);
});

test('methods, headers and query conditions; more conditions first', (t) => {
  const s = table([
    r('plain', { prefix: '/items' }),
    r('get', { prefix: '/items', methods: ['GET'] }),
    r('beta', { prefix: '/items', headers: { 'X-Beta': '1' } }),
    r('beta-get-q', { prefix: '/items', methods: ['GET'], headers: { 'x-beta': { prefix: '1' } }, query: { v: { regex: '^[0-9]+$' } } }),
    r('has-token', { prefix: '/items', headers: { authorization: { present: true } }, methods: ['DELETE'] }),
  ]);
  t.is(hit(s, req('/items', { method: 'POST' })), 'plain');
  t.is(hit(s, req('/items')), 'get');
  t.is(hit(s, req('/items', { method: 'HEAD' })), 'get', 'GET routes take HEAD');
  t.is(hit(s, req('/items', { method: 'POST', headers: { 'x-beta': '1' } })), 'beta');
  t.is(hit(s, req('/items', { headers: { 'x-beta': '10' }, query: 'v=3' })), 'beta-get-q');
  t.is(hit(s, req('/items', { headers: { 'x-beta': '10' }, query: 'v=x' })), 'get');
  t.is(hit(s, req('/items', { method: 'DELETE', headers: { authorization: 'Bearer x' } })), 'has-token');
  t.is(hit(s, req('/items', { method: 'DELETE' })), 'plain');
  t.is(s.table[0]!.route.name, 'beta-get-q');
});

test('a path-specific route with a failing condition falls back to a less specific path', (t) => {
  const s = table([r('exact-post', { path: '/orders', methods: ['POST'] }), r('orders', { prefix: '/orders' })]);
  t.is(hit(s, req('/orders', { method: 'POST' })), 'exact-post');
  t.is(hit(s, req('/orders')), 'orders');
});

test('query conditions: exact, absent', (t) => {
  const s = table([r('debug', { prefix: '/', query: { debug: 'true', trace: { present: false } } }), r('root', {})]);
  t.is(hit(s, req('/x', { query: 'debug=true' })), 'debug');
  t.is(hit(s, req('/x', { query: 'debug=true&trace=1' })), 'root');
  t.is(hit(s, req('/x', { query: 'debug=false' })), 'root');
});

test('shadowing: identical match, wider conditions first, identical param shapes', (t) => {
  t.deepEqual(findShadowedRoutes([r('a', { prefix: '/x' }), r('b', { prefix: '/x/' })]), [{ index: 1, by: 0 }]);
  t.deepEqual(findShadowedRoutes([r('a', { path: '/u/:id' }), r('b', { path: '/u/:name' })]), [{ index: 1, by: 0 }]);
  t.deepEqual(
    findShadowedRoutes([r('a', { path: '/u', methods: ['GET', 'POST'] }), r('b', { path: '/u', methods: ['GET'] })]),
    [{ index: 1, by: 0 }],
    'same number of conditions: file order decides, and a takes every GET first',
  );
  t.deepEqual(findShadowedRoutes([r('b', { path: '/u', methods: ['GET'] }), r('a', { path: '/u', methods: ['GET', 'POST'] })]), []);
  t.deepEqual(findShadowedRoutes([r('a', { path: '/u', methods: ['GET'] }), r('b', { path: '/u' })]), []);
  t.deepEqual(findShadowedRoutes([r('a', { host: ['x.com', 'y.com'] }), r('b', { host: 'x.com' })]), [{ index: 1, by: 0 }]);
  t.deepEqual(findShadowedRoutes([r('a', { host: ['x.com', 'y.com'] }), r('b', { host: ['x.com', 'z.com'] })]), []);
  t.deepEqual(findShadowedRoutes([r('a', { regex: '^/a' }), r('b', { regex: '^/a' })]), [{ index: 1, by: 0 }]);
  t.deepEqual(findShadowedRoutes([r('a', {}), r('b', { prefix: '/' })]), [{ index: 1, by: 0 }]);
});

test('patterns are tried only for their first segment, in the same order as before', (t) => {
  const s = table([
    r('any-tenant', { path: '/:tenant/health' }),
    r('users-id', { path: '/users/:id' }),
    r('orders-id', { path: '/orders/:id' }),
    r('users-digits', { regex: '^/users/[0-9]+/x$' }),
    r('alt', { regex: '^/(users|orders)/export$' }),
    r('loose', { regex: '^/usersx?/loose$' }),
  ]);
  t.is(hit(s, req('/users/7')), 'users-id');
  t.is(hit(s, req('/orders/7')), 'orders-id');
  t.is(hit(s, req('/users/health')), 'any-tenant', 'equally specific patterns keep file order, across first-segment lists too');
  t.is(hit(s, req('/acme/health')), 'any-tenant');
  t.is(hit(s, req('/users/12/x')), 'users-digits');
  t.is(hit(s, req('/orders/export')), 'orders-id');
  t.is(hit(s, req('/orders/export/')), null);
  t.is(hit(s, req('/userx/loose')), null);
  t.is(hit(s, req('/usersx/loose')), 'loose', 'a regex whose first segment is not a plain literal is tried for every path');
  t.is(hit(s, req('/users/loose')), 'users-id');
});

test('requiredFirstSegment only pins what is certain', (t) => {
  const seg = (m: RouteConfig['match']) => requiredFirstSegment(pathSpec(m));
  t.is(seg({ path: '/users/:id' }), 'users');
  t.is(seg({ path: '/:tenant/x' }), null);
  t.is(seg({ regex: '^/api/v[0-9]+/' }), 'api');
  t.is(seg({ regex: '^/api$' }), 'api');
  t.is(seg({ regex: '^/api' }), null, 'could be /apix');
  t.is(seg({ regex: '^/api(/.*)?$' }), null);
  t.is(seg({ regex: '^/a|^/b/' }), null);
  t.is(seg({ regex: '/api/' }), null, 'unanchored');
  t.is(seg({ regex: '^/ap.i/' }), null);
  t.is(seg({ prefix: '/api' }), null);
  t.is(seg({ regex: '^/api/?x' }), null, 'an optional slash: /apix matches');
});

test('requiredSegments pins every certain leading segment', (t) => {
  const segs = (m: RouteConfig['match']) => requiredSegments(pathSpec(m));
  t.deepEqual(segs({ path: '/api/v1/users/:id' }), ['api', 'v1', 'users']);
  t.deepEqual(segs({ path: '/api/:v/users/:id' }), ['api']);
  t.deepEqual(segs({ regex: '^/api/v1/users/[0-9]+$' }), ['api', 'v1', 'users']);
  t.deepEqual(segs({ regex: '^/api/v1/users$' }), ['api', 'v1', 'users']);
  t.deepEqual(segs({ regex: '^/api/v1/?users' }), ['api'], 'v1 is followed by an optional slash');
  t.deepEqual(segs({ regex: '^/api/v1/*x' }), ['api']);
  t.deepEqual(segs({ regex: '^/api/v1s?/x' }), ['api']);
  t.deepEqual(segs({ regex: '^/api/v1/users' }), ['api', 'v1'], 'users could be usersx');
  t.deepEqual(segs({ regex: '^/api/v1/(a|b)/' }), [], 'alternation anywhere: nothing pinned');
});

test('deep pattern index: a path only tries patterns its segments reach, in the same order as a scan', (t) => {
  const routes = [
    r('tenant', { path: '/:tenant/v1/users/:id' }),
    r('v1-users', { path: '/api/v1/users/:id' }),
    r('v1-any', { regex: '^/api/v1/[a-z]+/[0-9]+$' }),
    r('v2-users', { path: '/api/v2/users/:id' }),
    r('api-any', { path: '/api/:version/users/:id' }),
    r('opt-slash', { regex: '^/api/v1/?x$' }),
  ];
  // Equally specific (two literal segments each): file order, though one is pinned at the root.
  t.is(hit(table([routes[0]!, routes[4]!]), req('/api/v1/users/7')), 'tenant');
  t.is(hit(table([routes[4]!, routes[0]!]), req('/api/v1/users/7')), 'api-any');
  // More literal segments first, as in a scan.
  t.is(hit(table(routes), req('/api/v1/users/7')), 'v1-users');
  const s2 = table(routes.slice(1));
  t.is(hit(s2, req('/api/v1/users/7')), 'v1-users');
  t.is(hit(s2, req('/api/v1/items/7')), 'v1-any');
  t.is(hit(s2, req('/api/v2/users/7')), 'v2-users');
  t.is(hit(s2, req('/api/v3/users/7')), 'api-any');
  t.is(hit(s2, req('/api/v1x')), 'opt-slash', 'a path that leaves the trie early still tries patterns pinned above');
  t.is(hit(s2, req('/api/v1/x')), 'opt-slash');
  t.is(hit(s2, req('/api/v1/users/7/')), null);
  t.is(hit(s2, req('/api')), null);
});

test('property: the pattern index finds the same route as scanning every pattern in match order', (t) => {
  const seg = fc.constantFrom('api', 'v1', 'v2', 'users', 'x', 'a-b');
  const param = fc.constantFrom(':id', ':v', ':tenant');
  const paramsPath = fc.array(fc.oneof(seg, param), { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`);
  const regexPath = fc
    .tuple(fc.array(seg, { minLength: 0, maxLength: 3 }), fc.constantFrom('[0-9]+$', '[a-z]+/[0-9]+$', '?x$', '$', '/?users$', '(a|b)$', 'v?1/x$'))
    .map(([s, tail]) => `^/${s.map((x) => `${x}/`).join('')}${tail}`);
  const route = fc.oneof(paramsPath.map((path) => ({ path })), regexPath.map((regex) => ({ regex })));
  const reqPath = fc.array(fc.constantFrom('api', 'v1', 'v2', 'users', 'x', 'a-b', '7', 'a', 'b', 'v', 'apix'), { minLength: 0, maxLength: 6 }).map((s) => `/${s.join('/')}`);
  fc.assert(
    fc.property(fc.array(route, { minLength: 1, maxLength: 12 }), fc.array(reqPath, { minLength: 1, maxLength: 20 }), (matches, paths) => {
      const s = table(matches.map((m, i) => r(`r${i}`, m)));
      for (const path of paths) {
        const f = req(path);
        const pathMatches = (e: (typeof s.table)[number]) => (e.path.kind === 'exact' ? e.path.value === path : e.pathRegex!.exec(path) !== null);
        const scan = s.table.find((e) => pathMatches(e) && (e.test === null || e.test(f)));
        if ((s.match(f)?.route.name ?? null) !== (scan?.route.name ?? null)) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

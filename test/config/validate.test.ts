import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatIssue, type ConfigIssue } from '../../config/issues.ts';
import { loadConfig } from '../../config/load.ts';
import { validateConfig } from '../../config/validate.ts';

type T = { teardown(fn: () => unknown): void };

/** Loads `files` (written to a fresh temp dir) and returns the issues as text relative to it. */
async function issuesOf(t: T, files: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-validate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  const names = Object.keys(files);
  const r = await loadConfig(names.length === 1 ? path.join(dir, names[0]!) : dir, {});
  if (r.ok) return [];
  const rel = (s: string) => s.split(dir + path.sep).join('');
  return r.issues.map((i: ConfigIssue) => rel(formatIssue(i)));
}

const UPSTREAMS = `upstreams:
  monolith:
    endpoints: [http://10.0.0.5:8080]
  orders:
    endpoints: [http://10.0.0.7:8080]
`; // 5 lines

test('route names are unique: the second is reported, naming where the first is', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}routes:
  - name: a
    match: { prefix: /a }
    upstream: monolith
  - name: b
    match: { prefix: /b }
    upstream: monolith
  - name: a
    match: { prefix: /c }
    upstream: orders
`,
    }),
    ['gw.yaml:13:11 routes[2].name: route name "a" is already used by routes[0] (gw.yaml:7)'],
  );
});

test('a route sets exactly one of upstream or backends', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}routes:
  - name: both
    match: { prefix: /a }
    upstream: monolith
    backends: [{ upstream: orders }]
  - name: neither
    match: { prefix: /b }
`,
    }),
    [
      'gw.yaml:7:5 routes[0]: set either "upstream" or "backends", not both',
      'gw.yaml:11:5 routes[1]: missing a target: set "upstream" or "backends"',
    ],
  );
});

test('referenced upstreams must exist', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}routes:
  - name: a
    match: { prefix: /a }
    upstream: users
  - name: b
    match: { prefix: /b }
    backends:
      - upstream: orders
      - upstream: payments
`,
    }),
    [
      'gw.yaml:9:15 routes[0].upstream: unknown upstream "users" (known: monolith, orders)',
      'gw.yaml:14:19 routes[1].backends[1].upstream: unknown upstream "payments" (known: monolith, orders)',
    ],
  );
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'routes:\n  - name: a\n    upstream: users\n' }), [
    'gw.yaml:3:15 routes[0].upstream: unknown upstream "users" (no upstreams are defined)',
  ]);
});

test('weights: route backends and upstream endpoints must not all be 0', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `upstreams:
  monolith:
    endpoints:
      - { url: "http://10.0.0.5:8080", weight: 0 }
      - { url: "http://10.0.0.6:8080", weight: 0 }
  orders:
    endpoints: [{ url: "http://10.0.0.7:8080", weight: 0 }, http://10.0.0.8:8080]
routes:
  - name: split
    backends:
      - { upstream: monolith, weight: 0 }
      - { upstream: orders, weight: 0 }
  - name: ok
    match: { prefix: /ok }
    backends:
      - { upstream: monolith, weight: 0 }
      - { upstream: orders }
`,
    }),
    [
      'gw.yaml:4:7 upstreams.monolith.endpoints: endpoint weights add up to 0: at least one endpoint needs a weight above 0',
      'gw.yaml:11:7 routes[0].backends: backend weights add up to 0: at least one backend needs a weight above 0',
    ],
  );
});

test('endpoint URLs parse and have no path, query, fragment or credentials', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `upstreams:
  m:
    endpoints:
      - http://10.0.0.5:8080/
      - http://10.0.0.5:8080/api
      - http://10.0.0.5:8080?x=1
      - http://user:secret@10.0.0.5:8080
      - { url: "http://exa mple.com" }
      - https://host.example#frag
      - http://[::1]:8080
`,
    }),
    [
      'gw.yaml:5:9 upstreams.m.endpoints[1]: endpoint URL "http://10.0.0.5:8080/api" must not have a path ("/api"); use a route rewrite instead',
      'gw.yaml:6:9 upstreams.m.endpoints[2]: endpoint URL "http://10.0.0.5:8080?x=1" must not have a query',
      'gw.yaml:7:9 upstreams.m.endpoints[3]: endpoint URL "http://user:secret@10.0.0.5:8080" must not contain credentials',
      'gw.yaml:8:16 upstreams.m.endpoints[4].url: "http://exa mple.com" is not a valid URL',
      'gw.yaml:9:9 upstreams.m.endpoints[5]: endpoint URL "https://host.example#frag" must not have a fragment',
    ],
  );
});

test('a match uses at most one of path, prefix and regex; regexes compile', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}routes:
  - name: a
    match:
      path: /a
      prefix: /a
    upstream: monolith
  - name: b
    match:
      regex: "^/b(["
      headers:
        x-version: { regex: "(" }
      query:
        q: { regex: "a**" }
        ok: { regex: "^[0-9]+$" }
    upstream: monolith
`,
    }),
    [
      'gw.yaml:9:7 routes[0].match: use only one of "path", "prefix" or "regex" (found: path, prefix)',
      'gw.yaml:14:14 routes[1].match.regex: Invalid regular expression: /^/b([/: Unterminated character class',
      'gw.yaml:16:29 routes[1].match.headers["x-version"].regex: Invalid regular expression: /(/: Unterminated group',
      'gw.yaml:18:21 routes[1].match.query.q.regex: Invalid regular expression: /a**/: Nothing to repeat',
    ],
  );
});

test('rewrite.prefix needs match.prefix; rewrite.path parameters must come from match.path', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}routes:
  - name: a
    match: { path: /a }
    rewrite: { prefix: /b }
    upstream: monolith
  - name: b
    match: { path: /users/:id/orders/:order }
    rewrite: { path: /v2/users/:id/orders/:orderId }
    upstream: monolith
  - name: c
    match: { prefix: /c }
    rewrite: { path: /x/:id }
    upstream: monolith
  - name: d
    match: { prefix: /d }
    rewrite: { prefix: / }
    upstream: monolith
  - name: e
    match: { path: /e/:id }
    rewrite: { path: /legacy/e/:id }
    upstream: monolith
`,
    }),
    [
      'gw.yaml:9:24 routes[0].rewrite.prefix: rewrite.prefix needs match.prefix (the prefix it replaces)',
      'gw.yaml:13:22 routes[1].rewrite.path: uses ":orderId" but match.path "/users/:id/orders/:order" has no such parameter (has: :id, :order)',
      'gw.yaml:17:22 routes[2].rewrite.path: uses ":id" but the route has no match.path to take it from',
    ],
  );
});

test('trustedProxies are IP addresses or CIDRs', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `gateway:
  trustedProxies:
    - 10.0.0.0/8
    - 192.168.0.1
    - 2001:db8::/32
    - ::1
    - 10.0.0.0/33
    - 10.0.0/8
    - proxy.internal
    - 10.0.0.1/
`,
    }),
    [
      'gw.yaml:7:7 gateway.trustedProxies[4]: "10.0.0.0/33" is not a valid IP address or CIDR: the prefix length must be at most 32',
      'gw.yaml:8:7 gateway.trustedProxies[5]: "10.0.0/8" is not a valid IP address or CIDR',
      'gw.yaml:9:7 gateway.trustedProxies[6]: "proxy.internal" is not a valid IP address or CIDR',
      'gw.yaml:10:7 gateway.trustedProxies[7]: "10.0.0.1/" is not a valid IP address or CIDR',
    ],
  );
});

test('methods are HTTP methods node knows; header names are unique ignoring case', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}routes:
  - name: a
    match:
      prefix: /a
      methods: [GET, FETCH, PURGE, GET]
      headers:
        X-Tenant: acme
        x-tenant: { present: true }
        x-other: b
    upstream: monolith
`,
    }),
    [
      'gw.yaml:10:22 routes[0].match.methods[1]: unknown HTTP method "FETCH"',
      'gw.yaml:10:36 routes[0].match.methods[3]: method "GET" is listed twice',
      'gw.yaml:13:9 routes[0].match.headers["x-tenant"]: header "x-tenant" is already matched as "X-Tenant" (header names are case-insensitive)',
    ],
  );
});

test('gateway.listen and admin.listen must differ unless the port is 0', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': 'gateway:\n  listen: { host: 127.0.0.1, port: 8080 }\nadmin:\n  listen: { host: 127.0.0.1, port: 8080 }\n',
    }),
    ['gw.yaml:4:11 admin.listen: 127.0.0.1:8080 clashes with gateway.listen (gw.yaml:2) 127.0.0.1:8080; the gateway and admin listeners need different addresses (or port 0)'],
  );
  // A wildcard address takes the port on every address.
  t.is(
    (await issuesOf(t, { 'gw.yaml': 'gateway:\n  listen: { host: 0.0.0.0, port: 9000 }\nadmin:\n  listen: { host: 127.0.0.1, port: 9000 }\n' })).length,
    1,
  );
  // Against the other listener's default.
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'admin:\n  listen: { host: 0.0.0.0, port: 8080 }\n' }), [
    'gw.yaml:2:11 admin.listen: 0.0.0.0:8080 clashes with the default gateway.listen 0.0.0.0:8080; the gateway and admin listeners need different addresses (or port 0)',
  ]);
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'gateway:\n  listen: { host: 127.0.0.1, port: 0 }\nadmin:\n  listen: { host: 127.0.0.1, port: 0 }\n' }), []);
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'gateway:\n  listen: { host: 127.0.0.1, port: 8080 }\nadmin:\n  listen: { host: 127.0.0.1, port: 8081 }\n' }), []);
  t.deepEqual(await issuesOf(t, { 'gw.yaml': 'gateway:\n  listen: { host: 10.0.0.1, port: 8080 }\nadmin:\n  listen: { host: 127.0.0.1, port: 8080 }\n' }), []);
});

test('a route that can never match is reported with the route that takes its requests', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'a.yaml': `${UPSTREAMS}routes:
  - name: api
    match: { prefix: /api }
    upstream: monolith
`,
      'b.yaml': `routes:
  - name: api-orders
    match: { prefix: /api/orders }
    upstream: orders
  - name: api-again
    match: { prefix: /api }
    upstream: orders
`,
    }),
    ['b.yaml:5:5 routes[2]: route "api-again" can never match: route "api" (a.yaml:7) takes every request it would'],
  );
});

test('schema messages: one clear message per problem, no anyOf noise', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `gateway:
  drainTimeout: -5
  requestIdHeader: "x id"
upstreams:
  "bad name":
    endpoints: [http://10.0.0.1:80]
  m:
    endpoints:
      - { url: "http://10.0.0.1:80", wieght: 2 }
      - { weight: 1 }
      - true
    connections: 0
  n: {}
routes:
  - match: { prefix: /x }
    upstream: m
  - name: "-x"
    upstream: m
    match:
      host: []
      headers:
        x-a: { exakt: b }
        x-b: { exact: b, prefix: c }
        x-c: {}
        x-d: 3
    rewrite: {}
`,
    }),
    [
      'gw.yaml:2:17 gateway.drainTimeout: expected a duration like "2s" or "250ms"',
      'gw.yaml:3:20 gateway.requestIdHeader: must be a valid header name (letters, digits and !#$%&\'*+.^_`|~-)',
      'gw.yaml:5:3 upstreams["bad name"]: invalid name "bad name": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"',
      'gw.yaml:9:38 upstreams.m.endpoints[0].wieght: unknown field "wieght" (allowed: url, weight)',
      'gw.yaml:10:9 upstreams.m.endpoints[1]: missing required field "url"',
      'gw.yaml:11:9 upstreams.m.endpoints[2]: expected an endpoint URL like "http://10.0.0.5:8080" or an object {url, weight}, got a boolean (true)',
      'gw.yaml:12:18 upstreams.m.connections: must be at least 1, got 0',
      'gw.yaml:13:6 upstreams.n: missing required field "endpoints"',
      'gw.yaml:15:5 routes[0]: missing required field "name"',
      'gw.yaml:17:11 routes[1].name: must start with a letter or digit and contain only letters, digits, ".", "_" and "-"',
      'gw.yaml:20:13 routes[1].match.host: must not be an empty list',
      'gw.yaml:22:16 routes[1].match.headers["x-a"].exakt: unknown field "exakt" (allowed: exact, prefix, regex, present)',
      'gw.yaml:23:14 routes[1].match.headers["x-b"]: must set exactly one of exact, prefix, regex, present (found: exact, prefix)',
      'gw.yaml:24:14 routes[1].match.headers["x-c"]: must set exactly one of exact, prefix, regex, present',
      'gw.yaml:25:14 routes[1].match.headers["x-d"]: expected a string or one of {exact}, {prefix}, {regex}, {present: true|false}, got a number (3)',
      'gw.yaml:26:14 routes[1].rewrite: must set exactly one of prefix, path',
    ],
  );
});

test('semantic checks skip parts that failed the schema', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'gw.yaml': `${UPSTREAMS}gateway:
  trustedProxies: [5, 10.0.0.0/8]
routes:
  - name: a
    match:
      regex: 5
      methods: [get]
    upstream: monolith
`,
    }),
    [
      'gw.yaml:7:20 gateway.trustedProxies[0]: expected a string, got a number (5)',
      'gw.yaml:11:14 routes[0].match.regex: expected a string, got a number (5)',
      'gw.yaml:12:17 routes[0].match.methods[0]: must be an upper-case method name like "GET"',
    ],
  );
});

test('issues are sorted by file, then line', async (t) => {
  t.deepEqual(
    await issuesOf(t, {
      'b.yaml': 'routes:\n  - name: x\n    upstream: nope\n  - name: y\n    upstream: 5\n',
      'a.yaml': `${UPSTREAMS}routes:\n  - name: z\n    upstream: missing\n    match: { path: nope }\n`,
    }),
    [
      'a.yaml:8:15 routes[0].upstream: unknown upstream "missing" (known: monolith, orders)',
      'a.yaml:9:20 routes[0].match.path: must be a string starting with "/"',
      'b.yaml:3:15 routes[1].upstream: unknown upstream "nope" (known: monolith, orders)',
      'b.yaml:5:15 routes[2].upstream: expected a string, got a number (5)',
    ],
  );
});

test('validateConfig checks a model without source locations', (t) => {
  const good = validateConfig({ upstreams: { m: { endpoints: ['http://10.0.0.1:80'] } }, routes: [{ name: 'a', upstream: 'm' }] });
  t.true(good.ok);
  const bad = validateConfig({ routes: [{ name: 'a', upstream: 'm', match: { path: 'x' } }] });
  t.false(bad.ok);
  if (bad.ok) return;
  t.deepEqual(bad.issues, [
    { path: 'routes[0].match.path', message: 'must be a string starting with "/"' },
    { path: 'routes[0].upstream', message: 'unknown upstream "m" (no upstreams are defined)' },
  ]);
});

import test from 'ava';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIssue, type ConfigIssue } from '../../config/issues.ts';
import { loadConfig, loadConfigText } from '../../config/load.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Writes files into a fresh temp directory, removed after the test. */
async function tmpConfig(t: { teardown(fn: () => unknown): void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-load-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

/** Issues as text with file names relative to `dir`. */
const lines = (dir: string, issues: ConfigIssue[]) =>
  issues.map((i) => formatIssue({ ...i, ...(i.file ? { file: path.relative(dir, i.file) || '.' } : {}) }));

test('a file with several errors gets all of them, each with file:line:column and path', async (t) => {
  const dir = await tmpConfig(t, {
    'gw.yaml': `gateway:
  listen:
    host: 0.0.0.0
    port: 70000
  drainTimeout: 10 seconds
upstreams:
  monolith:
    endpoints:
      - http://10.0.0.5:8080
      - ftp://10.0.0.6
routes:
  - name: users
    match:
      pathh: /users
    upstream: monolith
  - name: orders
    match:
      path: orders
    upstream: monolith
    timeouts:
      connect: soon
`,
  });
  const r = await loadConfig(path.join(dir, 'gw.yaml'), {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(dir, r.issues), [
    'gw.yaml:4:11 gateway.listen.port: must be at most 65535, got 70000',
    'gw.yaml:5:17 gateway.drainTimeout: expected a duration like "2s" or "250ms"',
    'gw.yaml:10:9 upstreams.monolith.endpoints[1]: must be a URL starting with "http://" or "https://"',
    'gw.yaml:14:7 routes[0].match.pathh: unknown field "pathh" (allowed: host, path, prefix, regex, methods, headers, query)',
    'gw.yaml:18:13 routes[1].match.path: must be a string starting with "/"',
    'gw.yaml:21:16 routes[1].timeouts.connect: expected a duration like "2s" or "250ms"',
  ]);
  // Issues carry the file as the loader was given it.
  t.is(r.issues[0]!.file, path.join(dir, 'gw.yaml'));
});

test('YAML syntax errors are reported at their line and column', async (t) => {
  const dir = await tmpConfig(t, {
    'gw.yaml': 'upstreams:\n  m:\n    endpoints: [http://a:1\nroutes: []\n',
  });
  const r = await loadConfig(path.join(dir, 'gw.yaml'), {});
  t.false(r.ok);
  if (r.ok) return;
  t.is(r.issues.length, 1);
  t.like(r.issues[0], { file: path.join(dir, 'gw.yaml'), line: 4, column: 1, path: '' });
  t.regex(r.issues[0]!.message, /Flow sequence/);
});

test('YAML syntax: a duplicate key and a bad indent, and the cascade is cut short', async (t) => {
  const dir = await tmpConfig(t, {
    'a.yaml': 'gateway:\n  listen: {host: a, port: 1}\n  listen: {host: b, port: 2}\n',
    'b.yaml': 'routes:\n  - name: a\n    upstream: x\n   bad: indentation\n',
    'c.json': '{ "upstreams": { "m": { "endpoints": ["http://a:1"] "x": 1 } } }',
  });
  const r = await loadConfig(dir, {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(dir, r.issues), [
    'a.yaml:3:3: Map keys must be unique',
    'b.yaml:4:1: Sequence item without - indicator',
    'c.json:1:53: Unexpected double-quoted-scalar at node end',
  ]);

  const noisy = await loadConfig(
    (await tmpConfig(t, { 'n.yaml': `a: [${'x, '.repeat(5)}\n${'k: v\n'.repeat(30)}` })) + '/n.yaml',
    {},
  );
  t.false(noisy.ok);
  if (noisy.ok) return;
  t.true(noisy.issues.length <= 11, `${noisy.issues.length} issues`);
  t.regex(noisy.issues.at(-1)!.message, /more YAML errors/);
});

test('a directory: files merged in name order; an error in the second file points at that file', async (t) => {
  const dir = await tmpConfig(t, {
    '10-base.yaml': `gateway:
  listen:
    host: 0.0.0.0
    port: 8080
upstreams:
  monolith:
    endpoints: [http://10.0.0.5:8080]
routes:
  - name: home
    match: { path: / }
    upstream: monolith
  - name: api
    match: { prefix: /api }
    upstream: monolith
`,
    '20-more.yml': `admin:
  listen: { host: 127.0.0.1, port: 9000 }
routes:
  - name: users
    match: { prefix: /users }
    upstream: monolith
  - name: orders
    match:
      prefix: orders
    upstream: monolith
`,
    'README.md': '# not config',
    'nested/30-ignored.yaml': 'routes: [{ name: nope, upstream: nope }]',
    '.hidden.yaml': 'routes: [{ name: hidden, upstream: nope }]',
  });
  const bad = await loadConfig(dir, {});
  t.false(bad.ok);
  if (bad.ok) return;
  t.deepEqual(lines(dir, bad.issues), ['20-more.yml:9:15 routes[3].match.prefix: must be a string starting with "/"']);

  const second = path.join(dir, '20-more.yml');
  await writeFile(second, (await readFile(second, 'utf8')).replace('prefix: orders', 'prefix: /orders'));
  const good = await loadConfig(dir, {});
  if (!good.ok) return t.fail(lines(dir, good.issues).join('\n'));
  t.deepEqual(
    good.model.routes?.map((r) => r.name),
    ['home', 'api', 'users', 'orders'],
  );
  t.deepEqual(good.model.gateway?.listen, { host: '0.0.0.0', port: 8080 });
  t.deepEqual(good.model.admin?.listen, { host: '127.0.0.1', port: 9000 });
  t.deepEqual(good.sources, [path.resolve(dir, '10-base.yaml'), path.resolve(dir, '20-more.yml')]);
});

test('the same upstream in two files is an issue naming both', async (t) => {
  const dir = await tmpConfig(t, {
    'a.yaml': 'upstreams:\n  monolith:\n    endpoints: [http://10.0.0.5:8080]\n  orders:\n    endpoints: [http://10.0.0.7:80]\n',
    'b.yaml': '# second\nupstreams:\n  users:\n    endpoints: [http://10.0.0.8:80]\n  monolith:\n    endpoints: [http://10.0.0.6:8080]\n',
  });
  const r = await loadConfig(dir, {});
  t.false(r.ok);
  if (r.ok) return;
  t.is(r.issues.length, 1);
  const issue = r.issues[0]!;
  t.like(issue, { file: path.join(dir, 'b.yaml'), line: 5, column: 3, path: 'upstreams.monolith' });
  t.is(issue.message, `upstream "monolith" is defined in both ${path.join(dir, 'a.yaml')}:2 and ${path.join(dir, 'b.yaml')}:5`);
});

test('the same gateway/admin key in two files is an issue naming both; different keys merge', async (t) => {
  const dir = await tmpConfig(t, {
    'a.yaml': 'gateway:\n  listen: { host: 0.0.0.0, port: 8080 }\n  drainTimeout: 5s\n',
    'b.yaml': 'gateway:\n  trustedProxies: [10.0.0.0/8]\n  drainTimeout: 9s\nadmin:\n  listen: { host: 127.0.0.1, port: 9901 }\n',
  });
  const r = await loadConfig(dir, {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(dir, r.issues), [
    `b.yaml:3:3 gateway.drainTimeout: gateway.drainTimeout is set in both ${path.join(dir, 'a.yaml')}:3 and ${path.join(dir, 'b.yaml')}:3; each setting may appear in one file only`,
  ]);

  const ok = loadConfigText([
    { file: 'a.yaml', text: 'gateway:\n  drainTimeout: 5s\n' },
    { file: 'b.yaml', text: 'gateway:\n  trustedProxies: [10.0.0.0/8]\n' },
  ]);
  if (!ok.ok) return t.fail();
  t.deepEqual(ok.model.gateway, { drainTimeout: '5s', trustedProxies: ['10.0.0.0/8'] });
});

test('a missing target, an empty directory and a directory without config files are issues, not throws', async (t) => {
  const dir = await tmpConfig(t, { 'other/notes.txt': 'hello', 'other/sub/x.yaml': 'routes: []' });
  const missing = await loadConfig(path.join(dir, 'nope.yaml'));
  t.deepEqual(missing, { ok: false, issues: [{ file: path.join(dir, 'nope.yaml'), path: '', message: 'file or directory does not exist' }] });

  await mkdir(path.join(dir, 'empty'));
  const empty = await loadConfig(path.join(dir, 'empty'));
  t.deepEqual(empty, { ok: false, issues: [{ file: path.join(dir, 'empty'), path: '', message: 'directory has no .yaml, .yml or .json files' }] });

  const other = await loadConfig(path.join(dir, 'other'));
  t.false(other.ok);
  if (other.ok) return;
  t.is(other.issues[0]!.message, 'directory has no .yaml, .yml or .json files');
});

test('symlinked files count (as in Kubernetes ConfigMap mounts); dangling links are skipped', async (t) => {
  const dir = await tmpConfig(t, {
    '..data/gw.yaml': 'upstreams:\n  m:\n    endpoints: [http://10.0.0.1:80]\n',
  });
  await symlink(path.join('..data', 'gw.yaml'), path.join(dir, 'gw.yaml'));
  await symlink(path.join(dir, 'missing.yaml'), path.join(dir, 'dangling.yaml'));
  const r = await loadConfig(dir, {});
  if (!r.ok) return t.fail(lines(dir, r.issues).join('\n'));
  t.deepEqual(Object.keys(r.model.upstreams ?? {}), ['m']);
  t.deepEqual(r.sources, [path.join(dir, 'gw.yaml')]);
});

test('relative tls paths are resolved against the declaring file; absolute ones are kept', async (t) => {
  const dir = await tmpConfig(t, {
    'conf/10-tls.yaml': 'gateway:\n  tls:\n    cert: certs/gw.pem\n    key: /etc/causeway/gw-key.pem\n',
    'conf/20-routes.yaml': 'routes: []\n',
  });
  const r = await loadConfig(path.join(dir, 'conf'), {});
  if (!r.ok) return t.fail(lines(dir, r.issues).join('\n'));
  t.deepEqual(r.model.gateway?.tls, { cert: path.join(dir, 'conf', 'certs', 'gw.pem'), key: '/etc/causeway/gw-key.pem' });

  // Also when the file is named relative to the working directory.
  const rel = loadConfigText([{ file: 'some/dir/gw.yaml', text: 'gateway:\n  tls: { cert: a.pem, key: ../k.pem }\n' }]);
  if (!rel.ok) return t.fail();
  t.deepEqual(rel.model.gateway?.tls, { cert: path.resolve('some/dir/a.pem'), key: path.resolve('some/k.pem') });
});

test('an empty file is an empty config; a top level that is not an object is an issue', async (t) => {
  const dir = await tmpConfig(t, { 'a.yaml': '# nothing yet\n', 'b.yaml': '- just\n- a list\n' });
  const empty = await loadConfig(path.join(dir, 'a.yaml'), {});
  t.deepEqual(empty, { ok: true, model: {}, sources: [path.join(dir, 'a.yaml')] });
  const list = await loadConfig(path.join(dir, 'b.yaml'), {});
  t.false(list.ok);
  if (list.ok) return;
  t.deepEqual(lines(dir, list.issues), [
    'b.yaml:1:1: the top level must be an object with gateway, admin, upstreams, routes, policies, defaultPolicies, consumers, redis, telemetry',
  ]);
});

test('sections that are the wrong kind or unknown at the top level are reported where they are', (t) => {
  const r = loadConfigText([
    { file: 'a.yaml', text: 'routes:\n  name: x\nupstream:\n  m: {}\n' },
    { file: 'b.yaml', text: 'gateway: [1]\nupstream: {}\n' },
  ]);
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(r.issues.map(formatIssue), [
    'a.yaml:2:3 routes: expected a list, got an object',
    'a.yaml:3:1 upstream: unknown field "upstream" (allowed: gateway, admin, upstreams, routes, policies, defaultPolicies, consumers, redis, telemetry)',
    'b.yaml:1:10 gateway: expected an object, got a list',
    'b.yaml:2:1 upstream: unknown field "upstream" (allowed: gateway, admin, upstreams, routes, policies, defaultPolicies, consumers, redis, telemetry)',
  ]);
});

test('YAML anchors and aliases are followed', (t) => {
  const r = loadConfigText([
    {
      file: 'a.yaml',
      text: 'upstreams:\n  m:\n    endpoints: [http://10.0.0.1:80]\n    timeouts: &t { connect: 1s, response: 2s }\nroutes:\n  - name: r\n    upstream: m\n    timeouts: *t\n',
    },
  ]);
  if (!r.ok) return t.fail(r.issues.map(formatIssue).join('\n'));
  t.deepEqual(r.model.routes?.[0]?.timeouts, { connect: '1s', response: '2s' });
});

test('a valid full example (a directory with YAML and JSON) passes', async (t) => {
  const dir = path.join(FIXTURES, 'full');
  const r = await loadConfig(dir, {});
  if (!r.ok) return t.fail(lines(dir, r.issues).join('\n'));
  t.deepEqual(r.sources, ['10-gateway.yaml', '20-upstreams.json', '30-routes.yml', '40-policies.yaml'].map((f) => path.join(dir, f)));
  const m = r.model;
  t.false('$schema' in m);
  t.deepEqual(m.gateway?.listen, { host: '0.0.0.0', port: 8443 });
  t.deepEqual(m.gateway?.tls, { cert: path.join(dir, 'certs/gateway.pem'), key: path.join(dir, 'certs/gateway-key.pem') });
  t.deepEqual(m.gateway?.trustedProxies, ['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1']);
  t.deepEqual(Object.keys(m.upstreams ?? {}), ['monolith', 'orders-v2']);
  t.deepEqual(m.upstreams?.monolith?.timeouts, { connect: '2s', response: 30000, idle: '1.5m' });
  t.deepEqual(m.routes?.map((x) => x.name), ['orders', 'user', 'assets', 'everything-else']);
  t.deepEqual(m.routes?.[0]?.requestHeaders?.set, { 'x-env': 'test' });
  t.is(m.routes?.[0]?.websocket, false);
  t.deepEqual(m.routes?.[0]?.policies, ['users', 'admins-only', 'per-client', 'browser', 'mesh-identity']);
  t.is(m.routes?.[2]?.useDefaultPolicies, false);
  t.deepEqual(Object.keys(m.policies ?? {}), [
    'users',
    'users-offline',
    'partner-idp',
    'webhooks',
    'partners',
    'admins-only',
    'per-client',
    'browser',
    'small-bodies',
    'read-only',
    'office',
    'tag-request',
    'hide-server',
    'mesh-identity',
  ]);
  // Key files are resolved against the directory of the file that names them.
  t.is(m.policies?.['users-offline']?.jwt?.jwksFile, path.join(dir, 'keys/idp-jwks.json'));
  t.is(m.policies?.['partner-idp']?.jwt?.publicKeyFile, path.join(dir, 'keys/partner-idp.pem'));
  t.is(m.policies?.['mesh-identity']?.identityToken?.keyFile, path.join(dir, 'keys/identity-key.pem'));
  t.is(m.policies?.['small-bodies']?.bodyLimit, '1MiB');
  t.deepEqual(m.defaultPolicies, ['small-bodies', 'tag-request', 'hide-server']);
  t.deepEqual(Object.keys(m.consumers ?? {}), ['acme', 'globex']);
  t.deepEqual(m.consumers?.acme?.keys, ['acme-test-key-0123456789']);
  t.deepEqual(m.redis, { url: 'redis://127.0.0.1:6379/0', timeout: '150ms', keyPrefix: 'cw-test:' });

  const withEnv = await loadConfig(dir, { CW_TEST_PORT: '9443', CW_TEST_ENV: 'prod', CW_TEST_ACME_KEY: 'acme-prod-key-from-env-000' });
  if (!withEnv.ok) return t.fail();
  t.is(withEnv.model.gateway?.listen?.port, 9443);
  t.deepEqual(withEnv.model.routes?.[0]?.requestHeaders?.set, { 'x-env': 'prod' });
  t.deepEqual(withEnv.model.consumers?.acme?.keys, ['acme-prod-key-from-env-000']);
});

test('a single JSON file loads, with locations for its issues', async (t) => {
  const dir = await tmpConfig(t, {
    'gw.json': '{\n  "upstreams": {\n    "m": { "endpoints": [] }\n  },\n  "routes": [\n    { "name": "a", "upstream": "m", "websocket": "yes" }\n  ]\n}\n',
  });
  const r = await loadConfig(path.join(dir, 'gw.json'), {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(dir, r.issues), [
    'gw.json:3:25 upstreams.m.endpoints: must not be an empty list',
    'gw.json:6:50 routes[0].websocket: expected true or false, got a string ("yes")',
  ]);
});

test('an alias bomb is cut off with an issue instead of eating memory', (t) => {
  let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 9; i++) text += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  const r = loadConfigText([{ file: 'bomb.yaml', text }]);
  t.false(r.ok);
  if (r.ok) return;
  t.true(r.issues.some((i) => /more than 10000 alias expansions/.test(i.message)));
});

test('a section of the wrong kind in one file does not hide the same section from another', (t) => {
  const r = loadConfigText([
    { file: 'a.yaml', text: 'gateway: true\nroutes: 5\n' },
    { file: 'b.yaml', text: 'gateway:\n  drainTimeout: nope\nupstreams:\n  m:\n    endpoints: [http://10.0.0.1:80]\nroutes:\n  - name: r\n    upstream: m\n' },
  ]);
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(r.issues.map(formatIssue), [
    'a.yaml:1:10 gateway: expected an object, got a boolean',
    'a.yaml:2:9 routes: expected a list, got a number',
    'b.yaml:2:17 gateway.drainTimeout: expected a duration like "2s" or "250ms"',
  ]);
});

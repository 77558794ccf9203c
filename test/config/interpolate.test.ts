import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { coerceScalar, interpolate } from '../../config/interpolate.ts';
import { formatIssue } from '../../config/issues.ts';
import { loadConfig } from '../../config/load.ts';

async function configFile(t: { teardown(fn: () => unknown): void }, text: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-interp-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gw.yaml');
  await writeFile(file, text);
  return file;
}

const lines = (issues: Array<Parameters<typeof formatIssue>[0]>) =>
  issues.map((i) => formatIssue({ ...i, ...(i.file ? { file: path.basename(i.file) } : {}) }));

test('interpolate: ${VAR}, ${VAR:-default}, $${ and a lone $', (t) => {
  const env = { HOST: 'db.local', EMPTY: '', N: '5' };
  t.deepEqual(interpolate('postgres://${HOST}:5432', env), { value: 'postgres://db.local:5432', errors: [], whole: false });
  t.deepEqual(interpolate('${HOST}', env), { value: 'db.local', errors: [], whole: true });
  t.is(interpolate('${MISSING:-fallback}', env).value, 'fallback');
  t.is(interpolate('${EMPTY:-fallback}', env).value, 'fallback', ':- also replaces an empty value, as in sh');
  t.is(interpolate('[${EMPTY}]', env).value, '[]', 'a set but empty variable without default is empty');
  t.is(interpolate('${MISSING:-}', env).value, '');
  t.is(interpolate('$${HOST} costs $5 and $$', env).value, '${HOST} costs $5 and $$');
  t.is(interpolate('${N}${N}-${HOST}', env).value, '55-db.local');
  t.false(interpolate('${N}${N}', env).whole);
  t.is(interpolate('no refs', env).value, 'no refs');
});

test('interpolate: errors for unset variables and bad references', (t) => {
  t.deepEqual(interpolate('${DB_HOST}', {}).errors, ['environment variable DB_HOST is not set']);
  t.deepEqual(interpolate('${A} ${B}', { A: 'x' }).errors, ['environment variable B is not set']);
  t.regex(interpolate('${1ABC}', {}).errors[0]!, /invalid variable reference "\$\{1ABC\}"/);
  t.regex(interpolate('${A-B}', { A: 'x' }).errors[0]!, /invalid variable reference/);
  t.regex(interpolate('abc ${HOST', { HOST: 'x' }).errors[0]!, /unterminated "\$\{"/);
});

test('coerceScalar: integers and booleans only', (t) => {
  t.is(coerceScalar('8080'), 8080);
  t.is(coerceScalar('-3'), -3);
  t.is(coerceScalar('true'), true);
  t.is(coerceScalar('false'), false);
  t.is(coerceScalar('1.5'), '1.5');
  t.is(coerceScalar('yes'), 'yes');
  t.is(coerceScalar('99999999999999999999'), '99999999999999999999');
});

const BASE = `upstreams:
  m:
    endpoints: [http://10.0.0.1:80]
routes:
  - name: all
    upstream: m
`;

test('loading: variables with and without default, $${ and numeric/boolean coercion of plain scalars', async (t) => {
  const file = await configFile(
    t,
    `gateway:
  listen:
    host: \${HOST:-0.0.0.0}
    port: \${PORT:-8080}
admin:
  listen:
    host: 127.0.0.1
    port: \${ADMIN_PORT}
upstreams:
  m:
    endpoints: ["http://\${UP_HOST}:\${UP_PORT:-80}"]
    passHost: \${PASS_HOST}
routes:
  - name: all
    upstream: m
    requestHeaders:
      set:
        x-template: "$\${not.a.var}"
`,
  );
  const r = await loadConfig(file, { ADMIN_PORT: '9000', UP_HOST: 'orders.internal', PASS_HOST: 'false' });
  if (!r.ok) return t.fail(lines(r.issues).join('\n'));
  t.deepEqual(r.model.gateway?.listen, { host: '0.0.0.0', port: 8080 });
  t.deepEqual(r.model.admin?.listen, { host: '127.0.0.1', port: 9000 });
  t.deepEqual(r.model.upstreams?.m?.endpoints, ['http://orders.internal:80']);
  t.is(r.model.upstreams?.m?.passHost, false);
  t.is(r.model.routes?.[0]?.requestHeaders?.set?.['x-template'], '${not.a.var}');
});

test('loading: a plain ${...} that becomes a number where a string is expected is reported', async (t) => {
  const file = await configFile(t, `${BASE}    requestHeaders:\n      set:\n        x-port: \${PORT}\n`);
  const r = await loadConfig(file, { PORT: '9000' });
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(r.issues), ['gw.yaml:9:17 routes[0].requestHeaders.set["x-port"]: expected a string, got a number (9000)']);
});

test('loading: quoted ${...} stays a string, so a quoted port is a type error', async (t) => {
  const file = await configFile(t, `gateway:\n  listen:\n    host: a\n    port: "\${PORT}"\n${BASE}`);
  const r = await loadConfig(file, { PORT: '8080' });
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(r.issues), ['gw.yaml:4:11 gateway.listen.port: expected a whole number, got a string ("8080")']);
});

test('loading: an unset variable is an issue at its node, and nothing else is said about that value', async (t) => {
  const file = await configFile(
    t,
    `gateway:
  listen:
    host: 0.0.0.0
    port: \${PORT}
upstreams:
  m:
    endpoints:
      - http://\${DB_HOST}:5432
      - \${OTHER:-http://10.0.0.9:80}
routes:
  - name: all
    upstream: m
`,
  );
  const r = await loadConfig(file, {});
  t.false(r.ok);
  if (r.ok) return;
  t.deepEqual(lines(r.issues), [
    'gw.yaml:4:11 gateway.listen.port: environment variable PORT is not set',
    'gw.yaml:8:9 upstreams.m.endpoints[0]: environment variable DB_HOST is not set',
  ]);
});

test('loading: keys are not interpolated', async (t) => {
  const file = await configFile(t, `${BASE}    match:\n      query:\n        "\${X}": "\${X:-1}"\n`);
  const r = await loadConfig(file, { X: 'y' });
  if (!r.ok) return t.fail(lines(r.issues).join('\n'));
  t.deepEqual(r.model.routes?.[0]?.match?.query, { '${X}': 'y' });
});

test('loading: env defaults to process.env', async (t) => {
  const name = `CW_TEST_${process.pid}_HOST`;
  process.env[name] = '10.1.2.3';
  t.teardown(() => delete process.env[name]);
  const file = await configFile(t, `upstreams:\n  m:\n    endpoints:\n      - http://\${${name}}:80\n`);
  const r = await loadConfig(file);
  if (!r.ok) return t.fail(lines(r.issues).join('\n'));
  t.deepEqual(r.model.upstreams?.m?.endpoints, ['http://10.1.2.3:80']);
});

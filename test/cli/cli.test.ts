import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { tempDir } from '../helpers/gateway.ts';
import { runCli } from '../helpers/process.ts';

test('validate: a file with several errors prints each with file:line and exits 1', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'broken.yaml');
  await writeFile(
    file,
    [
      'upstreams:', //                          1
      '  monolith:', //                         2
      '    endpoints: [http://127.0.0.1:3000]', // 3
      'routes:', //                             4
      '  - name: users', //                     5
      '    upstream: users-svc', //             6  unknown upstream
      '    match: { path: users }', //          7  path must start with /
      '  - name: users', //                     8  duplicate name
      '    upstream: monolith', //              9
      '    timeouts: { response: soon }', //   10  not a duration
      '',
    ].join('\n'),
  );
  const run = await runCli(['validate', file]);
  t.is(run.code, 1);
  const lines = run.stderr.split('\n').filter((l) => l.includes('broken.yaml:'));
  t.true(lines.length >= 4, run.stderr);
  t.regex(run.stderr, /broken\.yaml:6:\d+ routes\[0\]\.upstream: .*unknown upstream "users-svc"/);
  t.regex(run.stderr, /broken\.yaml:7:\d+ routes\[0\]\.match\.path: /);
  t.regex(run.stderr, /broken\.yaml:8:\d+ routes\[1\]\.name: .*users/);
  t.regex(run.stderr, /broken\.yaml:10:\d+ routes\[1\]\.timeouts\.response: .*duration/);
  t.regex(run.stderr, /\d+ errors in /);
});

test('validate: a valid directory prints a summary and exits 0; --json too', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'conf'));
  await writeFile(join(dir, 'conf', '10-upstreams.yaml'), 'upstreams:\n  mono: { endpoints: [http://127.0.0.1:3000, http://127.0.0.1:3001] }\n');
  await writeFile(join(dir, 'conf', '20-routes.yaml'), 'routes:\n  - { name: all, upstream: mono }\n  - { name: api, upstream: mono, match: { prefix: /api } }\n');
  const run = await runCli(['validate', join(dir, 'conf')]);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /valid \(version [0-9a-f]{12}\): 2 routes, 1 upstream with 2 endpoints, from 2 files/);
  const json = await runCli(['validate', join(dir, 'conf'), '--json']);
  const parsed = JSON.parse(json.stdout);
  t.is(parsed.valid, true);
  t.is(parsed.routes, 2);
});

test('routes: prints the table in match order', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'routes.yaml');
  await writeFile(
    file,
    [
      'upstreams:',
      '  mono: { endpoints: [http://127.0.0.1:3000] }',
      '  users: { endpoints: [http://127.0.0.1:3001] }',
      'routes:',
      '  - { name: catch-all, upstream: mono }',
      '  - { name: users-by-id, upstream: users, match: { path: /users/:id, methods: [GET] } }',
      '  - { name: users-me, upstream: users, match: { path: /users/me } }',
      '  - { name: api-host, upstream: users, match: { host: api.example.com, prefix: /v1 } }',
      '  - name: split',
      '    match: { prefix: /orders, headers: { x-beta: "1" } }',
      '    backends: [{ upstream: mono, weight: 90 }, { upstream: users, weight: 10 }]',
      '',
    ].join('\n'),
  );
  const run = await runCli(['routes', file]);
  t.is(run.code, 0, run.stderr);
  const names = run.stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[1])
    .filter((n) => n !== undefined && n !== '' && !/entr/.test(n));
  t.deepEqual(names.slice(0, 5), ['api-host', 'users-me', 'users-by-id', 'split', 'catch-all']);
  t.regex(run.stdout, /split\s+\*\s+\/orders\/\*\s+prefix\s+x-beta: 1\s+mono 90%, users 10%/);
  const json = JSON.parse((await runCli(['routes', file, '--json'])).stdout);
  t.is(json[0].route, 'api-host');
  t.is(json[0].host, 'api.example.com');
});

test('--help on every command, and a clear message for an unknown command', async (t) => {
  for (const cmd of ['gateway', 'validate', 'routes']) {
    const run = await runCli([cmd, '--help']);
    t.is(run.code, 0);
    t.regex(run.stdout, new RegExp(`Usage: causeway ${cmd}`));
  }
  const unknown = await runCli(['gatewy']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /unknown command 'gatewy'/);
});

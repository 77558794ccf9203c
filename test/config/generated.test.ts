import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { generate, REFERENCE_FILE, SCHEMA_FILE, SCHEMA_ID } from '../../config/gen-schema.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FULL = path.join(ROOT, 'test/config/fixtures/full');

test('the committed causeway.schema.json is what `npm run schema` generates now', async (t) => {
  const committed = await readFile(path.join(ROOT, SCHEMA_FILE), 'utf8');
  t.is(committed, generate().schema, 'config/causeway.schema.json is stale: run `npm run schema`');
});

test('the committed docs/config-reference.md is what `npm run schema` generates now', async (t) => {
  const committed = await readFile(path.join(ROOT, REFERENCE_FILE), 'utf8');
  t.is(committed, generate().reference, 'docs/config-reference.md is stale: run `npm run schema`');
});

test('the schema is valid draft-07 and judges config files like the loader does', async (t) => {
  const schema = JSON.parse(generate().schema) as Record<string, unknown>;
  t.is(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  t.is(schema.$id, SCHEMA_ID);
  t.is(schema.title, 'Causeway configuration');
  const ajv = new Ajv({ allErrors: true, strict: false });
  t.true(ajv.validateSchema(schema), JSON.stringify(ajv.errors));
  const validate = ajv.compile(schema);
  // Every file of the full example is a valid config file on its own.
  for (const name of ['10-gateway.yaml', '20-upstreams.json', '30-routes.yml']) {
    const data = parse(await readFile(path.join(FULL, name), 'utf8')) as Record<string, unknown>;
    // Editors see the raw text: ${...} is still there, and the schema has to accept it where strings go.
    if (name === '10-gateway.yaml') (data.gateway as { listen: { port: unknown } }).listen.port = 8443;
    t.true(validate(data), `${name}: ${JSON.stringify(validate.errors)}`);
  }
  t.false(validate({ routes: [{ name: 'a', match: { pathh: '/x' } }] }));
  t.false(validate({ upstreams: { 'bad name': { endpoints: ['http://a'] } } }));
  t.false(validate({ gateway: { drainTimeout: '5 minutes' } }));
});

test('the reference has a section per object, types, defaults and the editor line', (t) => {
  const { reference } = generate();
  for (const heading of [
    '### `gateway`',
    '### `gateway.listen`',
    '### `gateway.tls`',
    '### `admin`',
    '### `upstreams.<name>`',
    '### `upstreams.<name>.timeouts`',
    '### `routes[]`',
    '### `routes[].match`',
    '### `routes[].backends[]`',
    '### `routes[].rewrite`',
    '### `routes[].requestHeaders`',
    '### `routes[].responseHeaders`',
    '### `routes[].timeouts`',
    '### duration',
    '### endpoint',
    '### string match',
  ]) {
    t.true(reference.includes(`\n${heading}\n`), heading);
  }
  t.true(reference.includes('# yaml-language-server: $schema='));
  t.true(reference.includes('${NAME:-default}'));
  t.regex(reference, /\| `port` \*\*\(required\)\*\* \| integer \(0–65535\) \|/);
  t.regex(reference, /\| `drainTimeout` \| \[duration\]\(#duration\) \| `10s` \|/);
  t.regex(reference, /\| `listen` \| \[object\]\(#gatewaylisten\) \| `0\.0\.0\.0:8080` \|/);
  t.regex(reference, /\| `passHost` \| boolean \| `true` \|/);
  t.regex(reference, /\| `websocket` \| boolean \| `true` \|/);
});

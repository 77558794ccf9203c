import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { generate, REFERENCE_FILE, SCHEMA_FILE, SCHEMA_ID } from '../../config/gen-schema.ts';
import { VALIDATOR_FILE, validatorSource } from '../../config/gen-validator.ts';
import { formatIssue } from '../../config/issues.ts';
import { loadConfigText } from '../../config/load.ts';

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

test('the committed compiled validator is what `npm run schema` generates now', async (t) => {
  const committed = await readFile(path.join(ROOT, VALIDATOR_FILE), 'utf8');
  t.true(committed === validatorSource(), `${VALIDATOR_FILE} is stale: run \`npm run schema\``);
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
  for (const name of ['10-gateway.yaml', '20-upstreams.json', '30-routes.yml', '40-policies.yaml']) {
    const data = parse(await readFile(path.join(FULL, name), 'utf8')) as Record<string, unknown>;
    // Editors see the raw text: ${...} is still there, and the schema has to accept it where strings go.
    if (name === '10-gateway.yaml') (data.gateway as { listen: { port: unknown } }).listen.port = 8443;
    t.true(validate(data), `${name}: ${JSON.stringify(validate.errors)}`);
  }
  t.false(validate({ routes: [{ name: 'a', match: { pathh: '/x' } }] }));
  t.false(validate({ upstreams: { 'bad name': { endpoints: ['http://a'] } } }));
  t.false(validate({ gateway: { drainTimeout: '5 minutes' } }));
  t.false(validate({ policies: { two: { bodyLimit: '1MiB', methods: ['GET'] } } }));
  t.false(validate({ policies: { none: {} } }));
  t.false(validate({ policies: { a: { jwt: { issuer: 'i', audiences: ['a'], algorithms: ['none'], secret: 'x'.repeat(32) } } } }));
  t.false(validate({ policies: { a: { bodyLimit: '1 megabyte' } } }));
  t.false(validate({ consumers: { a: { keys: ['short'] } } }));
  t.false(validate({ redis: { url: 'http://localhost:6379' } }));
  t.true(validate({ policies: { a: { bodyLimit: 1024 }, b: { methods: ['GET'] } }, defaultPolicies: ['a'], routes: [{ name: 'r', upstream: 'u', policies: ['b'], useDefaultPolicies: false }] }));
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
    '### `routes[]`',
    '### `policies.<name>`',
    '### `policies.<name>.jwt`',
    '### `policies.<name>.jwt.from`',
    '### `policies.<name>.jwt.jwks`',
    '### `policies.<name>.apiKey`',
    '### `policies.<name>.authz`',
    '### `policies.<name>.authz.allow[]`',
    '### `policies.<name>.rateLimit`',
    '### `policies.<name>.rateLimit.limits[]`',
    '### `policies.<name>.cors`',
    '### `policies.<name>.bodyLimit`',
    '### `policies.<name>.methods`',
    '### `policies.<name>.ipFilter`',
    '### `policies.<name>.requestHeaders`',
    '### `policies.<name>.responseHeaders`',
    '### `policies.<name>.identityToken`',
    '### `consumers.<name>`',
    '### `redis`',
    '### duration',
    '### endpoint',
    '### string match',
    '### claim match',
    '### size',
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
  // The new top-level and route fields.
  t.regex(reference, /\| `policies` \| map of name → \[object\]\(#policiesname\) \|/);
  t.regex(reference, /\| `defaultPolicies` \| list of string \(non-empty\) \|/);
  t.regex(reference, /\| `consumers` \| map of name → \[object\]\(#consumersname\) \|/);
  t.regex(reference, /\| `redis` \| \[object\]\(#redis\) \|/);
  t.regex(reference, /\| `useDefaultPolicies` \| boolean \| `true` \|/);
  // Choices are named, defaults with code in them are kept whole.
  t.regex(reference, /\| `store` \| one of `memory`, `redis` \| redis when `redis` is configured, else memory \|/);
  t.regex(reference, /\| `methods` \| list of string \(upper case\) \| `GET, HEAD, POST, PUT, PATCH, DELETE` \|/);
  t.regex(reference, /\| `algorithms` \*\*\(required\)\*\* \| list, each one of `RS256`, .*`HS512` \(at least one\) \|/);
  t.regex(reference, /### `policies\.<name>\.bodyLimit`\n\nLargest request body accepted \(413 above it\)\.\n\nValue: \[size\]\(#size\)\n/);
  // Every pattern of the model has words (no raw regular expressions).
  t.notRegex(reference, /matches \/\^/);
});

test("the reference's policy example is a valid config", (t) => {
  const { reference } = generate();
  const example = /## Policies\n[\s\S]*?```yaml\n([\s\S]*?)```/.exec(reference)?.[1];
  if (!example) return t.fail('no example');
  const r = loadConfigText(
    [
      { file: 'example.yaml', text: example },
      { file: 'upstreams.yaml', text: 'upstreams:\n  monolith:\n    endpoints: [http://10.0.0.5:8080]\n' },
    ],
    { ACME_API_KEY: 'acme-key-0123456789abcdef' },
  );
  t.true(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
});

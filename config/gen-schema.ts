// Generates config/causeway.schema.json (for editors) and docs/config-reference.md (for people)
// from the TypeBox model. `npm run schema` writes both and the compiled validator
// (config/gen-validator.ts); test/config/generated.test.ts checks that the committed files are
// what this produces.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as model from './model.ts';
import { ConfigFile } from './model.ts';
import { VALIDATOR_FILE, validatorSource } from './gen-validator.ts';
import * as policyModel from './policy-model.ts';
import { defaultFromDescription, patternText } from './schema-text.ts';

export const SCHEMA_ID = 'urn:causeway:config:v1';
export const SCHEMA_FILE = 'config/causeway.schema.json';
export const REFERENCE_FILE = 'docs/config-reference.md';

type Schema = Record<string, unknown>;

/** The JSON Schema (draft-07) for one config file. */
export function configJsonSchema(): Schema {
  const body = JSON.parse(JSON.stringify(ConfigFile)) as Schema; // drops TypeBox's symbol keys
  const { title, ...rest } = body;
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: SCHEMA_ID,
    title,
    description:
      'One Causeway config file. A directory of files is merged: gateway, admin, redis and telemetry key by key, upstreams, policies and consumers by name, routes in file order; defaultPolicies may be set in one file only.',
    ...rest,
  };
}

export function generate(): { schema: string; reference: string } {
  const schema = configJsonSchema();
  return { schema: `${JSON.stringify(schema, null, 2)}\n`, reference: referenceMarkdown(schema) };
}

// ---------------------------------------------------------------------------------------------
// The reference

interface Section {
  heading: string;
  intro?: string;
  schema: Schema;
  /** A section for a value that is not an object (a policy kind such as bodyLimit): its type, no table. */
  value?: true;
}

const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9_\- ]/g, '')
    .replace(/ /g, '-');

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (text: string) => `\`${text}\``;

const isObjectSchema = (s: Schema) => s.type === 'object' && s.properties !== undefined;
const isRecord = (s: Schema) => s.type === 'object' && s.patternProperties !== undefined && s.properties === undefined;
const unionBranches = (s: Schema) => (Array.isArray(s.anyOf) ? (s.anyOf as Schema[]) : undefined);

class Reference {
  readonly sections: Section[] = [];
  /** Titled unions ("duration", "endpoint", …), described once under "Value types". */
  readonly valueTypes = new Map<string, Schema>();
  private readonly sectionOf = new Map<Schema, string>();

  /** Adds the section for an object and, depth first in field order, those of its fields. */
  addObject(heading: string, schema: Schema, intro?: string): void {
    this.sectionOf.set(schema, heading);
    this.sections.push({ heading, schema, ...(intro ? { intro } : {}) });
    for (const [name, prop] of Object.entries(schema.properties as Record<string, Schema>)) {
      if (name === '$schema') continue;
      const at = heading === 'Top level' ? name : `${heading}.${name}`;
      const before = this.sections.length;
      this.addNested(at, prop, prop.description as string | undefined);
      // Every kind of a policy gets its own section, also those whose value is not an object.
      if (schema.title === 'policy' && this.sections.length === before) {
        this.sections.push({ heading: at, schema: prop, value: true, ...(typeof prop.description === 'string' ? { intro: prop.description } : {}) });
      }
    }
  }

  private addNested(at: string, s: Schema, intro?: string): void {
    const branches = unionBranches(s);
    if (branches) {
      if (typeof s.title === 'string') {
        if (!this.valueTypes.has(s.title)) this.valueTypes.set(s.title, s);
        return;
      }
      for (const b of branches) this.addNested(at, b, intro);
      return;
    }
    if (isObjectSchema(s)) this.addObject(at, s, typeof s.description === 'string' ? s.description : intro);
    else if (s.type === 'array' && s.items) this.addNested(`${at}[]`, s.items as Schema, intro);
    else if (isRecord(s)) {
      const value = Object.values(s.patternProperties as Record<string, Schema>)[0];
      if (value) this.addNested(`${at}.<name>`, value, intro);
    }
  }

  link(heading: string, text = heading): string {
    return `[${text}](#${slug(heading)})`;
  }

  typeOf(s: Schema): string {
    const branches = unionBranches(s);
    if (branches) {
      if (typeof s.title === 'string') return this.link(s.title);
      if (branches.every((b) => b.const !== undefined)) return `one of ${branches.map((b) => code(String(b.const))).join(', ')}`;
      return branches.map((b) => this.typeOf(b)).join(' or ');
    }
    const notes: string[] = [];
    if (typeof s.pattern === 'string') notes.push(patternText(s.pattern).short);
    if (s.minLength === 1) notes.push('non-empty');
    else if (typeof s.minLength === 'number') notes.push(`at least ${s.minLength} characters`);
    if (typeof s.maxLength === 'number') notes.push(`at most ${s.maxLength} characters`);
    if (typeof s.minimum === 'number' && typeof s.maximum === 'number') notes.push(`${s.minimum}–${s.maximum}`);
    else if (typeof s.minimum === 'number') notes.push(`≥ ${s.minimum}`);
    else if (typeof s.maximum === 'number') notes.push(`≤ ${s.maximum}`);
    if (s.minItems === 1) notes.push('at least one');
    else if (typeof s.minItems === 'number') notes.push(`at least ${s.minItems}`);
    const withNotes = (base: string) => (notes.length ? `${base} (${notes.join(', ')})` : base);
    switch (s.type) {
      case 'string':
      case 'integer':
      case 'boolean':
      case 'number':
        return withNotes(s.type);
      case 'array': {
        const items = (s.items as Schema | undefined) ?? {};
        const literals = unionBranches(items)?.every((b) => b.const !== undefined) && typeof items.title !== 'string';
        return withNotes(literals ? `list, each ${this.typeOf(items)}` : `list of ${this.typeOf(items)}`);
      }
      case 'object': {
        const heading = this.sectionOf.get(s);
        if (heading) return this.link(heading, 'object');
        if (isRecord(s)) {
          const [pattern, value] = Object.entries(s.patternProperties as Record<string, Schema>)[0] ?? ['', {}];
          const key = pattern === '^(.*)$' ? 'name' : patternText(pattern).keyLabel;
          return `map of ${key} → ${this.typeOf(value)}`;
        }
        return 'object';
      }
      default:
        return 'any';
    }
  }

  table(s: Schema): string {
    const required = new Set((s.required as string[] | undefined) ?? []);
    const rows = ['| Field | Type | Default | Description |', '| --- | --- | --- | --- |'];
    for (const [name, prop] of Object.entries(s.properties as Record<string, Schema>)) {
      if (name === '$schema') continue;
      const description = typeof prop.description === 'string' ? prop.description : '';
      const def = defaultFromDescription(description);
      rows.push(
        `| ${code(name)}${required.has(name) ? ' **(required)**' : ''} | ${cell(this.typeOf(prop))} | ${def ? cell(def.includes('`') ? def : code(def)) : ''} | ${cell(description)} |`,
      );
    }
    const exactlyOne = s.minProperties === 1 && s.maxProperties === 1;
    if (exactlyOne) rows.push('', `Set exactly one of these fields.`);
    return rows.join('\n');
  }
}

const HEADER = `# Configuration reference

<!-- Generated from config/model.ts by \`npm run schema\` (config/gen-schema.ts). Do not edit by hand. -->

Causeway reads its configuration from YAML or JSON. This page lists every field; the same
schema is published as [\`config/causeway.schema.json\`](../config/causeway.schema.json) for editors.

## Files and directories

The config is one file (\`gateway.yaml\`, \`gateway.json\`) or a directory. For a directory,
every \`*.yaml\`, \`*.yml\` and \`*.json\` file directly in it (not in subdirectories; names starting
with "." are skipped) is read in name order and merged:

- \`gateway\`, \`admin\`, \`redis\` and \`telemetry\` are merged field by field; the same field in two files is an error.
- \`upstreams\`, \`policies\` and \`consumers\` are merged by name; the same name in two files is an error.
- \`defaultPolicies\` may be set in one file only.
- \`routes\` lists are joined in file order (then matched most specific first).
- \`$schema\` is ignored.

Relative file paths are relative to the file that sets them: the \`cert\`, \`key\`, \`chain\` and
\`clientAuth.ca\` of a listener's \`tls\` (and of each of its \`certificates\`), an upstream's
\`tls.ca\`, \`tls.cert\` and \`tls.key\`, a \`jwt\` policy's \`jwksFile\` and \`publicKeyFile\`, an
\`identityToken\` policy's \`keyFile\`. A TLS value that starts with \`-----BEGIN\` is PEM text, not
a file name (for PEM from \`\${ENV}\`). See [tls.md](tls.md) for listeners, certificates, HTTP/2 and
upstream TLS.

Every problem is reported, not only the first, as \`file:line:column path: message\`, for example:

\`\`\`
conf.d/20-routes.yaml:12:13 routes[3].match.path: must be a string starting with "/"
conf.d/10-upstreams.yaml:4:7 upstreams.orders.endpoints[0]: must be a URL starting with "http://" or "https://"
\`\`\`

Besides the types below, loading checks that route names are unique, each route sets exactly one
of \`upstream\` or \`backends\` and names upstreams that exist, weights do not all add up to 0,
endpoint URLs have no path, query or credentials, a match uses at most one of \`path\`, \`prefix\`
and \`regex\`, regular expressions compile, \`rewrite.prefix\` comes with \`match.prefix\`,
\`rewrite.path\` only uses parameters of \`match.path\`, \`trustedProxies\` are IP addresses or CIDRs,
methods are known HTTP methods, header names are not repeated in another case, the gateway and
admin listeners differ, and no route is hidden behind an earlier one that takes all its requests.

For policies it checks that:

- \`defaultPolicies\` and \`routes[].policies\` name policies that exist, each once;
- a \`jwt\` policy has exactly one key source (\`jwksUri\`, \`jwksFile\`, \`publicKeyFile\` or
  \`secret\`), \`HS256\`/\`HS384\`/\`HS512\` only with \`secret\` and \`secret\` only with them (an HS
  key never verifies RS/ES tokens), and its key files exist and can be read;
- headers set from an identity (\`jwt.forward\`, \`apiKey.forward.consumer\`,
  \`identityToken.header\`) are not repeated in another case, are not \`host\`, \`content-length\`,
  \`transfer-encoding\`, \`connection\` or another hop-by-hop header, and are set only by policies
  of one kind;
- consumers named by \`apiKey.consumers\`, \`authz\` rules and \`rateLimit.overrides\` exist, and no
  API key belongs to two consumers (issues never show a key);
- a \`rateLimit\` with \`store: redis\` has the top-level \`redis\`, its windows are whole seconds
  (1s or more), and no two limits of one list have the same window;
- an \`authz\` policy has \`allow\` or \`deny\` rules, and its claim paths have no empty segment
  and its claim regular expressions compile;
- \`cors\` origins are \`"*"\` or \`scheme://host[:port]\` (optionally \`https://*.example.com\`), never
  \`"null"\`, and \`credentials: true\` is not combined with \`"*"\`;
- \`ipFilter\` entries are IP addresses or CIDRs, \`bodyLimit\` is a size, header values of
  \`requestHeaders\` and \`responseHeaders\` policies have no line breaks or control characters,
  and \`identityToken.keyFile\` exists.

## Policies

A policy is a named piece of request handling: authentication (\`jwt\`, \`apiKey\`), authorisation
(\`authz\`), limits (\`rateLimit\`, \`bodyLimit\`, \`methods\`, \`ipFilter\`), \`cors\`, header changes
(\`requestHeaders\`, \`responseHeaders\`) and \`identityToken\`. Each entry of \`policies\` has exactly
one kind. \`defaultPolicies\` apply to every route, before the route's own \`policies\`, unless the
route sets \`useDefaultPolicies: false\`.

\`\`\`yaml
policies:
  users:
    jwt:
      issuer: https://login.example.com/
      audiences: [api]
      algorithms: [RS256]
      jwksUri: https://login.example.com/.well-known/jwks.json
      forward: { x-user-id: sub }
  partners:
    apiKey: { forward: { consumer: x-consumer } }
  per-client:
    rateLimit:
      limits: [{ requests: 10, per: 1s }, { requests: 1000, per: 1h }]
      key: [consumer, ip]
  small-bodies:
    bodyLimit: 1MiB
consumers:
  acme:
    keys: ["\${ACME_API_KEY}"]
defaultPolicies: [small-bodies]
routes:
  - name: orders
    match: { prefix: /orders }
    upstream: monolith
    policies: [users]
  - name: partner-feed
    match: { prefix: /feed }
    upstream: monolith
    policies: [partners, per-client]
\`\`\`

## Environment variables

Any string value (not keys) may use environment variables:

| Write | Gives |
| --- | --- |
| \`\${NAME}\` | the value of \`NAME\`; an error if it is not set |
| \`\${NAME:-default}\` | the value of \`NAME\`, or \`default\` if it is unset or empty |
| \`$\${\` | a literal \`\${\` |

\`NAME\` is letters, digits and \`_\`, not starting with a digit. An unquoted YAML value that is
exactly one \`\${...}\` becomes a number or boolean when the result looks like one, so
\`port: \${PORT:-8080}\` gives a number; quote it (\`"\${PORT}"\`) to keep a string. In YAML flow
style (\`{ port: ... }\`) braces are special, so use block style for such values.

## Durations

Timeouts are durations: a string with a unit, \`"250ms"\`, \`"2s"\`, \`"1.5m"\`, \`"1h"\`, or a whole
number of milliseconds (\`250\`).

## Editor support

Editors with the YAML language server (VS Code's YAML extension, and others) validate and
complete the config when the file starts with:

\`\`\`yaml
# yaml-language-server: $schema=../config/causeway.schema.json
\`\`\`

(the path is relative to the config file). In JSON files, set
\`"$schema": "../config/causeway.schema.json"\`; Causeway ignores that field.
`;

/** A field's description replaces its type's, so value types take theirs from the model's exports. */
const VALUE_TYPE_DESCRIPTIONS = new Map<string, string>(
  [...Object.values(model as Record<string, unknown>), ...Object.values(policyModel as Record<string, unknown>)]
    .filter((v): v is Schema => v !== null && typeof v === 'object' && Array.isArray((v as Schema).anyOf))
    .filter((v) => typeof v.title === 'string' && typeof v.description === 'string')
    .map((v) => [v.title as string, v.description as string]),
);

/** What a value type's description leaves out. */
const VALUE_TYPE_NOTES: Record<string, string> = {
  size: 'KB, MB and GB are 1000-based; KiB, MiB and GiB are 1024-based. A fraction of a byte is dropped.',
};

function referenceMarkdown(schema: Schema): string {
  const ref = new Reference();
  ref.addObject('Top level', schema, 'The fields of a config file. All are optional.');
  const out: string[] = [HEADER.trimEnd(), '', '## Fields'];
  for (const section of ref.sections) {
    out.push('', `### ${section.heading === 'Top level' ? section.heading : code(section.heading)}`, '');
    const description = section.intro ?? (typeof section.schema.description === 'string' ? section.schema.description : undefined);
    if (description) out.push(description, '');
    out.push(section.value ? `Value: ${ref.typeOf(section.schema)}` : ref.table(section.schema));
  }
  if (ref.valueTypes.size > 0) out.push('', '## Value types');
  for (const [title, union] of ref.valueTypes) {
    out.push('', `### ${title}`, '');
    const description = VALUE_TYPE_DESCRIPTIONS.get(title) ?? union.description;
    if (typeof description === 'string') out.push(description, '');
    const note = VALUE_TYPE_NOTES[title];
    if (note) out.push(note, '');
    const branches = unionBranches(union) ?? [];
    out.push('One of:', '');
    for (const b of branches) {
      if (isObjectSchema(b)) out.push(`- an object:`);
      else out.push(`- ${ref.typeOf(b)}`);
    }
    for (const b of branches) if (isObjectSchema(b)) out.push('', ref.table(b));
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------

function main(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const { schema, reference } = generate();
  writeFileSync(path.join(root, SCHEMA_FILE), schema);
  writeFileSync(path.join(root, REFERENCE_FILE), reference);
  writeFileSync(path.join(root, VALIDATOR_FILE), validatorSource());
  console.log(`wrote ${SCHEMA_FILE}, ${REFERENCE_FILE} and ${VALIDATOR_FILE}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();

// The config model: one TypeBox schema is the source of truth for the validator,
// the TypeScript types and the JSON Schema file editors use (config/causeway.schema.json).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Consumer, Policy, Redis } from './policy-model.ts';

const desc = <T extends TSchema>(schema: T, description: string): T =>
  ({ ...schema, description }) as T;

/** "250ms", "2s", "1.5m", "1h" or a number of milliseconds. */
export const Duration = Type.Union(
  [
    Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$' }),
    Type.Integer({ minimum: 0 }),
  ],
  {
    title: 'duration',
    description: 'A duration: "250ms", "2s", "1.5m", "1h", or a whole number of milliseconds.',
  },
);

export const Listen = Type.Object(
  {
    host: desc(Type.String({ minLength: 1 }), 'Address to bind.'),
    port: desc(Type.Integer({ minimum: 0, maximum: 65535 }), 'TCP port; 0 picks a free one.'),
  },
  { additionalProperties: false },
);

export const Tls = Type.Object(
  {
    cert: desc(Type.String({ minLength: 1 }), 'PEM certificate chain file, relative to the config file.'),
    key: desc(Type.String({ minLength: 1 }), 'PEM private key file, relative to the config file.'),
  },
  { additionalProperties: false },
);

export const Gateway = Type.Object(
  {
    listen: Type.Optional(desc(Listen, 'Where the gateway accepts client traffic. Default 0.0.0.0:8080.')),
    tls: Type.Optional(desc(Tls, 'Serve HTTPS with this certificate and key.')),
    trustedProxies: Type.Optional(
      desc(
        Type.Array(Type.String({ minLength: 1 })),
        'CIDRs (or single addresses) of proxies in front of the gateway whose X-Forwarded-*, Forwarded and X-Request-Id headers are believed.',
      ),
    ),
    requestIdHeader: Type.Optional(
      desc(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), 'Header carrying the request id. Default x-request-id.'),
    ),
    drainTimeout: Type.Optional(
      desc(Duration, 'On SIGTERM/SIGINT, how long in-flight requests may take before the process exits. Default 10s.'),
    ),
  },
  { additionalProperties: false },
);

export const Admin = Type.Object(
  {
    listen: Type.Optional(desc(Listen, 'Where the admin API listens. Default 127.0.0.1:9901.')),
  },
  { additionalProperties: false },
);

export const Timeouts = Type.Object(
  {
    connect: Type.Optional(desc(Duration, 'Time to open a TCP (and TLS) connection to an endpoint. Default 5s.')),
    response: Type.Optional(desc(Duration, 'Time from sending the request until the response headers arrive. Default 30s.')),
    idle: Type.Optional(desc(Duration, 'Longest silence while the response body streams. Default 60s.')),
  },
  { additionalProperties: false },
);

export const Endpoint = Type.Union(
  [
    Type.String({ pattern: '^https?://' }),
    Type.Object(
      {
        url: desc(Type.String({ pattern: '^https?://' }), 'http://host:port or https://host:port'),
        weight: Type.Optional(desc(Type.Integer({ minimum: 0, maximum: 10000 }), 'Relative share. Default 1.')),
      },
      { additionalProperties: false },
    ),
  ],
  { title: 'endpoint', description: 'An endpoint URL ("http://10.0.0.5:8080") or {url, weight}.' },
);

export const Upstream = Type.Object(
  {
    endpoints: desc(Type.Array(Endpoint, { minItems: 1 }), 'Where the upstream runs. Requests are spread round-robin.'),
    passHost: Type.Optional(
      desc(Type.Boolean(), "Send the client's Host header upstream (true, default) or the endpoint's host:port (false)."),
    ),
    timeouts: Type.Optional(desc(Timeouts, 'Defaults for routes to this upstream; a route can override each.')),
    connections: Type.Optional(
      desc(Type.Integer({ minimum: 1, maximum: 10000 }), 'Most keep-alive connections per endpoint. Default 128.'),
    ),
    ejectFor: Type.Optional(
      desc(Duration, 'After a connection to an endpoint fails, skip that endpoint for this long. Default 5s; 0 disables.'),
    ),
  },
  { additionalProperties: false },
);

export const StringMatch = Type.Union(
  [
    Type.String(),
    Type.Object(
      {
        exact: Type.Optional(Type.String()),
        prefix: Type.Optional(Type.String()),
        regex: Type.Optional(Type.String()),
        present: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false, minProperties: 1, maxProperties: 1 },
    ),
  ],
  {
    title: 'string match',
    description: 'A value to equal exactly, or one of {exact}, {prefix}, {regex}, {present: true|false}.',
  },
);

const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" });

export const Match = Type.Object(
  {
    host: Type.Optional(
      desc(
        Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]),
        'Host name(s): exact ("api.example.com") or wildcard ("*.example.com"). Port and case are ignored.',
      ),
    ),
    path: Type.Optional(
      desc(Type.String({ pattern: '^/' }), 'Exact path, or a pattern with parameters like /users/:id.'),
    ),
    prefix: Type.Optional(desc(Type.String({ pattern: '^/' }), 'Path prefix, matched on whole segments: /api matches /api and /api/x, not /apix.')),
    regex: Type.Optional(desc(Type.String({ minLength: 1 }), 'Regular expression the whole normalised path must match.')),
    methods: Type.Optional(
      desc(Type.Array(Type.String({ pattern: '^[A-Z]+$' }), { minItems: 1 }), 'HTTP methods; default any.'),
    ),
    headers: Type.Optional(
      desc(Type.Record(HeaderName, StringMatch, { additionalProperties: false }), 'Request headers that must match (names are case-insensitive).'),
    ),
    query: Type.Optional(desc(Type.Record(Type.String({ minLength: 1 }), StringMatch), 'Query parameters that must match.')),
  },
  { additionalProperties: false },
);

export const Backend = Type.Object(
  {
    upstream: desc(Type.String({ minLength: 1 }), 'Name of an upstream.'),
    weight: Type.Optional(desc(Type.Integer({ minimum: 0, maximum: 10000 }), 'Relative share of the route\'s traffic. Default 1.')),
  },
  { additionalProperties: false },
);

export const HeaderRules = Type.Object(
  {
    add: Type.Optional(desc(Type.Record(HeaderName, Type.String(), { additionalProperties: false }), 'Append these headers (keeps existing values).')),
    set: Type.Optional(desc(Type.Record(HeaderName, Type.String(), { additionalProperties: false }), 'Set these headers, replacing any value.')),
    remove: Type.Optional(desc(Type.Array(HeaderName), 'Remove these headers.')),
  },
  { additionalProperties: false },
);

export const Rewrite = Type.Object(
  {
    prefix: Type.Optional(
      desc(Type.String({ pattern: '^/' }), 'Replace the matched prefix (match.prefix) with this one; "/" strips it.'),
    ),
    path: Type.Optional(
      desc(Type.String({ pattern: '^/' }), 'Replace the whole path; :name segments take the values of match.path parameters.'),
    ),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
);

export const Route = Type.Object(
  {
    name: desc(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', maxLength: 100 }), 'Unique route name (used in logs and metrics).'),
    match: Type.Optional(desc(Match, 'What requests the route takes. Default: every request.')),
    upstream: Type.Optional(desc(Type.String({ minLength: 1 }), 'Shorthand for backends: [{upstream}].')),
    backends: Type.Optional(
      desc(Type.Array(Backend, { minItems: 1 }), 'Weighted backends; each request goes to one of them.'),
    ),
    rewrite: Type.Optional(desc(Rewrite, 'Change the path sent upstream.')),
    requestHeaders: Type.Optional(desc(HeaderRules, 'Header changes on the request sent upstream.')),
    responseHeaders: Type.Optional(desc(HeaderRules, 'Header changes on the response sent to the client.')),
    timeouts: Type.Optional(desc(Timeouts, "Override the upstream's timeouts for this route.")),
    websocket: Type.Optional(desc(Type.Boolean(), 'Pass WebSocket upgrades through (default true).')),
    policies: Type.Optional(
      desc(Type.Array(Type.String({ minLength: 1 })), 'Names of `policies` applied to this route, after `defaultPolicies`.'),
    ),
    useDefaultPolicies: Type.Optional(desc(Type.Boolean(), 'Apply `defaultPolicies` to this route (default true).')),
  },
  { additionalProperties: false },
);

export const ConfigFile = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    gateway: Type.Optional(desc(Gateway, 'The edge listener.')),
    admin: Type.Optional(desc(Admin, 'The admin listener: health, readiness, config, reload.')),
    upstreams: Type.Optional(
      desc(
        Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }), Upstream, { additionalProperties: false }),
        'Named groups of endpoints that routes send traffic to.',
      ),
    ),
    routes: Type.Optional(desc(Type.Array(Route), 'Routes, matched most specific first (see docs/routing.md).')),
    policies: Type.Optional(
      desc(
        Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }), Policy, { additionalProperties: false }),
        'Named policies that routes refer to (see docs/policies.md).',
      ),
    ),
    defaultPolicies: Type.Optional(
      desc(Type.Array(Type.String({ minLength: 1 })), 'Policies applied to every route (before its own) unless it sets useDefaultPolicies: false.'),
    ),
    consumers: Type.Optional(
      desc(
        Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', maxLength: 100 }), Consumer, { additionalProperties: false }),
        'API-key consumers, by name.',
      ),
    ),
    redis: Type.Optional(desc(Redis, 'Redis shared by the gateway replicas (rate-limit counters).')),
  },
  { additionalProperties: false, title: 'Causeway configuration' },
);

export type DurationValue = Static<typeof Duration>;
export type ListenConfig = Static<typeof Listen>;
export type GatewayConfig = Static<typeof Gateway>;
export type UpstreamConfig = Static<typeof Upstream>;
export type RouteConfig = Static<typeof Route>;
export type MatchConfig = Static<typeof Match>;
export type StringMatchConfig = Static<typeof StringMatch>;
export type HeaderRulesConfig = Static<typeof HeaderRules>;
export type TimeoutsConfig = Static<typeof Timeouts>;
export type ConfigModel = Static<typeof ConfigFile>;

// The config model: one TypeBox schema is the source of truth for the validator,
// the TypeScript types and the JSON Schema file editors use (config/causeway.schema.json).
import { Type, type Static } from '@sinclair/typebox';
import { Consumer, Policy, Redis } from './policy-model.ts';
import { desc, Duration, HeaderName, HeaderRules } from './schema-common.ts';

export { Duration, HeaderRules };

export const Listen = Type.Object(
  {
    host: desc(Type.String({ minLength: 1 }), 'Address to bind.'),
    port: desc(Type.Integer({ minimum: 0, maximum: 65535 }), 'TCP port; 0 picks a free one.'),
  },
  { additionalProperties: false },
);

const PEM_TEXT =
  'a PEM file (relative to the config file) or the PEM text itself (a value starting with "-----BEGIN", e.g. from ${ENV})';

export const TlsCertificate = Type.Object(
  {
    cert: desc(Type.String({ minLength: 1 }), `Certificate: ${PEM_TEXT}. It may hold the intermediates after the leaf.`),
    key: desc(Type.String({ minLength: 1 }), `Private key: ${PEM_TEXT}.`),
    chain: Type.Optional(desc(Type.String({ minLength: 1 }), `Intermediate certificates sent after the leaf: ${PEM_TEXT}.`)),
    names: Type.Optional(
      desc(
        Type.Array(Type.String({ pattern: '^(\\*\\.)?[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$' }), { minItems: 1 }),
        'SNI names this certificate answers ("api.example.com", "*.example.com"); without it, the DNS names in the certificate.',
      ),
    ),
    default: Type.Optional(desc(Type.Boolean(), 'Serve this certificate when the client sends no SNI name or one no certificate has (otherwise the first certificate is).')),
  },
  { additionalProperties: false },
);

export const ClientAuth = Type.Object(
  {
    mode: desc(
      Type.Union([Type.Literal('require'), Type.Literal('optional')]),
      'require: the handshake fails without a valid client certificate; optional: a valid certificate becomes the identity, requests without one go on without.',
    ),
    ca: desc(Type.String({ minLength: 1 }), `CA bundle client certificates must chain to: ${PEM_TEXT}.`),
  },
  { additionalProperties: false },
);

export const TlsVersion = Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')]);

export const Tls = Type.Object(
  {
    cert: Type.Optional(desc(Type.String({ minLength: 1 }), `Certificate (with key): ${PEM_TEXT}. Served when no other certificate fits the SNI name, unless one sets default: true.`)),
    key: Type.Optional(desc(Type.String({ minLength: 1 }), `Private key of cert: ${PEM_TEXT}.`)),
    chain: Type.Optional(desc(Type.String({ minLength: 1 }), `Intermediates of cert: ${PEM_TEXT}.`)),
    certificates: Type.Optional(
      desc(Type.Array(TlsCertificate, { minItems: 1 }), 'More certificates, chosen by the SNI name the client sends (exact names before wildcards).'),
    ),
    minVersion: Type.Optional(desc(TlsVersion, 'Lowest TLS version accepted. Default TLSv1.2.')),
    maxVersion: Type.Optional(desc(TlsVersion, 'Highest TLS version offered. Default TLSv1.3.')),
    ciphers: Type.Optional(
      desc(
        Type.String({ minLength: 1 }),
        'OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are always on). Default: the Mozilla "intermediate" list.',
      ),
    ),
    sessionTickets: Type.Optional(desc(Type.Boolean(), 'TLS session resumption by tickets. Default true.')),
    ticketKeyRotation: Type.Optional(desc(Duration, 'How often the session ticket key is replaced by a new random one. Default 12h.')),
    clientAuth: Type.Optional(desc(ClientAuth, 'Ask clients for a certificate; a verified one becomes the request identity (method mtls).')),
    watch: Type.Optional(desc(Type.Boolean(), 'Watch the certificate files and swap renewed certificates in without a restart. Default true.')),
  },
  { additionalProperties: false },
);

export const Http2 = Type.Object(
  {
    enabled: Type.Optional(desc(Type.Boolean(), 'Offer h2 by ALPN on this TLS listener (http/1.1 stays available). Default true. Plain-text h2c is never offered.')),
    maxConcurrentStreams: Type.Optional(desc(Type.Integer({ minimum: 1, maximum: 4294967295 }), 'Streams a client may have open at once on one connection; more are refused (REFUSED_STREAM). Default 100.')),
    maxHeaderListSize: Type.Optional(desc(Type.Integer({ minimum: 1024, maximum: 16777216 }), 'Largest request header list in bytes; a larger one resets the stream (ENHANCE_YOUR_CALM). Default 65536.')),
    maxFrameSize: Type.Optional(desc(Type.Integer({ minimum: 16384, maximum: 16777215 }), 'Largest frame payload the gateway accepts, in bytes. Default 16384.')),
  },
  { additionalProperties: false },
);

export const Hsts = Type.Object(
  {
    maxAge: Type.Optional(desc(Type.Integer({ minimum: 0 }), 'max-age in seconds. Default 31536000 (one year); 0 tells browsers to forget the rule.')),
    includeSubDomains: Type.Optional(desc(Type.Boolean(), 'Add includeSubDomains. Default false.')),
    preload: Type.Optional(desc(Type.Boolean(), 'Add preload (only with includeSubDomains and a max-age of a year or more). Default false.')),
  },
  { additionalProperties: false },
);

export const RedirectToHttps = Type.Object(
  {
    port: Type.Optional(desc(Type.Integer({ minimum: 1, maximum: 65535 }), 'Port of the HTTPS URL redirected to. Default 443 (left out of the URL).')),
  },
  { additionalProperties: false },
);

export const Listener = Type.Object(
  {
    name: Type.Optional(desc(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', maxLength: 100 }), 'Name in logs and the admin API. Default: host:port.')),
    listen: desc(Listen, 'Address and port to accept connections on.'),
    tls: Type.Optional(desc(Tls, 'Terminate TLS on this listener.')),
    http2: Type.Optional(desc(Http2, 'HTTP/2 on a TLS listener.')),
    hosts: Type.Optional(
      desc(
        Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
        'Only requests for these hosts (exact or "*.example.com") are served here; others get 404. Default: any host.',
      ),
    ),
    routes: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'Only these routes (by name) are served here. Default: every route.')),
    redirectToHttps: Type.Optional(
      desc(
        Type.Union([Type.Boolean(), RedirectToHttps]),
        'On a plain listener: answer every request with a 308 redirect to the same host, path and query over https (except /.well-known/acme-challenge/).',
      ),
    ),
    hsts: Type.Optional(desc(Type.Union([Type.Boolean(), Hsts]), 'On a TLS listener: send Strict-Transport-Security on every response (true: max-age one year).')),
    maxConnections: Type.Optional(
      desc(
        Type.Integer({ minimum: 1, maximum: 1000000 }),
        'Most open client connections on this listener; a connection beyond it is closed as soon as it is accepted (the client sees a reset or EOF before any byte). Default 10000.',
      ),
    ),
  },
  { additionalProperties: false },
);

export const Gateway = Type.Object(
  {
    listen: Type.Optional(desc(Listen, 'Where the gateway accepts client traffic (the first and only listener when `listeners` is not used). Default 0.0.0.0:8080.')),
    tls: Type.Optional(desc(Tls, 'Serve HTTPS on gateway.listen: the same fields as a listener\'s tls.')),
    listeners: Type.Optional(
      desc(
        Type.Array(Listener, { minItems: 1 }),
        'Several listeners (plain and TLS), instead of gateway.listen and gateway.tls. See docs/tls.md.',
      ),
    ),
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
    pathSemicolons: Type.Optional(
      desc(
        Type.Union([Type.Literal('reject'), Type.Literal('allow')]),
        'A raw `;` in a request path: `reject` (400 CW_BAD_PATH) or `allow` (matched and sent as it is). Java servers (Tomcat, Jetty, Spring) drop what follows `;` in a segment, so with `allow` a client can send `/admin;x/users` past a route on `/admin` to an upstream that serves `/admin/users`. Default reject.',
      ),
    ),
    workers: Type.Optional(
      desc(
        Type.Union([Type.Integer({ minimum: 1, maximum: 256 }), Type.Literal('auto')]),
        'Worker processes sharing the listeners (node:cluster), each with its own state except Redis; `auto` is one per CPU core. The admin API stays one address and merges what the workers report. `causeway gateway --workers` overrides it. Read at start only. Default 1 (one process, no cluster).',
      ),
    ),
    requestTimeouts: Type.Optional(
      desc(
        Type.Object(
          {
            headers: Type.Optional(desc(Duration, 'Longest time a client may take to send the request line and headers (HTTP/1.1). Default 30s.')),
            bodyIdle: Type.Optional(
              desc(Duration, 'Longest silence while a client sends a request body; then 408 CW_REQUEST_TIMEOUT and the upstream request is aborted. Default 30s.'),
            ),
            body: Type.Optional(
              desc(Duration, 'Longest time a client may take to send a whole request body, however steadily it trickles; then 408 CW_REQUEST_TIMEOUT and the upstream request is aborted. Default 5m; 0 turns it off.'),
            ),
          },
          { additionalProperties: false },
        ),
        'Bounds on slow clients, so a trickled request cannot hold a connection (or an upstream connection) for long.',
      ),
    ),
    maxConnections: Type.Optional(
      desc(
        Type.Integer({ minimum: 1, maximum: 1000000 }),
        'Most open client connections per listener (a listener\'s own maxConnections wins); a connection beyond it is closed as soon as it is accepted. Default 10000.',
      ),
    ),
    maxHeaders: Type.Optional(
      desc(
        Type.Integer({ minimum: 1, maximum: 10000 }),
        'Most header fields in a request; more get 431 CW_TOO_MANY_HEADERS (never silently cut). Default 100.',
      ),
    ),
    accessLog: Type.Optional(
      desc(
        Type.Object(
          {
            enabled: Type.Optional(desc(Type.Boolean(), 'Write one JSON line per request. Default true.')),
            sample: Type.Optional(desc(Type.Number({ minimum: 0, maximum: 1 }), 'Share of successful (2xx/3xx) requests logged, 0 to 1. Errors are always logged. Default 1.')),
          },
          { additionalProperties: false },
        ),
        'The access log: request id, trace id, route, backend, status, durations, bytes, client address and identity subject (never credentials).',
      ),
    ),
  },
  { additionalProperties: false },
);

export const Admin = Type.Object(
  {
    listen: Type.Optional(desc(Listen, 'Where the admin API listens. Default 127.0.0.1:9901.')),
    token: Type.Optional(
      desc(
        Type.String({ minLength: 16, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' }),
        'Bearer token that every admin endpoint then requires (`Authorization: Bearer <token>`), except /healthz, /readyz, /.well-known/jwks.json and the dashboard\'s static files; set it from ${ENV}. Without it, anyone who reaches the admin listener can use it: keep it on loopback (a non-loopback address without a token logs CW_ADMIN_EXPOSED).',
      ),
    ),
  },
  { additionalProperties: false },
);

export const Otlp = Type.Object(
  {
    endpoint: desc(
      Type.String({ pattern: '^https?://' }),
      'The collector\'s OTLP/HTTP URL, e.g. "http://otel-collector:4318"; /v1/traces is added unless the path already ends with it.',
    ),
    headers: Type.Optional(
      desc(Type.Record(HeaderName, Type.String(), { additionalProperties: false }), 'Headers sent with every export, e.g. an authorization header from ${ENV}.'),
    ),
    sampleRatio: Type.Optional(
      desc(
        Type.Number({ minimum: 0, maximum: 1 }),
        'Share of traces exported, 0 to 1, decided from the trace id (so every gateway agrees); a traceparent marked not sampled is never exported. Default 1.',
      ),
    ),
    serviceName: Type.Optional(desc(Type.String({ minLength: 1 }), 'The service.name resource attribute. Default causeway-gateway.')),
    timeout: Type.Optional(desc(Duration, 'Longest time one export may take. Default 10s.')),
    batch: Type.Optional(
      desc(
        Type.Object(
          {
            maxSize: Type.Optional(desc(Type.Integer({ minimum: 1, maximum: 10000 }), 'Most spans in one export. Default 512.')),
            interval: Type.Optional(desc(Duration, 'Longest time a span waits before it is exported. Default 5s.')),
            maxQueue: Type.Optional(
              desc(Type.Integer({ minimum: 1, maximum: 1000000 }), 'Most spans waiting; more are dropped and counted (causeway_otlp_spans{result="dropped"}). Default 2048.'),
            ),
          },
          { additionalProperties: false },
        ),
        'Batching of exports.',
      ),
    ),
  },
  { additionalProperties: false },
);

export const Telemetry = Type.Object(
  {
    otlp: Type.Optional(desc(Otlp, 'Export a server span per request with OTLP/HTTP (JSON encoding). Off unless set.')),
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

export const UpstreamTls = Type.Object(
  {
    ca: Type.Optional(desc(Type.String({ minLength: 1 }), `CA bundle the endpoints' certificates must chain to, instead of the system roots: ${PEM_TEXT}.`)),
    servername: Type.Optional(desc(Type.String({ minLength: 1 }), "Name sent by SNI and checked against the endpoint's certificate. Default: the endpoint URL's host.")),
    cert: Type.Optional(desc(Type.String({ minLength: 1 }), `Client certificate for mTLS to the endpoints: ${PEM_TEXT}.`)),
    key: Type.Optional(desc(Type.String({ minLength: 1 }), `Private key of cert: ${PEM_TEXT}.`)),
    insecureSkipVerify: Type.Optional(
      desc(Type.Boolean(), 'Do not verify the endpoints\' certificates at all (logged as a warning at every load). Default false; for tests only.'),
    ),
  },
  { additionalProperties: false },
);

export const RetryOn = Type.Union(
  [
    Type.Union([Type.Literal('connect-failure'), Type.Literal('reset'), Type.Literal('timeout')]),
    desc(Type.Integer({ minimum: 500, maximum: 599 }), 'an upstream status'),
  ],
  {
    title: 'retry condition',
    description:
      'connect-failure: the connection could not be made (refused, connect timeout, unreachable); reset: the connection closed or reset before the response headers (also a pooled keep-alive connection the upstream had just closed); timeout: no response headers within timeouts.response; a 5xx status: the upstream answered with it.',
  },
);

export const Retries = Type.Object(
  {
    attempts: Type.Optional(desc(Type.Integer({ minimum: 0, maximum: 10 }), 'Retries after the first try, each on another endpoint when there is one. Default 2; 0 disables retries.')),
    on: Type.Optional(
      desc(Type.Array(RetryOn, { uniqueItems: true }), 'What failures are retried. Default [connect-failure, reset].'),
    ),
    budget: Type.Optional(
      desc(
        Type.Object(
          {
            ratio: Type.Optional(desc(Type.Number({ minimum: 0, maximum: 10 }), 'Retries allowed as a share of the requests to this upstream over the last ~10s. Default 0.2.')),
            minPerSecond: Type.Optional(desc(Type.Integer({ minimum: 0, maximum: 100000 }), 'Retries per second always allowed, whatever the ratio. Default 10.')),
          },
          { additionalProperties: false },
        ),
        'A retry budget, so retries cannot multiply the load on a failing upstream: a retry beyond it is not made and the failure goes to the client.',
      ),
    ),
  },
  { additionalProperties: false },
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
    tls: Type.Optional(desc(UpstreamTls, 'TLS to https:// endpoints: trust, name checks, client certificate.')),
    retries: Type.Optional(desc(Retries, 'Retry idempotent requests without a body on another endpoint when the first try failed before any response byte (see docs/routing.md#retries). On by default.')),
    maxPending: Type.Optional(
      desc(
        Type.Integer({ minimum: 0, maximum: 1000000 }),
        'Most requests per endpoint waiting for a free connection once all `connections` are busy; more get 503 CW_UPSTREAM_POOL_FULL (another endpoint is tried first). Default 1024.',
      ),
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
    admin: Type.Optional(desc(Admin, 'The admin listener: health, readiness, metrics, config, reload, the admin API and the dashboard (docs/observability.md).')),
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
    telemetry: Type.Optional(desc(Telemetry, 'Span export (docs/observability.md#span-export-otlp).')),
  },
  { additionalProperties: false, title: 'Causeway configuration' },
);

export type DurationValue = Static<typeof Duration>;
export type ListenConfig = Static<typeof Listen>;
export type GatewayConfig = Static<typeof Gateway>;
export type TlsConfig = Static<typeof Tls>;
export type TlsCertificateConfig = Static<typeof TlsCertificate>;
export type ListenerConfig = Static<typeof Listener>;
export type UpstreamTlsConfig = Static<typeof UpstreamTls>;
export type UpstreamConfig = Static<typeof Upstream>;
export type RouteConfig = Static<typeof Route>;
export type MatchConfig = Static<typeof Match>;
export type StringMatchConfig = Static<typeof StringMatch>;
export type HeaderRulesConfig = Static<typeof HeaderRules>;
export type TimeoutsConfig = Static<typeof Timeouts>;
export type ConfigModel = Static<typeof ConfigFile>;
export type OtlpConfig = Static<typeof Otlp>;

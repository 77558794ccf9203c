// The policy part of the config model: named policies (one kind each), consumers, Redis.
// Same rules as model.ts: this TypeBox schema is the source of the validator, the types, the
// JSON Schema and the generated reference.
import { Type, type Static } from '@sinclair/typebox';
import { desc, Duration, HeaderName, HeaderRules } from './schema-common.ts';

/** "512", "64KiB", "1MiB", "1GiB" (KB/MB/GB are 1000-based). */
export const ByteSize = Type.Union(
  [Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?\\s*(B|KB|KiB|MB|MiB|GB|GiB)?$' }), Type.Integer({ minimum: 0 })],
  { title: 'size', description: 'A size in bytes: 1048576, "512KiB", "1MiB", "1GB".' },
);

const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', maxLength: 100 });

/** Where a credential is read from. */
export const CredentialSource = Type.Object(
  {
    header: Type.Optional(desc(HeaderName, 'Read it from this header ("authorization" takes the Bearer token).')),
    cookie: Type.Optional(desc(Type.String({ minLength: 1 }), 'Read it from this cookie.')),
    query: Type.Optional(desc(Type.String({ minLength: 1 }), 'Read it from this query parameter.')),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
);

export const JwtPolicy = Type.Object(
  {
    issuer: desc(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]),
      'Accepted `iss` value(s).',
    ),
    audiences: desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'The token\'s `aud` must contain one of these.'),
    algorithms: desc(
      Type.Array(
        Type.Union([
          Type.Literal('RS256'), Type.Literal('RS384'), Type.Literal('RS512'),
          Type.Literal('PS256'), Type.Literal('PS384'), Type.Literal('PS512'),
          Type.Literal('ES256'), Type.Literal('ES384'), Type.Literal('ES512'),
          Type.Literal('EdDSA'),
          Type.Literal('HS256'), Type.Literal('HS384'), Type.Literal('HS512'),
        ]),
        { minItems: 1 },
      ),
      'Allowed signing algorithms. `none` is never accepted; HS* only with `secret`, the others only with public keys.',
    ),
    jwksUri: Type.Optional(desc(Type.String({ pattern: '^https?://' }), 'Remote JWKS URL of the identity provider.')),
    jwksFile: Type.Optional(desc(Type.String({ minLength: 1 }), 'Local JWKS file (JSON), relative to the config file.')),
    publicKeyFile: Type.Optional(desc(Type.String({ minLength: 1 }), 'Local PEM public key (SPKI) or certificate, relative to the config file.')),
    secret: Type.Optional(desc(Type.String({ minLength: 32 }), 'Shared secret for HS* algorithms (at least 32 characters; use ${ENV}).')),
    clockSkew: Type.Optional(desc(Duration, 'Tolerance for `exp` and `nbf`. Default 30s.')),
    requiredClaims: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 })), 'Claims that must be present.')),
    from: Type.Optional(desc(CredentialSource, 'Where the token is. Default: `Authorization: Bearer <token>`.')),
    optional: Type.Optional(desc(Type.Boolean(), 'Let requests without a token through unauthenticated (a bad token is still rejected). Default false.')),
    forward: Type.Optional(
      desc(Type.Record(HeaderName, Type.String({ minLength: 1 }), { additionalProperties: false }), 'Headers to send upstream from claims: `{x-user-id: sub, x-scopes: scope}`. Arrays are joined with spaces.'),
    ),
    maxTokenBytes: Type.Optional(desc(Type.Integer({ minimum: 256, maximum: 65536 }), 'Longest token accepted. Default 8192.')),
    verifiedCache: Type.Optional(
      desc(
        Type.Integer({ minimum: 0, maximum: 1_000_000 }),
        'How many verified tokens to remember, so a client sending the same token again skips the signature check (exp and nbf are checked on every request, and a token whose key left the key set is verified again). 0 turns the cache off. Default 10000.',
      ),
    ),
    jwks: Type.Optional(
      desc(
        Type.Object(
          {
            refreshInterval: Type.Optional(desc(Duration, 'How often the JWKS is fetched again. Default 10m.')),
            cooldown: Type.Optional(desc(Duration, 'Least time between two fetches caused by an unknown `kid`. Default 30s.')),
            timeout: Type.Optional(desc(Duration, 'Time limit for one JWKS fetch. Default 2s.')),
          },
          { additionalProperties: false },
        ),
        'Remote JWKS caching. Keys are served from the cache (also stale) while the provider is down.',
      ),
    ),
  },
  { additionalProperties: false },
);

export const ApiKeyPolicy = Type.Object(
  {
    from: Type.Optional(desc(CredentialSource, 'Where the key is. Default: header `x-api-key`.')),
    optional: Type.Optional(desc(Type.Boolean(), 'Let requests without a key through unauthenticated (a wrong key is still rejected). Default false.')),
    consumers: Type.Optional(desc(Type.Array(Name), 'Only these consumers (default: all `consumers`).')),
    forward: Type.Optional(
      desc(
        Type.Object(
          { consumer: Type.Optional(desc(HeaderName, 'Header carrying the consumer name upstream.')) },
          { additionalProperties: false },
        ),
        'Identity headers sent upstream.',
      ),
    ),
  },
  { additionalProperties: false },
);

const ClaimMatch = Type.Union(
  [
    Type.String(),
    Type.Number(),
    Type.Boolean(),
    Type.Object(
      {
        in: Type.Optional(Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()]), { minItems: 1 })),
        regex: Type.Optional(Type.String({ minLength: 1 })),
        present: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false, minProperties: 1, maxProperties: 1 },
    ),
  ],
  { title: 'claim match', description: 'A value the claim must equal, or one of {in: [...]}, {regex}, {present: true|false}. An array claim matches when any element does.' },
);

/** One rule: every condition it names must hold (AND). */
export const AuthzRule = Type.Object(
  {
    authenticated: Type.Optional(desc(Type.Boolean(), 'The request has (true) or has not (false) an identity.')),
    kinds: Type.Optional(
      desc(Type.Array(Type.Union([Type.Literal('user'), Type.Literal('consumer'), Type.Literal('service')]), { minItems: 1 }), 'The identity is one of these kinds.'),
    ),
    subjects: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'The subject (JWT `sub`, consumer name or service identity) is one of these.')),
    consumers: Type.Optional(desc(Type.Array(Name, { minItems: 1 }), 'The API-key consumer is one of these.')),
    scopes: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'The identity has all of these scopes.')),
    anyScopes: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'The identity has at least one of these scopes.')),
    roles: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'The identity has all of these roles.')),
    anyRoles: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'The identity has at least one of these roles.')),
    claims: Type.Optional(desc(Type.Record(Type.String({ minLength: 1 }), ClaimMatch), 'Claims (dotted paths allowed: `org.id`) that must match.')),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const AuthzPolicy = Type.Object(
  {
    allow: Type.Optional(desc(Type.Array(AuthzRule, { minItems: 1 }), 'The request is allowed when any rule matches. Absent: allowed unless denied.')),
    deny: Type.Optional(desc(Type.Array(AuthzRule, { minItems: 1 }), 'The request is refused when any rule matches (checked first).')),
    rolesClaim: Type.Optional(desc(Type.String({ minLength: 1 }), 'Claim holding roles (dotted path). Default `roles`.')),
    scopesClaim: Type.Optional(desc(Type.String({ minLength: 1 }), 'Claim holding scopes (space-separated string or list). Default `scope`, then `scp`.')),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const RateLimitKeyPart = Type.String({
  pattern: '^(ip|consumer|subject|route|claim:[A-Za-z0-9_.:-]+|header:[A-Za-z0-9-]+)$',
  description: 'ip, consumer, subject, route, claim:<name> or header:<name>',
});

export const Limit = Type.Object(
  {
    requests: desc(Type.Integer({ minimum: 1 }), 'Requests allowed per window.'),
    per: desc(Duration, 'The window: "1s", "1m", "1h".'),
  },
  { additionalProperties: false },
);

export const RateLimitPolicy = Type.Object(
  {
    limits: desc(Type.Array(Limit, { minItems: 1 }), 'Every limit applies (e.g. 10 per second and 1000 per hour).'),
    key: Type.Optional(desc(Type.Array(RateLimitKeyPart, { minItems: 1 }), 'What a budget belongs to; parts are combined. Default [ip].')),
    overrides: Type.Optional(
      desc(Type.Record(Name, Type.Array(Limit, { minItems: 1 }), { additionalProperties: false }), 'Limits per consumer name, replacing `limits` for that consumer.'),
    ),
    store: Type.Optional(desc(Type.Union([Type.Literal('memory'), Type.Literal('redis')]), 'Where counters live. Default: redis when `redis` is configured, else memory.')),
    onStoreFailure: Type.Optional(
      desc(Type.Union([Type.Literal('failOpen'), Type.Literal('failClosed')]), 'Redis down or slow: failOpen keeps limiting per replica in memory; failClosed answers 503. Default failOpen.'),
    ),
    headers: Type.Optional(
      desc(Type.Union([Type.Literal('all'), Type.Literal('limited'), Type.Literal('none')]), 'Send RateLimit-Policy and RateLimit headers on all responses, only on 429s, or never. Default all.'),
    ),
  },
  { additionalProperties: false },
);

export const CorsPolicy = Type.Object(
  {
    origins: desc(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), 'Allowed origins: "https://app.example.com", "https://*.example.com", or "*".'),
    methods: Type.Optional(desc(Type.Array(Type.String({ pattern: '^[A-Z]+$' })), 'Allowed methods. Default GET, HEAD, POST, PUT, PATCH, DELETE.')),
    headers: Type.Optional(desc(Type.Array(HeaderName), 'Allowed request headers. Default: those the preflight asks for.')),
    exposeHeaders: Type.Optional(desc(Type.Array(HeaderName), 'Response headers the browser may read.')),
    credentials: Type.Optional(desc(Type.Boolean(), 'Allow cookies and credentials (not with origin "*"). Default false.')),
    maxAge: Type.Optional(desc(Duration, 'How long browsers may cache a preflight. Default 10m.')),
  },
  { additionalProperties: false },
);

export const IpFilterPolicy = Type.Object(
  {
    allow: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 })), 'Only these addresses/CIDRs may pass.')),
    deny: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 })), 'These addresses/CIDRs are refused (checked first).')),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const IdentityTokenPolicy = Type.Object(
  {
    keyFile: desc(Type.String({ minLength: 1 }), 'PEM private key (PKCS#8; EC P-256 or RSA) that signs the tokens, relative to the config file.'),
    algorithm: Type.Optional(desc(Type.Union([Type.Literal('ES256'), Type.Literal('RS256'), Type.Literal('EdDSA')]), 'Signing algorithm matching the key. Default ES256.')),
    keyId: Type.Optional(desc(Type.String({ minLength: 1 }), 'The `kid` in the token and the published JWKS. Default: the key\'s thumbprint.')),
    issuer: desc(Type.String({ minLength: 1 }), 'The `iss` of the tokens.'),
    audience: desc(Type.String({ minLength: 1 }), 'The `aud` of the tokens (e.g. "mesh").'),
    ttl: Type.Optional(desc(Duration, 'Token lifetime. Default 60s.')),
    header: Type.Optional(desc(HeaderName, 'Header carrying the token upstream. Default x-causeway-identity.')),
  },
  { additionalProperties: false },
);

export const Policy = Type.Object(
  {
    jwt: Type.Optional(desc(JwtPolicy, 'Authenticate with a JSON Web Token.')),
    apiKey: Type.Optional(desc(ApiKeyPolicy, 'Authenticate with an API key of a `consumers` entry.')),
    authz: Type.Optional(desc(AuthzPolicy, 'Allow or refuse by the verified identity.')),
    rateLimit: Type.Optional(desc(RateLimitPolicy, 'Limit request rates.')),
    cors: Type.Optional(desc(CorsPolicy, 'Cross-origin requests: answer preflights, add CORS headers.')),
    bodyLimit: Type.Optional(desc(ByteSize, 'Largest request body accepted (413 above it).')),
    methods: Type.Optional(desc(Type.Array(Type.String({ pattern: '^[A-Z]+$' }), { minItems: 1 }), 'Only these methods (405 otherwise).')),
    ipFilter: Type.Optional(desc(IpFilterPolicy, 'Allow or deny client addresses.')),
    requestHeaders: Type.Optional(desc(HeaderRules, 'Change request headers sent upstream.')),
    responseHeaders: Type.Optional(desc(HeaderRules, 'Change response headers sent to the client.')),
    identityToken: Type.Optional(desc(IdentityTokenPolicy, 'Send upstream a short-lived token, signed by the gateway, carrying the verified identity.')),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
    title: 'policy',
    description: 'One policy: exactly one of jwt, apiKey, authz, rateLimit, cors, bodyLimit, methods, ipFilter, requestHeaders, responseHeaders, identityToken.',
  },
);

export const Consumer = Type.Object(
  {
    keys: desc(Type.Array(Type.String({ minLength: 16 }), { minItems: 1 }), 'API keys (at least 16 characters; use ${ENV}). Stored hashed once loaded.'),
    scopes: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 })), 'Scopes the consumer has (for authz).')),
    roles: Type.Optional(desc(Type.Array(Type.String({ minLength: 1 })), 'Roles the consumer has (for authz).')),
    metadata: Type.Optional(desc(Type.Record(Type.String(), Type.String()), 'Free-form attributes, matched as claims by authz.')),
  },
  { additionalProperties: false },
);

export const Redis = Type.Object(
  {
    url: desc(Type.String({ pattern: '^rediss?://' }), 'redis://[user:password@]host:port[/db]'),
    timeout: Type.Optional(desc(Duration, 'Longest wait for one Redis command before the store counts as failed. Default 100ms.')),
    keyPrefix: Type.Optional(desc(Type.String(), 'Prefix of every key. Default "causeway:".')),
  },
  { additionalProperties: false },
);

export type JwtPolicyConfig = Static<typeof JwtPolicy>;
export type ApiKeyPolicyConfig = Static<typeof ApiKeyPolicy>;
export type AuthzPolicyConfig = Static<typeof AuthzPolicy>;
export type AuthzRuleConfig = Static<typeof AuthzRule>;
export type RateLimitPolicyConfig = Static<typeof RateLimitPolicy>;
export type CorsPolicyConfig = Static<typeof CorsPolicy>;
export type IpFilterPolicyConfig = Static<typeof IpFilterPolicy>;
export type IdentityTokenPolicyConfig = Static<typeof IdentityTokenPolicy>;
export type PolicyConfig = Static<typeof Policy>;
export type ConsumerConfig = Static<typeof Consumer>;
export type RedisConfig = Static<typeof Redis>;
export type ByteSizeValue = Static<typeof ByteSize>;

import test from 'ava';
import type { IncomingHttpHeaders } from 'node:http';
import type { CorsPolicyConfig } from '../../config/policy-model.ts';
import { compileCors } from '../../plugins/cors.ts';
import { newContext, SharedResources, type CompiledPolicy, type PolicyContext, type PolicyDeps, type PolicyResult } from '../../plugins/policy.ts';

const deps: PolicyDeps = { consumers: new Map(), shared: new SharedResources(), log: { info() {}, warn() {}, error() {} } };

const cors = (cfg: CorsPolicyConfig) => compileCors('web', cfg, deps);

function request(method: string, headers: IncomingHttpHeaders): PolicyContext {
  return newContext({ method, path: '/api/orders', query: '', host: 'api.example.com', headers, clientIp: '198.51.100.4', route: 'orders' });
}

function run(p: CompiledPolicy, ctx: PolicyContext): PolicyResult {
  const out = p.run(ctx);
  if (out instanceof Promise) throw new Error('cors must answer synchronously');
  return out;
}

const preflight = (p: CompiledPolicy, origin: string, method = 'PUT', requestHeaders?: string) =>
  run(
    p,
    request('OPTIONS', {
      origin,
      'access-control-request-method': method,
      ...(requestHeaders === undefined ? {} : { 'access-control-request-headers': requestHeaders }),
    }),
  );

const VARY = ['vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'];
const UPSTREAM_CORS = [
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-expose-headers',
  'access-control-allow-methods',
  'access-control-allow-headers',
  'access-control-max-age',
];
const rejected = (message: string) => ({ status: 403, code: 'CW_CORS_REJECTED', message, headers: [VARY] });
const BAD_ORIGIN = rejected('cross-origin requests from this origin are not allowed');
const BAD_METHOD = rejected('the preflight asks for a method this route does not allow cross-origin');

const allowsOrigin = (p: CompiledPolicy, origin: string) => preflight(p, origin)?.status === 204;

test('compiled policy: name, kind, phase', (t) => {
  const p = cors({ origins: ['https://app.example.com'] });
  t.is(p.name, 'web');
  t.is(p.kind, 'cors');
  t.is(p.phase, 'edge');
});

test('preflight from an allowed origin is answered at the gateway with every header', (t) => {
  const p = cors({ origins: ['https://app.example.com'], headers: ['Content-Type', 'X-Request-Id'], maxAge: '1h' });
  t.deepEqual(preflight(p, 'https://app.example.com', 'PUT', 'content-type'), {
    status: 204,
    headers: [
      ['access-control-allow-origin', 'https://app.example.com'],
      ['access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE'],
      ['access-control-allow-headers', 'content-type, x-request-id'],
      ['access-control-max-age', '3600'],
      VARY,
    ],
  });
});

test('preflight: defaults (methods, max age 600, requested headers echoed lower-case)', (t) => {
  const p = cors({ origins: ['https://app.example.com'] });
  t.deepEqual(preflight(p, 'https://app.example.com', 'DELETE', 'X-Trace, content-type,, x-trace ,Authorization'), {
    status: 204,
    headers: [
      ['access-control-allow-origin', 'https://app.example.com'],
      ['access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE'],
      ['access-control-allow-headers', 'x-trace, content-type, authorization'],
      ['access-control-max-age', '600'],
      VARY,
    ],
  });
  // No headers asked for, none configured: no Allow-Headers.
  t.deepEqual(preflight(p, 'https://app.example.com', 'GET'), {
    status: 204,
    headers: [
      ['access-control-allow-origin', 'https://app.example.com'],
      ['access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE'],
      ['access-control-max-age', '600'],
      VARY,
    ],
  });
});

test('preflight asking for a header name that is not a token is refused', (t) => {
  const p = cors({ origins: ['https://app.example.com'] });
  t.deepEqual(preflight(p, 'https://app.example.com', 'PUT', 'x-ok, bad name'), rejected('the preflight asks for a header name that is not valid'));
  t.deepEqual(preflight(p, 'https://app.example.com', 'PUT', 'x-ok, "quoted"'), rejected('the preflight asks for a header name that is not valid'));
  // With a configured list nothing is echoed, so the request's list is not examined.
  const listed = cors({ origins: ['https://app.example.com'], headers: ['x-ok'] });
  t.is(preflight(listed, 'https://app.example.com', 'PUT', 'bad name')?.status, 204);
});

test('preflight from a disallowed origin or for a disallowed method → 403', (t) => {
  const p = cors({ origins: ['https://app.example.com'], methods: ['GET', 'POST'] });
  t.deepEqual(preflight(p, 'https://evil.example.net', 'GET'), BAD_ORIGIN);
  t.deepEqual(preflight(p, 'https://app.example.com', 'DELETE'), BAD_METHOD);
  // Methods are case-sensitive, as in the fetch standard.
  t.deepEqual(preflight(p, 'https://app.example.com', 'post'), BAD_METHOD);
  t.deepEqual(preflight(p, 'https://app.example.com', 'GET, POST'), BAD_METHOD);
  t.is(preflight(p, 'https://app.example.com', 'POST')?.status, 204);
});

test('exact origins: scheme and host compared case-insensitively, the request origin echoed', (t) => {
  const p = cors({ origins: ['https://App.Example.com', 'http://localhost:3000'] });
  const r = preflight(p, 'HTTPS://APP.example.COM');
  t.is(r?.status, 204);
  t.deepEqual(r?.headers?.[0], ['access-control-allow-origin', 'HTTPS://APP.example.COM']);
  t.true(allowsOrigin(p, 'http://localhost:3000'));
  t.false(allowsOrigin(p, 'http://localhost:3001'));
  t.false(allowsOrigin(p, 'http://localhost'));
  t.false(allowsOrigin(p, 'http://app.example.com'));
  t.false(allowsOrigin(p, 'https://app.example.com.'));
  t.false(allowsOrigin(p, 'https://app.example.com/'));
  t.false(allowsOrigin(p, 'https://app.example.com:8443'));
  t.false(allowsOrigin(p, 'https://xapp.example.com'));
});

test('a default port in the config is the origin without it (browsers leave it out)', (t) => {
  const p = cors({ origins: ['https://app.example.com:443', 'http://intranet.example.com:80'] });
  t.true(allowsOrigin(p, 'https://app.example.com'));
  t.true(allowsOrigin(p, 'http://intranet.example.com'));
});

test('wildcard origins: one or more labels, never the apex, no suffix tricks', (t) => {
  const p = cors({ origins: ['https://*.example.com'] });
  t.true(allowsOrigin(p, 'https://app.example.com'));
  t.true(allowsOrigin(p, 'https://a.b.example.com'));
  t.true(allowsOrigin(p, 'https://APP.Example.COM'));
  for (const o of [
    'https://example.com',
    'https://evilexample.com',
    'https://example.com.evil.com',
    'https://app.example.com.evil.com',
    'https://.example.com',
    'https://a..example.com',
    'http://app.example.com',
    'https://app.example.com:8443',
    'https://evil.com/.example.com',
    'https://evil.com?.example.com',
    'https://evil.com#.example.com',
    'https://user@x.example.com',
    'https://app.example.co',
    'null',
    '*',
  ]) {
    t.deepEqual(preflight(p, o), BAD_ORIGIN, o);
  }
});

test('wildcard origins with a port', (t) => {
  const p = cors({ origins: ['http://*.dev.example.com:8080'] });
  t.true(allowsOrigin(p, 'http://a.dev.example.com:8080'));
  t.false(allowsOrigin(p, 'http://a.dev.example.com'));
  t.false(allowsOrigin(p, 'http://a.dev.example.com:80'));
  t.false(allowsOrigin(p, 'http://dev.example.com:8080'));
});

test('origin "*": literal "*" without credentials, for preflights and actual requests', (t) => {
  const p = cors({ origins: ['*'], exposeHeaders: ['X-Total-Count'] });
  t.deepEqual(preflight(p, 'https://anything.test', 'GET'), {
    status: 204,
    headers: [
      ['access-control-allow-origin', '*'],
      ['access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE'],
      ['access-control-max-age', '600'],
      VARY,
    ],
  });
  const ctx = request('GET', { origin: 'https://anything.test' });
  t.is(run(p, ctx), null);
  t.deepEqual(ctx.responseHeaders, [
    ['access-control-allow-origin', '*'],
    ['access-control-expose-headers', 'X-Total-Count'],
  ]);
  // Without Origin the answer does not depend on it: nothing added.
  const plain = request('GET', {});
  t.is(run(p, plain), null);
  t.is(plain.responseHeaders, null);
});

test('"*" beside other origins: every origin allowed, echoed', (t) => {
  const p = cors({ origins: ['https://app.example.com', '*'] });
  const r = preflight(p, 'https://other.test');
  t.deepEqual(r?.headers?.[0], ['access-control-allow-origin', 'https://other.test']);
});

test('credentials: Allow-Credentials on preflights and actual requests, origin echoed', (t) => {
  const p = cors({ origins: ['https://app.example.com'], credentials: true, methods: ['GET', 'POST'], headers: ['content-type'], maxAge: '90s' });
  t.deepEqual(preflight(p, 'https://app.example.com', 'POST'), {
    status: 204,
    headers: [
      ['access-control-allow-origin', 'https://app.example.com'],
      ['access-control-allow-methods', 'GET, POST'],
      ['access-control-allow-headers', 'content-type'],
      ['access-control-max-age', '90'],
      ['access-control-allow-credentials', 'true'],
      VARY,
    ],
  });
  const ctx = request('POST', { origin: 'https://app.example.com', cookie: 'sid=1' });
  t.is(run(p, ctx), null);
  t.deepEqual(ctx.responseHeaders, [
    ['vary', 'Origin'],
    ['access-control-allow-origin', 'https://app.example.com'],
    ['access-control-allow-credentials', 'true'],
  ]);
});

test('credentials: true with "*" is refused when compiling', (t) => {
  const err = t.throws(() => cors({ origins: ['*'], credentials: true }));
  t.regex(err!.message, /^policy "web" \(cors\): credentials: true cannot be used with origin "\*"/);
  t.throws(() => cors({ origins: ['https://app.example.com', '*'], credentials: true }));
});

test('actual request from an allowed origin: CORS headers added, upstream CORS headers replaced', (t) => {
  const p = cors({ origins: ['https://*.example.com'], exposeHeaders: ['X-Total-Count', 'ETag'] });
  const ctx = request('GET', { origin: 'https://shop.example.com' });
  t.is(run(p, ctx), null);
  t.deepEqual(ctx.responseHeaders, [
    ['vary', 'Origin'],
    ['access-control-allow-origin', 'https://shop.example.com'],
    ['access-control-expose-headers', 'X-Total-Count, ETag'],
  ]);
  t.deepEqual(ctx.responseRemove, UPSTREAM_CORS);
  t.is(ctx.upstreamHeaders, null);
});

test('actual request from a disallowed origin passes through without CORS headers', (t) => {
  const p = cors({ origins: ['https://app.example.com'], credentials: true });
  const ctx = request('POST', { origin: 'https://evil.test' });
  t.is(run(p, ctx), null);
  // Only Vary, so a cache does not hand this answer to an allowed origin or the other way round.
  t.deepEqual(ctx.responseHeaders, [['vary', 'Origin']]);
  t.deepEqual(ctx.responseRemove, UPSTREAM_CORS);
});

test('requests without Origin, and OPTIONS that are not preflights, are actual requests', (t) => {
  const p = cors({ origins: ['https://app.example.com'] });
  const plain = request('GET', {});
  t.is(run(p, plain), null);
  t.deepEqual(plain.responseHeaders, [['vary', 'Origin']]);
  const options = request('OPTIONS', { origin: 'https://app.example.com' });
  t.is(run(p, options), null);
  t.deepEqual(options.responseHeaders, [
    ['vary', 'Origin'],
    ['access-control-allow-origin', 'https://app.example.com'],
  ]);
  // A request method header on a non-OPTIONS request is not a preflight either.
  const put = request('PUT', { origin: 'https://app.example.com', 'access-control-request-method': 'PUT' });
  t.is(run(p, put), null);
});

test('headers added by earlier policies are kept', (t) => {
  const p = cors({ origins: ['https://app.example.com'] });
  const ctx = request('GET', { origin: 'https://app.example.com' });
  ctx.responseHeaders = [['x-earlier', '1']];
  ctx.responseRemove = ['server'];
  run(p, ctx);
  t.deepEqual(ctx.responseHeaders, [
    ['x-earlier', '1'],
    ['vary', 'Origin'],
    ['access-control-allow-origin', 'https://app.example.com'],
  ]);
  t.deepEqual(ctx.responseRemove, ['server', ...UPSTREAM_CORS]);
});

test('malformed origins are refused when compiling, with the reason', (t) => {
  const msg = (o: string) => t.throws(() => cors({ origins: [o] }))?.message ?? '';
  const hint = '; write "scheme://host[:port]" (no path or trailing slash), "https://*.example.com" or "*"';
  t.is(msg('https://app.example.com/'), `policy "web" (cors): origin "https://app.example.com/" is not an origin${hint}`);
  t.is(msg('https://app.example.com/path'), `policy "web" (cors): origin "https://app.example.com/path" is not an origin${hint}`);
  t.is(msg('app.example.com'), `policy "web" (cors): origin "app.example.com" is not an origin${hint}`);
  t.is(msg('https://app.example.com:99999'), `policy "web" (cors): origin "https://app.example.com:99999" has an invalid port${hint}`);
  t.is(msg('https://*.com'), `policy "web" (cors): origin "https://*.com" has a wildcard over something that is not a domain of at least two labels${hint}`);
  t.is(msg('https://*example.com'), `policy "web" (cors): origin "https://*example.com" has an invalid host${hint}`);
  t.is(msg('https://a.*.example.com'), `policy "web" (cors): origin "https://a.*.example.com" has an invalid host${hint}`);
  t.regex(msg('null'), /^policy "web" \(cors\): origin "null" cannot be allowed/);
});

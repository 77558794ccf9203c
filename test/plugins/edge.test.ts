import test from 'ava';
import type { IncomingHttpHeaders } from 'node:http';
import { compileBodyLimit, compileIpFilter, compileMethods } from '../../plugins/edge.ts';
import { compileRequestHeaders, compileResponseHeaders } from '../../plugins/headers.ts';
import { newContext, SharedResources, type CompiledPolicy, type PolicyContext, type PolicyDeps, type PolicyResult } from '../../plugins/policy.ts';

const deps: PolicyDeps = { consumers: new Map(), shared: new SharedResources(), log: { info() {}, warn() {}, error() {} } };

function request(init: { method?: string; headers?: IncomingHttpHeaders; clientIp?: string } = {}): PolicyContext {
  return newContext({
    method: init.method ?? 'GET',
    path: '/upload',
    query: '',
    host: 'api.example.com',
    headers: init.headers ?? {},
    clientIp: init.clientIp ?? '203.0.113.9',
    route: 'upload',
  });
}

function run(p: CompiledPolicy, ctx: PolicyContext): PolicyResult {
  const out = p.run(ctx);
  if (out instanceof Promise) throw new Error('edge policies must answer synchronously');
  return out;
}

// ---- bodyLimit ----

test('bodyLimit: compiled policy and the streaming limit on the context', (t) => {
  const p = compileBodyLimit('small-body', '1KiB', deps);
  t.is(p.kind, 'bodyLimit');
  t.is(p.phase, 'edge');
  t.is(p.name, 'small-body');
  const ctx = request({ method: 'POST', headers: { 'transfer-encoding': 'chunked' } });
  t.is(ctx.maxBodyBytes, Infinity);
  t.is(run(p, ctx), null);
  t.is(ctx.maxBodyBytes, 1024);
});

test('bodyLimit: the smallest limit of several wins', (t) => {
  const big = compileBodyLimit('big', '10MB', deps);
  const small = compileBodyLimit('small', 2048, deps);
  const ctx = request({ method: 'POST' });
  run(small, ctx);
  run(big, ctx);
  t.is(ctx.maxBodyBytes, 2048);
  t.deepEqual(run(big, request({ method: 'POST', headers: { 'content-length': '4096' } })), null);
  const both = request({ method: 'POST', headers: { 'content-length': '4096' } });
  t.is(run(small, both)?.status, 413);
  t.deepEqual(run(big, both), { status: 413, code: 'CW_BODY_TOO_LARGE', message: 'the request body is larger than this route accepts (2048 bytes)' });
});

test('bodyLimit: Content-Length above the limit → 413 at once', (t) => {
  const p = compileBodyLimit('small-body', '1KiB', deps);
  const tooLarge = { status: 413, code: 'CW_BODY_TOO_LARGE', message: 'the request body is larger than this route accepts (1024 bytes)' };
  t.is(run(p, request({ method: 'POST', headers: { 'content-length': '1024' } })), null);
  t.is(run(p, request({ method: 'POST', headers: { 'content-length': '0' } })), null);
  t.is(run(p, request({ method: 'POST', headers: { 'content-length': '0001024' } })), null);
  t.deepEqual(run(p, request({ method: 'POST', headers: { 'content-length': '1025' } })), tooLarge);
  t.deepEqual(run(p, request({ method: 'POST', headers: { 'content-length': '99999999999999999999999999' } })), tooLarge);
  // A fresh verdict each time: a caller adding to one does not change the next.
  const a = run(p, request({ method: 'POST', headers: { 'content-length': '2000' } }));
  const b = run(p, request({ method: 'POST', headers: { 'content-length': '2000' } }));
  t.not(a, b);
});

test('bodyLimit: a Content-Length that is not a plain decimal → 400', (t) => {
  const p = compileBodyLimit('small-body', 1024, deps);
  const bad = { status: 400, code: 'CW_BAD_CONTENT_LENGTH', message: 'the Content-Length header is not a plain decimal number' };
  for (const v of ['', ' 10', '10 ', '+10', '-1', '1e3', '0x10', '1.0', '10, 10', 'ten']) {
    t.deepEqual(run(p, request({ method: 'POST', headers: { 'content-length': v } })), bad, JSON.stringify(v));
  }
  t.deepEqual(run(p, request({ method: 'POST', headers: { 'content-length': ['10', '10'] as unknown as string } })), bad);
});

test('bodyLimit: an invalid size is refused when compiling', (t) => {
  t.throws(() => compileBodyLimit('x', '1 TB', deps), { message: /^policy "x" \(bodyLimit\): not a size: "1 TB"/ });
});

// ---- methods ----

test('methods: listed methods pass, GET implies HEAD', (t) => {
  const p = compileMethods('read-write', ['GET', 'POST'], deps);
  t.is(p.kind, 'methods');
  t.is(p.phase, 'edge');
  for (const m of ['GET', 'HEAD', 'POST']) t.is(run(p, request({ method: m })), null, m);
});

test('methods: others → 405 with Allow', (t) => {
  const p = compileMethods('read-write', ['GET', 'POST'], deps);
  const notAllowed = { status: 405, code: 'CW_METHOD_NOT_ALLOWED', message: 'this route accepts only GET, POST, HEAD', headers: [['allow', 'GET, POST, HEAD']] };
  for (const m of ['DELETE', 'PUT', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'get', 'Post']) {
    t.deepEqual(run(p, request({ method: m })), notAllowed, m);
  }
});

test('methods: OPTIONS only when listed; HEAD alone does not imply GET', (t) => {
  const withOptions = compileMethods('m', ['POST', 'OPTIONS'], deps);
  t.is(run(withOptions, request({ method: 'OPTIONS' })), null);
  t.deepEqual(run(withOptions, request({ method: 'HEAD' }))?.headers, [['allow', 'POST, OPTIONS']]);
  const head = compileMethods('m', ['HEAD'], deps);
  t.is(run(head, request({ method: 'HEAD' })), null);
  t.is(run(head, request({ method: 'GET' }))?.status, 405);
  // GET and HEAD both listed: HEAD once.
  t.deepEqual(run(compileMethods('m', ['HEAD', 'GET'], deps), request({ method: 'PUT' }))?.headers, [['allow', 'HEAD, GET']]);
});

// ---- ipFilter ----

const IP_DENIED = { status: 403, code: 'CW_IP_DENIED', message: 'requests from this client address are not allowed' };

test('ipFilter: allow list with IPv4, IPv6 and IPv4-mapped clients', (t) => {
  const p = compileIpFilter('office', { allow: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'] }, deps);
  t.is(p.kind, 'ipFilter');
  t.is(p.phase, 'edge');
  for (const ip of ['10.1.2.3', '::ffff:10.1.2.3', '::FFFF:10.255.255.255', '192.0.2.7', '::ffff:192.0.2.7', '2001:db8::1', '2001:DB8:ffff::1', '2001:db8::5%eth0']) {
    t.is(run(p, request({ clientIp: ip })), null, ip);
  }
  for (const ip of ['11.0.0.1', '::ffff:11.0.0.1', '192.0.2.8', '2001:db9::1', '::1', '127.0.0.1', 'fe80::1%eth0', '', 'not-an-ip']) {
    t.deepEqual(run(p, request({ clientIp: ip })), IP_DENIED, ip);
  }
});

test('ipFilter: deny is checked first', (t) => {
  const p = compileIpFilter('office', { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.0.0.5', '2001:db8:bad::/48'] }, deps);
  t.is(run(p, request({ clientIp: '10.0.0.4' })), null);
  t.deepEqual(run(p, request({ clientIp: '10.0.0.5' })), IP_DENIED);
  t.deepEqual(run(p, request({ clientIp: '::ffff:10.0.0.5' })), IP_DENIED);
  t.deepEqual(run(p, request({ clientIp: '2001:db8:bad::7' })), IP_DENIED);
  t.is(run(p, request({ clientIp: '2001:db8:600d::7' })), null);
});

test('ipFilter: deny only lets every other address through; mapped entries in config mean IPv4', (t) => {
  const p = compileIpFilter('block', { deny: ['::ffff:198.51.100.0/120', '2001:db8::/32'] }, deps);
  t.deepEqual(run(p, request({ clientIp: '198.51.100.20' })), IP_DENIED);
  t.deepEqual(run(p, request({ clientIp: '::ffff:198.51.100.20' })), IP_DENIED);
  t.deepEqual(run(p, request({ clientIp: '2001:db8::1' })), IP_DENIED);
  t.is(run(p, request({ clientIp: '198.51.101.20' })), null);
  t.is(run(p, request({ clientIp: '::1' })), null);
  t.is(run(p, request({ clientIp: '' })), null);
});

test('ipFilter: an empty allow list lets nobody through', (t) => {
  const p = compileIpFilter('closed', { allow: [] }, deps);
  t.deepEqual(run(p, request({ clientIp: '10.0.0.1' })), IP_DENIED);
});

test('ipFilter: invalid entries are refused when compiling', (t) => {
  t.throws(() => compileIpFilter('x', { allow: ['10.0.0.0/33'] }, deps), { message: /^policy "x" \(ipFilter\): invalid address or CIDR range: .*\/33 is too long/ });
  t.throws(() => compileIpFilter('x', { deny: ['example.com'] }, deps), { message: /^policy "x" \(ipFilter\): invalid address or CIDR range/ });
  t.throws(() => compileIpFilter('x', {}, deps), { message: 'policy "x" (ipFilter): give allow, deny or both' });
});

// ---- requestHeaders / responseHeaders ----

/** What the gateway does with the context: remove the listed names, then append in order. */
function apply(base: Record<string, string | string[]>, remove: string[] | null, add: Array<[string, string]> | null) {
  const out: Record<string, string | string[]> = { ...base };
  for (const n of remove ?? []) delete out[n];
  for (const [n, v] of add ?? []) {
    const prev = out[n];
    out[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

test('requestHeaders: set replaces, add appends, remove removes (as route requestHeaders do)', (t) => {
  const p = compileRequestHeaders('tag', { set: { 'X-Env': 'prod' }, add: { 'x-tag': 'gw', 'x-new': '1' }, remove: ['x-debug'] }, deps);
  t.is(p.kind, 'requestHeaders');
  t.is(p.phase, 'transform');
  const ctx = request();
  t.is(run(p, ctx), null);
  t.deepEqual(ctx.upstreamRemove, ['x-debug', 'x-env']);
  t.deepEqual(ctx.upstreamHeaders, [
    ['x-env', 'prod'],
    ['x-tag', 'gw'],
    ['x-new', '1'],
  ]);
  t.is(ctx.responseHeaders, null);
  t.is(ctx.responseRemove, null);
  const client = { 'x-env': 'dev', 'x-tag': 'client', 'x-debug': '1', accept: '*/*' };
  t.deepEqual(apply(client, ctx.upstreamRemove, ctx.upstreamHeaders), { 'x-env': 'prod', 'x-tag': ['client', 'gw'], accept: '*/*', 'x-new': '1' });
});

test('requestHeaders: set and add of the same name give both values, as applyOps does', (t) => {
  const p = compileRequestHeaders('both', { set: { 'x-a': 'one' }, add: { 'x-a': 'two' } }, deps);
  const ctx = request();
  run(p, ctx);
  t.deepEqual(apply({ 'x-a': 'client' }, ctx.upstreamRemove, ctx.upstreamHeaders), { 'x-a': ['one', 'two'] });
});

test('requestHeaders: remove and set also drop what earlier policies added under that name', (t) => {
  const p = compileRequestHeaders('clean', { set: { 'x-user': 'anonymous' }, remove: ['X-Internal'] }, deps);
  const ctx = request();
  ctx.upstreamHeaders = [
    ['x-user', 'alice'],
    ['X-Internal', 'secret'],
    ['x-keep', 'yes'],
  ];
  ctx.upstreamRemove = ['cookie'];
  run(p, ctx);
  t.deepEqual(ctx.upstreamHeaders, [
    ['x-keep', 'yes'],
    ['x-user', 'anonymous'],
  ]);
  t.deepEqual(ctx.upstreamRemove, ['cookie', 'x-internal', 'x-user']);
});

test('responseHeaders: on the response side only', (t) => {
  const p = compileResponseHeaders('hsts', { set: { 'strict-transport-security': 'max-age=31536000' }, add: { 'x-served-by': 'causeway' }, remove: ['server', 'x-powered-by'] }, deps);
  t.is(p.kind, 'responseHeaders');
  t.is(p.phase, 'transform');
  const ctx = request();
  ctx.responseHeaders = [['vary', 'Origin']];
  t.is(run(p, ctx), null);
  t.deepEqual(ctx.responseRemove, ['server', 'x-powered-by', 'strict-transport-security']);
  t.deepEqual(ctx.responseHeaders, [
    ['vary', 'Origin'],
    ['strict-transport-security', 'max-age=31536000'],
    ['x-served-by', 'causeway'],
  ]);
  t.is(ctx.upstreamHeaders, null);
  t.is(ctx.upstreamRemove, null);
  const upstream = { server: 'nginx', 'x-powered-by': 'php', 'strict-transport-security': 'max-age=1', 'x-served-by': 'app', vary: 'Accept-Encoding' };
  t.deepEqual(apply(upstream, ctx.responseRemove, ctx.responseHeaders), {
    'strict-transport-security': 'max-age=31536000',
    'x-served-by': ['app', 'causeway'],
    vary: ['Accept-Encoding', 'Origin'],
  });
});

test('header policies: empty rules do nothing; the context is not shared between requests', (t) => {
  const none = compileRequestHeaders('none', {}, deps);
  const ctx = request();
  t.is(run(none, ctx), null);
  t.is(ctx.upstreamHeaders, null);
  t.is(ctx.upstreamRemove, null);
  const p = compileRequestHeaders('one', { add: { 'x-a': '1' } }, deps);
  const a = request();
  const b = request();
  run(p, a);
  run(p, b);
  a.upstreamHeaders!.push(['x-b', '2']);
  t.deepEqual(b.upstreamHeaders, [['x-a', '1']]);
});

test('header policies: values with line breaks are refused when compiling', (t) => {
  t.throws(() => compileRequestHeaders('bad', { set: { 'x-a': 'one\r\nx-injected: 1' } }, deps), {
    message: 'policy "bad" (requestHeaders): the value of header "x-a" has characters not allowed in a header (line breaks or control characters)',
  });
  t.throws(() => compileResponseHeaders('bad', { add: { 'x-a': 'nul\u0000' } }, deps), { message: /^policy "bad" \(responseHeaders\)/ });
});

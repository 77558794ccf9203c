import test from 'ava';
import { isSimplePath, normaliseUrl, type NormalisedUrl, type PathError } from '../../gateway/path.ts';

function ok(raw: string): NormalisedUrl {
  const r = normaliseUrl(raw);
  if ('error' in r) throw new Error(`expected ${JSON.stringify(raw)} to normalise, got: ${r.message}`);
  return r;
}

function err(raw: string): PathError {
  const r = normaliseUrl(raw);
  if (!('error' in r)) throw new Error(`expected ${JSON.stringify(raw)} to be rejected, got ${JSON.stringify(r)}`);
  return r;
}

const normalises: Array<[string, string, string?]> = [
  ['/', '/'],
  ['/a', '/a'],
  ['/a/b/c', '/a/b/c'],
  ['/a/', '/a/'],
  ['/admin/../public', '/public'],
  ['//admin', '/admin'],
  ['///', '/'],
  ['/a//b///c', '/a/b/c'],
  ['/a//', '/a/'],
  ['/./a', '/a'],
  ['/a/./b/', '/a/b/'],
  ['/a/.', '/a/'],
  ['/a/..', '/'],
  ['/a/b/..', '/a/'],
  ['/a/b/../', '/a/'],
  ['/a/b/../c', '/a/c'],
  ['/.', '/'],
  ['/./', '/'],
  ['/a/%2e%2e/b', '/b'],
  ['/a/%2E%2E/b', '/b'],
  ['/a/.%2E/b', '/b'],
  ['/a/%2e/b', '/a/b'],
  ['/a/%2e', '/a/'],
  ['/a/...', '/a/...'],
  ['/a/.../b', '/a/.../b'],
  ['/.a/..b/a.', '/.a/..b/a.'],
  ['/%7Euser', '/~user'],
  ['/%7euser', '/~user'],
  ['/%41%62%30-%5F%2E', '/Ab0-_.'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/a%20b', '/a%20b'],
  ['/a%3fb', '/a%3Fb'],
  ['/a%25b', '/a%25b'],
  ['/a%252Fb', '/a%252Fb'],
  ['/a%23b', '/a%23b'],
  ['/a/b%2e', '/a/b.'],
  ["/!$&'()*+,;=:@-_~", "/!$&'()*+,;=:@-_~"],
  ['/a/b/../../c', '/c'],
  ['/a//../b', '/b'],
  ['/a/b//..', '/a/'],
  ['/a/%7e/../b', '/a/b'],
];

for (const [raw, path] of normalises) {
  test(`path ${JSON.stringify(raw)} → ${JSON.stringify(path)}`, (t) => {
    t.deepEqual(normaliseUrl(raw), { path, query: '' });
  });
}

test('the query is split at the first ? and passed through untouched', (t) => {
  t.deepEqual(normaliseUrl('/a?x=%2F'), { path: '/a', query: 'x=%2F' });
  t.deepEqual(normaliseUrl('/a?x=1&y=2?z/../..//'), { path: '/a', query: 'x=1&y=2?z/../..//' });
  t.deepEqual(normaliseUrl('/a?'), { path: '/a', query: '' });
  t.deepEqual(normaliseUrl('/?q'), { path: '/', query: 'q' });
  t.deepEqual(normaliseUrl('/a/b/../%7e?x=%zz%'), { path: '/a/~', query: 'x=%zz%' });
  t.deepEqual(normaliseUrl('//a?b=é"<>'), { path: '/a', query: 'b=é"<>' });
  t.deepEqual(normaliseUrl('/a%2e?x'), { path: '/a.', query: 'x' });
  t.deepEqual(normaliseUrl('/a/..?x'), { path: '/', query: 'x' });
  t.deepEqual(normaliseUrl('/a/.?x'), { path: '/a/', query: 'x' });
});

test('the common case returns the input (or slices of it) unchanged', (t) => {
  const raw = '/api/v1/users/42';
  t.is(ok(raw).path, raw);
  t.deepEqual(ok('/api/v1/users?id=42&x=y'), { path: '/api/v1/users', query: 'id=42&x=y' });
  t.true(isSimplePath('/api/v1/users/42'));
  t.true(isSimplePath('/'));
  t.true(isSimplePath('/a/'));
  t.true(isSimplePath('/a/.../b.c'));
  t.false(isSimplePath('/a?x'));
  t.false(isSimplePath('a'));
  t.false(isSimplePath(''));
  t.false(isSimplePath('//a'));
  t.false(isSimplePath('/a/./b'));
  t.false(isSimplePath('/a/..'));
  t.false(isSimplePath('/%7e'));
  t.false(isSimplePath('/a b'));
});

const rejects: Array<[string, RegExp]> = [
  ['*', /asterisk-form/],
  ['http://x/y', /absolute-form/],
  ['HTTPS://x/y', /absolute-form/],
  ['', /empty request target/],
  ['a/b', /must be a path starting with '\/'/],
  ['/../etc', /climbs above the root/],
  ['/..', /climbs above the root/],
  ['/a/../../b', /climbs above the root/],
  ['/%2e%2e/etc', /climbs above the root/],
  ['/.%2e', /climbs above the root/],
  ['/a/%2E%2e/%2e%2e', /climbs above the root/],
  ['/a%2Fb', /encoded slash \(%2F\) is not allowed in the path/],
  ['/a%2fb', /encoded slash \(%2F\) is not allowed in the path/],
  ['/a%5Cb', /encoded backslash \(%5C\)/],
  ['/a%5cb', /encoded backslash \(%5C\)/],
  ['/a\\b', /backslash \(\\\) is not allowed/],
  ['/a%00b', /encoded control character \(%00\)/],
  ['/a%1Fb', /encoded control character \(%1F\)/],
  ['/a%7fb', /encoded control character \(%7F\)/],
  ['/a\u0000b', /control character 0x00/],
  ['/a\tb', /control character 0x09/],
  ['/a\u007fb', /control character 0x7F/],
  ['/a%zz', /invalid percent-encoding "%zz"/],
  ['/a%', /invalid percent-encoding "%"/],
  ['/a%4', /invalid percent-encoding "%4"/],
  ['/a%4?x', /invalid percent-encoding "%4"/],
  ['/a%g1', /invalid percent-encoding/],
  ['/a b', /space is not allowed in the path/],
  ['/a"b', /character '"' is not allowed in the path; percent-encode it as %22/],
  ['/a<b', /'<'/],
  ['/a>b', /'>'/],
  ['/a`b', /'`'/],
  ['/a{b', /'\{'/],
  ['/a}b', /'\}'/],
  ['/a|b', /'\|'/],
  ['/a^b', /'\^'/],
  ['/a[b]', /'\['/],
  ['/a#b', /'#'/],
  ['/café', /non-ASCII character U\+00E9/],
  ['/a/😀', /non-ASCII character U\+1F600/],
  ['/a?x y', /space is not allowed in the query string/],
  ['/a?x\u0001', /control character 0x01 is not allowed in the query string/],
  ['/a/../b?x\u007f', /query string/],
  ['/a?x\r\nInjected: 1', /control character 0x0D/],
];

for (const [raw, message] of rejects) {
  test(`rejects ${JSON.stringify(raw)}`, (t) => {
    const e = err(raw);
    t.is(e.error, 'CW_BAD_PATH');
    t.regex(e.message, message);
  });
}

// --- property-style: a few hundred random paths from a fixed seed -----------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  'a', 'b', 'api', 'v1', 'x.y', '.', '..', '...', '', '', '~u', '-', '_',
  '%2e', '%2E', '%2e%2e', '.%2E', '%2E.', '%7e', '%7E', '%41', '%c3%a9', '%20', '%25', '%252e',
  '%3f', '%3A', '@', ':', '!', "'", '=', '+', ';', ',',
  // occasionally invalid: the property only concerns inputs that normalise
  '%2f', '%5c', '%zz', '%', ' ', '\\', '%00',
];

function randomPath(rnd: () => number): string {
  const n = 1 + Math.floor(rnd() * 8);
  let p = '';
  for (let i = 0; i < n; i++) {
    p += '/';
    const k = Math.floor(rnd() * 3);
    for (let j = 0; j < k; j++) p += PIECES[Math.floor(rnd() * PIECES.length)]!;
    if (rnd() < 0.1) p += '/';
  }
  if (rnd() < 0.2) p += '?q=' + PIECES[Math.floor(rnd() * PIECES.length)]!.replace(/[ \\]/g, '');
  return p;
}

test('normalising is idempotent and leaves no empty or dot segments (fixed-seed random paths)', (t) => {
  const rnd = mulberry32(0xc0ffee);
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 800; i++) {
    const raw = randomPath(rnd);
    const once = normaliseUrl(raw);
    if ('error' in once) {
      rejected++;
      t.is(once.error, 'CW_BAD_PATH', raw);
      t.true(once.message.length > 0);
      continue;
    }
    accepted++;
    const twice = normaliseUrl(once.path + (once.query ? '?' + once.query : ''));
    t.deepEqual(twice, once, `not idempotent for ${JSON.stringify(raw)}`);
    const p = once.path;
    t.true(p.startsWith('/'), raw);
    t.false(p.includes('//'), `${JSON.stringify(raw)} → ${p}`);
    t.false(p.includes('/./'), `${JSON.stringify(raw)} → ${p}`);
    t.false(p.includes('/../'), `${JSON.stringify(raw)} → ${p}`);
    t.false(p.endsWith('/..'), `${JSON.stringify(raw)} → ${p}`);
    t.false(p.endsWith('/.'), `${JSON.stringify(raw)} → ${p}`);
    t.false(/%(?![0-9A-F]{2})/.test(p), `bad escape in ${p}`);
    t.false(/%(3[0-9]|4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|2D|2E|5F|7E)/.test(p), `unreserved left encoded in ${p}`);
    if (!p.includes('%')) t.true(isSimplePath(p), `${p} should take the fast path`);
    t.is(once.query, raw.includes('?') ? raw.slice(raw.indexOf('?') + 1) : '');
  }
  t.true(accepted > 300, `only ${accepted} accepted`);
  t.true(rejected > 20, `only ${rejected} rejected`);
});

test('simple random paths come back unchanged', (t) => {
  const rnd = mulberry32(42);
  const alphabet = "abcXYZ019-_~!$&'()*+,;=:@";
  for (let i = 0; i < 300; i++) {
    let p = '';
    const n = 1 + Math.floor(rnd() * 6);
    for (let s = 0; s < n; s++) {
      p += '/';
      const len = 1 + Math.floor(rnd() * 6);
      for (let j = 0; j < len; j++) p += alphabet[Math.floor(rnd() * alphabet.length)];
    }
    if (rnd() < 0.3) p += '/';
    t.true(isSimplePath(p), p);
    t.deepEqual(normaliseUrl(p), { path: p, query: '' });
  }
});

test("semicolons off (gateway.pathSemicolons: reject): a raw ';' anywhere in the path is refused, %3B and the query are not", (t) => {
  for (const p of ['/a;b', '/admin;x/users', '/a/b;', '/;', '//a;b', '/%61;b']) {
    const r = normaliseUrl(p, false);
    t.true('error' in r, p);
    t.regex((r as PathError).message, /';' is not allowed in the path/, p);
  }
  t.deepEqual(normaliseUrl('/a%3Bb?x=1;y=2', false), { path: '/a%3Bb', query: 'x=1;y=2' });
  t.deepEqual(normaliseUrl('/a;b', true), { path: '/a;b', query: '' });
  t.true('error' in normaliseUrl('/a/..;/b', true), 'dot segments with parameters are refused in both modes');
});

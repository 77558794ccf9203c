import test from 'ava';
import { compileAddressMatcher, parseCidr, unmapIPv4 } from '../../config/cidr.ts';
import { computeForwarding, forwardedElement, type ForwardingInput } from '../../gateway/forwarded.ts';

type Headers = ForwardingInput['headers'];

function fwd(
  remoteAddress: string,
  headers: Headers,
  opts: { trusted?: string[]; encrypted?: boolean; host?: string } = {},
) {
  return computeForwarding({
    remoteAddress,
    encrypted: opts.encrypted ?? false,
    host: 'host' in opts ? opts.host : 'example.com',
    headers,
    trusted: compileAddressMatcher(opts.trusted ?? []),
  });
}

const SPOOF: Headers = {
  'x-forwarded-for': '1.1.1.1, 2.2.2.2',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
  forwarded: 'for=1.1.1.1;proto=https;host=evil.example',
};

// --- untrusted peer -----------------------------------------------------------------------------

test('untrusted peer: spoofed X-Forwarded-* and Forwarded are ignored', (t) => {
  t.deepEqual(fwd('203.0.113.7', SPOOF), {
    clientIp: '203.0.113.7',
    proto: 'http',
    host: 'example.com',
    xff: '203.0.113.7',
    forwarded: 'for=203.0.113.7;proto=http;host=example.com',
  });
});

test('untrusted peer when a trusted list exists but does not contain it', (t) => {
  const f = fwd('203.0.113.7', SPOOF, { trusted: ['10.0.0.0/8'], encrypted: true });
  t.is(f.clientIp, '203.0.113.7');
  t.is(f.proto, 'https');
  t.is(f.host, 'example.com');
  t.is(f.xff, '203.0.113.7');
  t.is(f.forwarded, 'for=203.0.113.7;proto=https;host=example.com');
});

test('untrusted mapped IPv4 peer is reported unmapped', (t) => {
  const f = fwd('::ffff:198.51.100.9', SPOOF);
  t.is(f.clientIp, '198.51.100.9');
  t.is(f.xff, '198.51.100.9');
  t.is(f.forwarded, 'for=198.51.100.9;proto=http;host=example.com');
});

test('untrusted IPv6 peer: bracketed and quoted in Forwarded', (t) => {
  const f = fwd('2001:db8::1', SPOOF, { encrypted: true, host: 'example.com:8443' });
  t.is(f.clientIp, '2001:db8::1');
  t.is(f.xff, '2001:db8::1');
  t.is(f.host, 'example.com:8443');
  t.is(f.forwarded, 'for="[2001:db8::1]";proto=https;host="example.com:8443"');
});

test('no Host header and no peer address', (t) => {
  const f = fwd('', {}, { host: undefined });
  t.is(f.clientIp, '');
  t.is(f.host, '');
  t.is(f.xff, '');
  t.is(f.forwarded, 'for=unknown;proto=http');
});

// --- trusted peer --------------------------------------------------------------------------------

test('trusted peer without forwarding headers: the peer is the client', (t) => {
  const f = fwd('10.0.0.5', {}, { trusted: ['10.0.0.0/8'] });
  t.deepEqual(f, {
    clientIp: '10.0.0.5',
    proto: 'http',
    host: 'example.com',
    xff: '10.0.0.5',
    forwarded: 'for=10.0.0.5;proto=http;host=example.com',
  });
});

test('trusted peer: chain walked from the right to the first untrusted address', (t) => {
  const f = fwd(
    '10.0.0.5',
    {
      'x-forwarded-for': '6.6.6.6, 198.51.100.1, 10.1.1.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'shop.example',
      forwarded: 'for=198.51.100.1;proto=https',
    },
    { trusted: ['10.0.0.0/8'], host: 'internal:8080' },
  );
  t.is(f.clientIp, '198.51.100.1');
  t.is(f.proto, 'https');
  t.is(f.host, 'shop.example');
  t.is(f.xff, '6.6.6.6, 198.51.100.1, 10.1.1.1, 10.0.0.5');
  t.is(f.forwarded, 'for=198.51.100.1;proto=https, for=198.51.100.1;proto=https;host=shop.example');
});

test('trusted peer: every address trusted → the leftmost', (t) => {
  const f = fwd('10.0.0.5', { 'x-forwarded-for': '10.9.9.9,10.1.1.1' }, { trusted: ['10.0.0.0/8'] });
  t.is(f.clientIp, '10.9.9.9');
  t.is(f.xff, '10.9.9.9,10.1.1.1, 10.0.0.5');
});

test('trusted peer: several X-Forwarded-For lines are joined', (t) => {
  const f = fwd('10.0.0.5', { 'x-forwarded-for': ['192.0.2.1', ' 10.2.2.2 ', ''] }, { trusted: ['10.0.0.0/8'] });
  t.is(f.xff, '192.0.2.1, 10.2.2.2, 10.0.0.5');
  t.is(f.clientIp, '192.0.2.1');
  const g = fwd('10.0.0.5', { forwarded: ['for=192.0.2.1', 'for=10.2.2.2'] }, { trusted: ['10.0.0.0/8'] });
  t.is(g.forwarded, 'for=192.0.2.1, for=10.2.2.2, for=10.0.0.5;proto=http;host=example.com');
});

test('trusted peer: mapped IPv4 peer and mapped entries', (t) => {
  const f = fwd('::ffff:10.0.0.5', { 'x-forwarded-for': '::ffff:192.0.2.44' }, { trusted: ['10.0.0.0/8'] });
  t.is(f.clientIp, '192.0.2.44');
  t.is(f.xff, '::ffff:192.0.2.44, 10.0.0.5');
  t.is(f.forwarded, 'for=192.0.2.44;proto=http;host=example.com');
});

test('trusted IPv6 peer and IPv6 client', (t) => {
  const f = fwd(
    'fd00::2',
    { 'x-forwarded-for': '2001:db8::beef, fd00::7', 'x-forwarded-proto': 'HTTPS' },
    { trusted: ['fd00::/8'] },
  );
  t.is(f.clientIp, '2001:db8::beef');
  t.is(f.proto, 'https');
  t.is(f.xff, '2001:db8::beef, fd00::7, fd00::2');
  t.is(f.forwarded, 'for="[2001:db8::beef]";proto=https;host=example.com');
});

test('trusted peer: X-Forwarded-Proto other than http/https falls back to the connection', (t) => {
  t.is(fwd('10.0.0.5', { 'x-forwarded-proto': 'ftp' }, { trusted: ['10.0.0.0/8'], encrypted: true }).proto, 'https');
  t.is(fwd('10.0.0.5', { 'x-forwarded-proto': '' }, { trusted: ['10.0.0.0/8'] }).proto, 'http');
  t.is(fwd('10.0.0.5', { 'x-forwarded-proto': 'https, http' }, { trusted: ['10.0.0.0/8'] }).proto, 'https');
  t.is(fwd('10.0.0.5', { 'x-forwarded-proto': ['http', 'https'] }, { trusted: ['10.0.0.0/8'], encrypted: true }).proto, 'http');
});

test('trusted peer: X-Forwarded-Host first value, else Host', (t) => {
  t.is(fwd('10.0.0.5', { 'x-forwarded-host': 'a.example, b.example' }, { trusted: ['10.0.0.0/8'] }).host, 'a.example');
  t.is(fwd('10.0.0.5', { 'x-forwarded-host': ' ' }, { trusted: ['10.0.0.0/8'] }).host, 'example.com');
  const f = fwd('10.0.0.5', { 'x-forwarded-host': 'x"y\\z' }, { trusted: ['10.0.0.0/8'] });
  t.is(f.forwarded, 'for=10.0.0.5;proto=http;host="x\\"y\\\\z"');
});

test('malformed XFF entries stop the walk at the last good address', (t) => {
  const trusted = ['10.0.0.0/8'];
  // the entry right of the garbage was checked last (trusted), so it is the client
  t.is(fwd('10.0.0.5', { 'x-forwarded-for': '192.0.2.1, not-an-ip, 10.1.1.1' }, { trusted }).clientIp, '10.1.1.1');
  // garbage right next to the peer → the peer
  t.is(fwd('10.0.0.5', { 'x-forwarded-for': '192.0.2.1, <script>' }, { trusted }).clientIp, '10.0.0.5');
  // an untrusted address right of the garbage is found before it
  t.is(fwd('10.0.0.5', { 'x-forwarded-for': 'junk, 192.0.2.9' }, { trusted }).clientIp, '192.0.2.9');
  // empty entries, ports, brackets, zones, "unknown" are not plain IPs
  for (const bad of ['192.0.2.1,', ',192.0.2.1, ', '192.0.2.1:443', '[2001:db8::1]', 'fe80::1%eth0', 'unknown', '999.1.1.1', '1.2.3.4 5.6.7.8']) {
    const f = fwd('10.0.0.5', { 'x-forwarded-for': bad }, { trusted });
    t.is(f.clientIp, '10.0.0.5', bad);
    t.is(f.xff, bad.trim() + ', 10.0.0.5', bad);
  }
});

test('huge X-Forwarded-For is not parsed: the client is the peer', (t) => {
  const trusted = ['10.0.0.0/8'];
  const many = Array.from({ length: 65 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(',');
  const f = fwd('10.0.0.5', { 'x-forwarded-for': many + ',192.0.2.1' }, { trusted });
  t.is(f.clientIp, '10.0.0.5');
  t.is(f.xff, many + ',192.0.2.1, 10.0.0.5');
  // 64 entries is still parsed
  const sixtyFour = Array.from({ length: 63 }, () => '10.1.1.1').join(',') + ',192.0.2.1';
  t.is(fwd('10.0.0.5', { 'x-forwarded-for': sixtyFour }, { trusted }).clientIp, '192.0.2.1');
  // over 2 KB, even with few entries
  const long = '192.0.2.1,' + ' '.repeat(2100) + '192.0.2.2';
  t.is(fwd('10.0.0.5', { 'x-forwarded-for': long }, { trusted }).clientIp, '10.0.0.5');
  // hostile: 100 KB of commas
  t.is(fwd('10.0.0.5', { 'x-forwarded-for': ','.repeat(100_000) }, { trusted }).clientIp, '10.0.0.5');
});

test('clientIp is always an IP address (random hostile chains)', (t) => {
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  const parts = ['10.1.1.1', '192.0.2.1', '::1', 'fd00::1', '2001:db8::2', 'x', '', ' ', '1.2.3', ':::', '"a"', '::ffff:10.2.3.4'];
  const matcher = compileAddressMatcher(['10.0.0.0/8', 'fd00::/8']);
  for (let i = 0; i < 300; i++) {
    const n = Math.floor(rnd() * 6);
    const xff = Array.from({ length: n }, () => parts[Math.floor(rnd() * parts.length)]!).join(',');
    const f = computeForwarding({ remoteAddress: '10.0.0.1', encrypted: false, host: 'h', headers: { 'x-forwarded-for': xff }, trusted: matcher });
    t.regex(f.clientIp, /^[0-9a-f.:]+$/, xff);
    t.false(f.clientIp.startsWith('::ffff:'), xff);
  }
});

test('forwardedElement quoting', (t) => {
  t.is(forwardedElement('192.0.2.1', 'https', 'example.com'), 'for=192.0.2.1;proto=https;host=example.com');
  t.is(forwardedElement('::1', 'http', '[::1]:8080'), 'for="[::1]";proto=http;host="[::1]:8080"');
  t.is(forwardedElement('192.0.2.1', 'http', ''), 'for=192.0.2.1;proto=http');
});

// --- config/cidr ---------------------------------------------------------------------------------

test('parseCidr accepts addresses and ranges', (t) => {
  for (const s of ['10.0.0.0/8', '192.168.1.1', '192.168.1.1/32', '0.0.0.0/0', '::1', '::/0', 'fd00::/8', '2001:db8::/32', '::ffff:10.0.0.0/104', '2001:db8::1/128', '10.1.2.3/8']) {
    t.deepEqual(parseCidr(s), { ok: true }, s);
  }
});

test('parseCidr rejects with a message', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty address/],
    ['10.0.0.0/33', /\/33 is too long for IPv4 \(at most \/32\)/],
    ['fd00::/129', /too long for IPv6 \(at most \/128\)/],
    ['10.0.0.0/', /prefix length after '\/' must be a number from 0 to 32/],
    ['10.0.0.0/8/8', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/ 8', /prefix length/],
    ['10.0.0/8', /"10.0.0" is not an IPv4 or IPv6 address/],
    ['256.0.0.1', /not an IPv4 or IPv6 address/],
    ['localhost', /not an IPv4 or IPv6 address/],
    [' 10.0.0.1', /not an IPv4 or IPv6 address/],
    ['fd00:::/8', /not an IPv4 or IPv6 address/],
    ['fe80::1%eth0', /zone indexes/],
  ];
  for (const [s, re] of cases) {
    const r = parseCidr(s);
    t.false(r.ok, s);
    if (!r.ok) t.regex(r.message, re, s);
  }
});

test('compileAddressMatcher: IPv4, IPv6, mapped, invalid', (t) => {
  const m = compileAddressMatcher(['10.0.0.0/8', '192.168.1.1', 'fd00::/8', '::1', '::ffff:172.16.0.0/108']);
  t.true(m('10.1.2.3'));
  t.true(m('::ffff:10.1.2.3'));
  t.true(m('::FFFF:10.1.2.3'));
  t.true(m('::ffff:a01:203')); // hex form of ::ffff:10.1.2.3
  t.false(m('11.0.0.1'));
  t.false(m('::ffff:11.0.0.1'));
  t.true(m('192.168.1.1'));
  t.false(m('192.168.1.2'));
  t.true(m('fd12:3456::1'));
  t.false(m('fe80::1'));
  t.true(m('::1'));
  t.true(m('0:0:0:0:0:0:0:1'));
  t.false(m('::2'));
  t.true(m('172.16.5.5'));
  t.true(m('::ffff:172.31.255.255'));
  t.false(m('172.32.0.0'));
  t.false(m(''));
  t.false(m('garbage'));
  t.false(m('10.0.0.1.5'));
  t.true(m('fd00::1%eth0')); // node can report a zone on link-local peers
  t.throws(() => compileAddressMatcher(['10.0.0.0/8', 'nope']), { message: /invalid address or CIDR range: "nope"/ });
});

test('compileAddressMatcher: empty list and catch-alls', (t) => {
  const none = compileAddressMatcher([]);
  t.false(none('127.0.0.1'));
  t.false(none('::1'));
  const all4 = compileAddressMatcher(['0.0.0.0/0']);
  t.true(all4('203.0.113.1'));
  t.true(all4('::ffff:203.0.113.1'));
  t.false(all4('2001:db8::1'));
  const host = compileAddressMatcher(['::ffff:127.0.0.1']);
  t.true(host('127.0.0.1'));
  t.true(host('::ffff:127.0.0.1'));
});

test('unmapIPv4', (t) => {
  t.is(unmapIPv4('::ffff:127.0.0.1'), '127.0.0.1');
  t.is(unmapIPv4('::FFFF:127.0.0.1'), '127.0.0.1');
  t.is(unmapIPv4('::ffff:1'), '::ffff:1');
  t.is(unmapIPv4('::1'), '::1');
  t.is(unmapIPv4('127.0.0.1'), '127.0.0.1');
  t.is(unmapIPv4('::ffff:999.0.0.1'), '::ffff:999.0.0.1');
});

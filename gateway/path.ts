/**
 * Request-target normalisation for the gateway hot path.
 *
 * Routes are matched against the *normalised* path, and the same normalised path is what the
 * upstream receives, so a client cannot reach `/admin` by asking for `//admin`, `/public/../admin`
 * or `/%2e%2e/admin`, and the upstream cannot be made to see a path the gateway did not match.
 *
 * Rules, in order:
 * - The target is split at the first `?`. The query is passed through byte for byte; it is only
 *   rejected when it holds a control character (< 0x20, 0x7f) or a space.
 * - The path must start with `/` (origin-form). Absolute-form (`http://h/p`) and asterisk-form
 *   (`*`) are rejected.
 * - Percent-encoding: only unreserved characters (ALPHA DIGIT `-` `.` `_` `~`) are decoded; every
 *   other `%XX` is kept, with its hex upper-cased. A `%` not followed by two hex digits, an encoded
 *   slash (`%2F`), an encoded backslash (`%5C`) and an encoded control character are rejected.
 * - Raw characters outside the RFC 3986 `pchar` set (`/` aside) are rejected: controls, space,
 *   `"` `#` `<` `>` `[` `\` `]` `^` `` ` `` `{` `|` `}` and anything non-ASCII.
 * - Repeated slashes are merged (`//admin` → `/admin`).
 * - Dot segments are removed as in RFC 3986 §5.2.4, after decoding (so `%2e%2e` is `..`). A `..`
 *   that would climb above the root is rejected rather than clamped.
 * - A trailing slash is kept (`/a/` → `/a/`, `/a/.` → `/a/`, `/a/b/..` → `/a/`).
 * - Percent-encoded bytes >= 0x80 must be well-formed UTF-8: an overlong form (`%C0%AE`, a
 *   "dot" to decoders that accept it), a truncated or stray sequence, a surrogate or a code point
 *   past U+10FFFF is rejected.
 * - A dot segment followed by path parameters (`..;x`, `.;`, also `..%3B`) is rejected: servers
 *   that strip parameters before resolving dots (Tomcat, Jetty) would read `/public/..;/admin`
 *   as `/admin`.
 * - By default (gateway.pathSemicolons: reject) any raw `;` is rejected: the same servers read
 *   `/admin;x/users` as `/admin/users`, which the gateway would match as another path.
 *
 * The result is idempotent: normalising a normalised path gives it back unchanged.
 *
 * The common case (no `%`, no `//`, no `.`/`..` segment, only plain pchars) is one `charCodeAt`
 * scan and at most two `slice`s.
 */

export type NormalisedUrl = { path: string; query: string };
export type PathError = { error: 'CW_BAD_PATH'; message: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const QMARK = 0x3f;
const PERCENT = 0x25;
const SEMI = 0x3b;

/**
 * 1 for characters that may appear raw in a path and need no further thought:
 * ALPHA DIGIT - _ ~ ! $ & ' ( ) * + , ; = : @ (pchar minus '%' and '.', which are special, and
 * plus nothing else; '/' is handled on its own).
 */
const PLAIN = new Uint8Array(128);
/** 1 for the unreserved characters, which are decoded when percent-encoded. */
const UNRESERVED = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) PLAIN[c] = UNRESERVED[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) PLAIN[c] = UNRESERVED[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) PLAIN[c] = UNRESERVED[c] = 1;
for (const ch of '-_~') PLAIN[ch.charCodeAt(0)] = UNRESERVED[ch.charCodeAt(0)] = 1;
UNRESERVED[DOT] = 1;
for (const ch of "!$&'()*+,;=:@") PLAIN[ch.charCodeAt(0)] = 1;
/** PLAIN without ';', for gateway.pathSemicolons: reject (the default). */
const PLAIN_NO_SEMI = PLAIN.slice();
PLAIN_NO_SEMI[SEMI] = 0;

const HEX = '0123456789ABCDEF';

/** `..;x` and `.;x`: servers that drop path parameters (Tomcat, Jetty) read them as dot segments. */
const DOT_PARAMS = "a dot segment with parameters ('..;' or '.;') is not allowed in the path";

/** Overlong forms (`%C0%AE` for '.'), lone or truncated sequences, surrogates, > U+10FFFF. */
const BAD_UTF8 = 'percent-encoded bytes in the path are not valid UTF-8 (overlong, truncated or out of range)';

/** A raw ';' with gateway.pathSemicolons: reject. */
const SEMICOLON =
  "a ';' is not allowed in the path: servers such as Tomcat, Jetty and Spring drop what follows it in a segment, so /admin;x could reach /admin through another route (gateway.pathSemicolons: allow passes it)";

function bad(message: string): PathError {
  return { error: 'CW_BAD_PATH', message };
}

/**
 * Scans `s` from index 1 (index 0 must be '/') up to the first '?' or the end. Returns the index
 * where the path ends if the path is already in normal form, or -1 if it needs the slow path
 * (which also produces the precise error for anything invalid).
 */
function scanSimple(s: string, plain: Uint8Array): number {
  const len = s.length;
  let prev = SLASH;
  let i = 1;
  for (; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c === QMARK) break;
    if (c === SLASH) {
      if (prev === SLASH) return -1;
    } else if (c === DOT) {
      if (prev === SLASH) {
        // '.' or '..' segment?
        const n1 = i + 1 < len ? s.charCodeAt(i + 1) : SLASH;
        if (n1 === SLASH || n1 === QMARK || n1 === SEMI) return -1;
        if (n1 === DOT) {
          const n2 = i + 2 < len ? s.charCodeAt(i + 2) : SLASH;
          if (n2 === SLASH || n2 === QMARK || n2 === SEMI) return -1;
        }
      }
    } else if (c >= 128 || plain[c] === 0) {
      return -1; // '%', or a character that is an error
    }
    prev = c;
  }
  return i;
}

/**
 * True when `path` (no query) is already a normalised path: starts with '/', only plain pchars,
 * no '%', no '//', no dot segment. Such a path is returned by `normaliseUrl` unchanged.
 */
export function isSimplePath(path: string): boolean {
  return path.charCodeAt(0) === SLASH && scanSimple(path, PLAIN) === path.length;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function hex2(v: number): string {
  return HEX[v >> 4]! + HEX[v & 15]!;
}

function describeRaw(s: string, i: number): string {
  const c = s.charCodeAt(i);
  if (c < 0x20 || c === 0x7f) return `control character 0x${hex2(c)} is not allowed in the path`;
  if (c === 0x20) return 'a space is not allowed in the path; percent-encode it as %20';
  if (c === 0x5c) return 'backslash (\\) is not allowed in the path';
  if (c >= 0x80) {
    const cp = s.codePointAt(i)!;
    return `non-ASCII character U+${cp.toString(16).toUpperCase().padStart(4, '0')} is not allowed in the path; percent-encode its UTF-8 bytes`;
  }
  return `character '${s[i]}' is not allowed in the path; percent-encode it as %${hex2(c)}`;
}

function checkQuery(s: string, from: number): PathError | null {
  for (let j = from; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c <= 0x20 || c === 0x7f) {
      return bad(
        c === 0x20
          ? 'a space is not allowed in the query string; percent-encode it as %20'
          : `control character 0x${hex2(c)} is not allowed in the query string`,
      );
    }
  }
  return null;
}

function badStart(raw: string): PathError {
  if (raw.length === 0) return bad("empty request target; expected a path starting with '/'");
  if (raw === '*') return bad("asterisk-form request target '*' is not supported; send a path starting with '/'");
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw)) {
    return bad("absolute-form request target is not supported; send a path starting with '/'");
  }
  return bad("the request target must be a path starting with '/'");
}

/**
 * Normalises a request-target (origin-form, as in node's `req.url`). See the rules above. With
 * `semicolons` false (gateway.pathSemicolons: reject, the default) a raw ';' in the path is
 * refused; an encoded one (%3B) is kept as it is, which no server reads as a delimiter.
 */
export function normaliseUrl(rawUrl: string, semicolons = true): NormalisedUrl | PathError {
  if (rawUrl.charCodeAt(0) !== SLASH) return badStart(rawUrl);
  const end = scanSimple(rawUrl, semicolons ? PLAIN : PLAIN_NO_SEMI);
  if (end >= 0) {
    if (end === rawUrl.length) return { path: rawUrl, query: '' };
    const qErr = checkQuery(rawUrl, end + 1);
    if (qErr) return qErr;
    return { path: rawUrl.slice(0, end), query: rawUrl.slice(end + 1) };
  }
  return slowPath(rawUrl, semicolons);
}

function slowPath(raw: string, semicolons: boolean): NormalisedUrl | PathError {
  let end = raw.indexOf('?');
  if (end < 0) end = raw.length;

  // Decoded segments after dot removal; `trailing` says whether the path ends in '/'.
  const stack: string[] = [];
  let trailing = false;
  let seg = '';
  let segDots = 0; // dots in the current segment (decoded)
  let onlyDots = true; // the current segment holds nothing but dots so far
  // Escaped bytes >= 0x80 must be well-formed UTF-8 (RFC 3629; Unicode table 3-7): continuation
  // bytes still expected, and the range the next one must fall in (excludes overlongs such as
  // %C0%AE, surrogates and code points past U+10FFFF).
  let need = 0;
  let lo = 0x80;
  let hi = 0xbf;

  for (let i = 1; i <= end; i++) {
    const c = i < end ? raw.charCodeAt(i) : SLASH;
    if (need > 0 && c !== PERCENT) return bad(BAD_UTF8);
    if (c === SLASH) {
      const isLast = i === end;
      if (seg.length === 0) {
        // empty segment: merged with its neighbour, but a final one means a trailing slash
        if (isLast) trailing = true;
      } else if (onlyDots && segDots === 1) {
        if (isLast) trailing = true;
      } else if (onlyDots && segDots === 2) {
        if (stack.length === 0) return bad("the path climbs above the root with '..'");
        stack.pop();
        if (isLast) trailing = true;
      } else {
        stack.push(seg);
        if (isLast) trailing = false;
      }
      seg = '';
      segDots = 0;
      onlyDots = true;
      continue;
    }
    if (c === PERCENT) {
      const h = i + 1 < end ? hexValue(raw.charCodeAt(i + 1)) : -1;
      const l = i + 2 < end ? hexValue(raw.charCodeAt(i + 2)) : -1;
      if (h < 0 || l < 0) {
        return bad(
          `invalid percent-encoding ${JSON.stringify(raw.slice(i, Math.min(i + 3, end)))} in the path: '%' must be followed by two hex digits`,
        );
      }
      const v = (h << 4) | l;
      i += 2;
      if (need > 0) {
        if (v < lo || v > hi) return bad(BAD_UTF8);
        need--;
        lo = 0x80;
        hi = 0xbf;
      } else if (v >= 0x80) {
        if (v >= 0xc2 && v <= 0xdf) need = 1;
        else if (v >= 0xe0 && v <= 0xef) {
          need = 2;
          if (v === 0xe0) lo = 0xa0;
          else if (v === 0xed) hi = 0x9f;
        } else if (v >= 0xf0 && v <= 0xf4) {
          need = 3;
          if (v === 0xf0) lo = 0x90;
          else if (v === 0xf4) hi = 0x8f;
        } else return bad(BAD_UTF8);
      }
      if (v === SLASH) return bad('encoded slash (%2F) is not allowed in the path');
      if (v === 0x5c) return bad('encoded backslash (%5C) is not allowed in the path');
      if (v < 0x20 || v === 0x7f) return bad(`encoded control character (%${hex2(v)}) is not allowed in the path`);
      if (v === SEMI && onlyDots && segDots > 0 && segDots < 3) return bad(DOT_PARAMS);
      if (v < 128 && UNRESERVED[v] === 1) {
        seg += String.fromCharCode(v);
        if (v === DOT) segDots++;
        else onlyDots = false;
      } else {
        seg += '%' + hex2(v);
        onlyDots = false;
      }
      continue;
    }
    if (c === DOT) {
      seg += '.';
      segDots++;
      continue;
    }
    if (c >= 128 || PLAIN[c] === 0) return bad(describeRaw(raw, i));
    if (c === SEMI && onlyDots && segDots > 0 && segDots < 3) return bad(DOT_PARAMS);
    if (c === SEMI && !semicolons) return bad(SEMICOLON);
    seg += raw[i];
    onlyDots = false;
  }

  const qErr = checkQuery(raw, end + 1);
  if (qErr) return qErr;

  let path: string;
  if (stack.length === 0) path = '/';
  else path = '/' + stack.join('/') + (trailing ? '/' : '');
  return { path, query: end < raw.length ? raw.slice(end + 1) : '' };
}

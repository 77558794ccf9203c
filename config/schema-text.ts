// Human words for the schema's patterns, shared by the validator's messages and the
// generated config reference.

interface PatternText {
  /** Finishes "…: " in an issue. */
  message: string;
  /** Short note for the reference's type column. */
  short: string;
  /** What a map key with this pattern is called ("header name"). */
  keyLabel: string;
}

const NAME = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const DURATION = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$';
const SIZE = '^[0-9]+(\\.[0-9]+)?\\s*(B|KB|KiB|MB|MiB|GB|GiB)?$';
const RATE_LIMIT_KEY = '^(ip|consumer|subject|route|claim:[A-Za-z0-9_.:-]+|header:[A-Za-z0-9-]+)$';

const PATTERNS: Record<string, PatternText> = {
  '^/': { message: 'must be a string starting with "/"', short: 'starts with "/"', keyLabel: 'key' },
  '^https?://': {
    message: 'must be a URL starting with "http://" or "https://"',
    short: 'http:// or https:// URL',
    keyLabel: 'key',
  },
  [NAME]: {
    message: 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"',
    short: 'letters, digits, ".", "_", "-"',
    keyLabel: 'name',
  },
  [TOKEN]: {
    message: "must be a valid header name (letters, digits and !#$%&'*+.^_`|~-)",
    short: 'header name',
    keyLabel: 'header name',
  },
  '^[A-Z]+$': { message: 'must be an upper-case method name like "GET"', short: 'upper case', keyLabel: 'key' },
  [DURATION]: { message: 'expected a duration like "2s" or "250ms"', short: 'a number and ms, s, m or h', keyLabel: 'key' },
  [SIZE]: {
    message: 'expected a size like "1MiB" or a number of bytes',
    short: 'a number and optionally B, KB, KiB, MB, MiB, GB or GiB',
    keyLabel: 'key',
  },
  [RATE_LIMIT_KEY]: {
    message: 'must be ip, consumer, subject, route, claim:<name> or header:<name>',
    short: 'ip, consumer, subject, route, claim:<name> or header:<name>',
    keyLabel: 'key',
  },
  '^(\\*\\.)?[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$': {
    message: 'must be a DNS name like "api.example.com", or a wildcard like "*.example.com"',
    short: 'DNS name or *.example.com',
    keyLabel: 'key',
  },
  '^[\\x21-\\x7e]+$': {
    message: 'must be visible ASCII characters only (no spaces)',
    short: 'visible ASCII, no spaces',
    keyLabel: 'key',
  },
  '^rediss?://': {
    message: 'must be a URL starting with "redis://" or "rediss://"',
    short: 'redis:// or rediss:// URL',
    keyLabel: 'key',
  },
};

export function patternText(pattern: string): PatternText {
  return (
    PATTERNS[pattern] ?? {
      message: `must match the pattern /${pattern}/`,
      short: `matches /${pattern}/`,
      keyLabel: 'key',
    }
  );
}

/**
 * The default a description states ("… Default 5s; 0 disables." → "5s", "Default GET, HEAD,
 * POST." → "GET, HEAD, POST"), if any.
 */
export function defaultFromDescription(description: string | undefined): string | undefined {
  if (!description) return undefined;
  const m = /\bdefault:?\s+(.+?)(?:\.(?=\s|$)|;|\)|$)/i.exec(description);
  if (m) return m[1]!.trim();
  const paren = /\(([^()]*?),\s*default\)/i.exec(description);
  return paren ? paren[1]!.trim() : undefined;
}

// Every authentication error a client can receive, declared once (docs/policies-auth.md lists
// the same table), and the verdicts that carry them with their WWW-Authenticate challenge.
// Messages are fixed text (or name a configured claim): never the token, never key material.
import type { Verdict } from './policy.ts';

export interface AuthErrorDef {
  status: number;
  message: string;
}

export const AUTH_ERRORS = {
  CW_AUTH_MISSING: { status: 401, message: 'credentials are required' },
  CW_AUTH_TOKEN_TOO_LARGE: { status: 401, message: 'the token is too large' },
  CW_AUTH_MALFORMED: { status: 401, message: 'the token is malformed' },
  CW_AUTH_BAD_ALGORITHM: { status: 401, message: 'the token is signed with an algorithm that is not allowed' },
  CW_AUTH_UNKNOWN_KEY: { status: 401, message: 'no known key matches the token' },
  CW_AUTH_BAD_SIGNATURE: { status: 401, message: 'the token signature is invalid' },
  CW_AUTH_EXPIRED: { status: 401, message: 'the token has expired' },
  CW_AUTH_NOT_YET_VALID: { status: 401, message: 'the token is not valid yet' },
  CW_AUTH_BAD_ISSUER: { status: 401, message: 'the token issuer is not accepted' },
  CW_AUTH_BAD_AUDIENCE: { status: 401, message: 'the token audience is not accepted' },
  CW_AUTH_MISSING_CLAIM: { status: 401, message: 'the token lacks a required claim' },
  CW_AUTH_BAD_KEY: { status: 401, message: 'the API key is not valid' },
  CW_AUTH_KEYS_UNAVAILABLE: { status: 503, message: 'the keys to verify the token are unavailable' },
  CW_AUTH_IDENTITY_TOKEN_FAILED: { status: 500, message: 'the identity token could not be signed' },
} as const satisfies Record<string, AuthErrorDef>;

export type AuthErrorCode = keyof typeof AUTH_ERRORS;

export const REALM = 'causeway';

/** RFC 6750 §3 error_description: printable ASCII without `"` and `\` (quotes become `'`). */
function quotable(text: string): string {
  return text.replace(/"/g, "'").replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?');
}

/**
 * A Bearer (RFC 6750) failure. A missing token gets the bare challenge; an invalid one gets
 * `error="invalid_token"` and the message as `error_description`. Non-401 codes (503, 500)
 * carry no challenge.
 */
export function bearerError(code: AuthErrorCode, message: string = AUTH_ERRORS[code].message): Verdict {
  const { status } = AUTH_ERRORS[code];
  if (status !== 401) return { status, code, message };
  const challenge =
    code === 'CW_AUTH_MISSING'
      ? `Bearer realm="${REALM}"`
      : `Bearer realm="${REALM}", error="invalid_token", error_description="${quotable(message)}"`;
  return { status, code, message, headers: [['www-authenticate', challenge]] };
}

/** An API-key failure, challenged with the `ApiKey` scheme. */
export function apiKeyError(code: 'CW_AUTH_MISSING' | 'CW_AUTH_BAD_KEY', message: string = AUTH_ERRORS[code].message): Verdict {
  const challenge =
    code === 'CW_AUTH_MISSING'
      ? `ApiKey realm="${REALM}"`
      : `ApiKey realm="${REALM}", error="invalid_key", error_description="${quotable(message)}"`;
  return { status: 401, code, message, headers: [['www-authenticate', challenge]] };
}

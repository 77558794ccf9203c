// Reading a claim of a verified token by name, or by dotted path (`org.id`) when no claim has
// that exact name. Compiled once per configured name; used by jwt (requiredClaims, forward) and
// rate-limit keys (`claim:`).

export type ClaimReader = (claims: Readonly<Record<string, unknown>>) => unknown;

export function claimReader(name: string): ClaimReader {
  const path = name.split('.');
  return (claims) => {
    if (Object.hasOwn(claims, name)) return claims[name];
    let cur: unknown = claims;
    for (const seg of path) {
      if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, seg)) return undefined;
      cur = (cur as Record<string, unknown>)[seg];
    }
    return cur;
  };
}

// Edge policies: cheap checks on the request line and the client address, run before anything
// else (bodyLimit, methods, ipFilter).
import { compileAddressMatcher } from '../config/cidr.ts';
import type { ByteSizeValue, IpFilterPolicyConfig } from '../config/policy-model.ts';
import type { CompiledPolicy, PolicyContext, PolicyDeps, PolicyResult, Verdict } from './policy.ts';
import { parseByteSize } from '../config/size.ts';

const DECIMAL = /^[0-9]+$/;

/**
 * Largest request body. Lowers ctx.maxBodyBytes (the gateway enforces it on chunked bodies
 * while streaming) and refuses a declared Content-Length above it before anything goes upstream.
 */
export function compileBodyLimit(name: string, cfg: ByteSizeValue, _deps: PolicyDeps): CompiledPolicy {
  let limit: number;
  try {
    limit = parseByteSize(cfg);
  } catch (err) {
    throw new Error(`policy "${name}" (bodyLimit): ${(err as Error).message}`);
  }
  // Verdicts are made afresh on each refusal: the caller may add to them.
  const tooLarge = (max: number): Verdict => ({
    status: 413,
    code: 'CW_BODY_TOO_LARGE',
    message: `the request body is larger than this route accepts (${max} bytes)`,
  });
  const badLength = (): Verdict => ({
    status: 400,
    code: 'CW_BAD_CONTENT_LENGTH',
    message: 'the Content-Length header is not a plain decimal number',
  });
  return {
    name,
    kind: 'bodyLimit',
    phase: 'edge',
    run(ctx: PolicyContext): PolicyResult {
      if (limit < ctx.maxBodyBytes) ctx.maxBodyBytes = limit;
      const cl: unknown = ctx.headers['content-length'];
      if (cl === undefined) return null;
      if (typeof cl !== 'string' || !DECIMAL.test(cl)) return badLength();
      // Number() of a long digit string is approximate but monotonic, so the comparison holds.
      return Number(cl) > ctx.maxBodyBytes ? tooLarge(ctx.maxBodyBytes) : null;
    },
  };
}

/** Only the listed methods (GET implies HEAD; OPTIONS only when listed); 405 with Allow otherwise. */
export function compileMethods(name: string, cfg: string[], _deps: PolicyDeps): CompiledPolicy {
  if (cfg.length === 0) throw new Error(`policy "${name}" (methods): list at least one method`);
  const allowed = new Set(cfg);
  if (allowed.has('GET')) allowed.add('HEAD');
  const allow = [...allowed].join(', ');
  const message = `this route accepts only ${allow}`;
  const notAllowed = (): Verdict => ({
    status: 405,
    code: 'CW_METHOD_NOT_ALLOWED',
    message,
    headers: [['allow', allow]],
  });
  return {
    name,
    kind: 'methods',
    phase: 'edge',
    run: (ctx) => (allowed.has(ctx.method) ? null : notAllowed()),
  };
}

/** Client addresses: `deny` first, then only `allow` (when given) may pass. */
export function compileIpFilter(name: string, cfg: IpFilterPolicyConfig, _deps: PolicyDeps): CompiledPolicy {
  if (cfg.allow === undefined && cfg.deny === undefined) {
    throw new Error(`policy "${name}" (ipFilter): give allow, deny or both`);
  }
  let allow: ((ip: string) => boolean) | null;
  let deny: ((ip: string) => boolean) | null;
  try {
    allow = cfg.allow === undefined ? null : compileAddressMatcher(cfg.allow);
    deny = cfg.deny === undefined ? null : compileAddressMatcher(cfg.deny);
  } catch (err) {
    throw new Error(`policy "${name}" (ipFilter): ${(err as Error).message}`);
  }
  const denied = (): Verdict => ({
    status: 403,
    code: 'CW_IP_DENIED',
    message: 'requests from this client address are not allowed',
  });
  return {
    name,
    kind: 'ipFilter',
    phase: 'edge',
    run(ctx) {
      if (deny !== null && deny(ctx.clientIp)) return denied();
      if (allow !== null && !allow(ctx.clientIp)) return denied();
      return null;
    },
  };
}

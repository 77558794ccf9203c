// requestHeaders / responseHeaders policies: the same add/set/remove rules a route can carry
// (config/compile.ts compileHeaderOps, applied by gateway/proxy.ts applyOps), as policies that
// any route or the sidecar can share.
//
// They record their effect on the context; the gateway first removes the names in
// upstreamRemove/responseRemove from the client's request / the upstream's response, then
// appends every [name, value] of upstreamHeaders/responseHeaders in order. So, as in applyOps:
//   remove  → the name goes into the remove list;
//   set     → the name goes into the remove list too, then [name, value] is appended (replaces);
//   add     → [name, value] is appended (keeps the existing values; after a set of the same
//             name it adds a second value, as applyOps does).
// Headers that policies earlier in the chain recorded under a removed or set name are dropped
// as well, so "remove" and "set" mean the same whichever policy added the header first.
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { compileHeaderOps, type HeaderOps } from '../config/compile.ts';
import type { HeaderRulesConfig } from '../config/model.ts';
import type { CompiledPolicy, PolicyContext, PolicyDeps } from './policy.ts';

type Side = 'request' | 'response';

function checkOps(name: string, kind: string, ops: HeaderOps): void {
  for (const [h, v] of [...ops.set, ...ops.add]) {
    try {
      validateHeaderName(h);
      validateHeaderValue(h, v);
    } catch {
      throw new Error(`policy "${name}" (${kind}): the value of header "${h}" has characters not allowed in a header (line breaks or control characters)`);
    }
  }
  for (const h of ops.remove) {
    try {
      validateHeaderName(h);
    } catch {
      throw new Error(`policy "${name}" (${kind}): "${h}" is not a valid header name`);
    }
  }
}

function compile(name: string, kind: string, cfg: HeaderRulesConfig, side: Side): CompiledPolicy {
  const ops = compileHeaderOps(cfg);
  if (ops === null) return { name, kind, phase: 'transform', run: () => null };
  checkOps(name, kind, ops);
  const removed = [...new Set([...ops.remove, ...ops.set.map(([n]) => n)])];
  const removedSet = new Set(removed);
  const append: Array<[string, string]> = [...ops.set, ...ops.add];
  const dropEarlier = (list: Array<[string, string]> | null): Array<[string, string]> | null =>
    list === null || removedSet.size === 0 ? list : list.filter(([n]) => !removedSet.has(n.toLowerCase()));

  const run =
    side === 'request'
      ? (ctx: PolicyContext) => {
          if (removed.length > 0) {
            ctx.upstreamHeaders = dropEarlier(ctx.upstreamHeaders);
            (ctx.upstreamRemove ??= []).push(...removed);
          }
          if (append.length > 0) (ctx.upstreamHeaders ??= []).push(...append);
          return null;
        }
      : (ctx: PolicyContext) => {
          if (removed.length > 0) {
            ctx.responseHeaders = dropEarlier(ctx.responseHeaders);
            (ctx.responseRemove ??= []).push(...removed);
          }
          if (append.length > 0) (ctx.responseHeaders ??= []).push(...append);
          return null;
        };
  return { name, kind, phase: 'transform', run };
}

/** Change the request headers sent upstream. */
export function compileRequestHeaders(name: string, cfg: HeaderRulesConfig, _deps: PolicyDeps): CompiledPolicy {
  return compile(name, 'requestHeaders', cfg, 'request');
}

/** Change the response headers sent to the client. */
export function compileResponseHeaders(name: string, cfg: HeaderRulesConfig, _deps: PolicyDeps): CompiledPolicy {
  return compile(name, 'responseHeaders', cfg, 'response');
}

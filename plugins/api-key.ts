// API keys: consumers are compiled once per snapshot with their keys hashed (SHA-256; the keys
// themselves are not kept), and the `apiKey` policy compares the hash of the presented key
// with every allowed hash in constant time, whatever the content.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyPolicyConfig, ConsumerConfig } from '../config/policy-model.ts';
import { apiKeyError } from './auth-errors.ts';
import { credentialReader } from './credentials.ts';
import { addUpstreamHeader, type CompiledConsumer, type CompiledPolicy, type Identity, type PolicyDeps } from './policy.ts';

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Consumers by name, keys hashed. The same key given to two consumers is a config error. */
export function compileConsumers(consumers: Record<string, ConsumerConfig> | undefined): Map<string, CompiledConsumer> {
  const out = new Map<string, CompiledConsumer>();
  const owner = new Map<string, string>();
  for (const [name, c] of Object.entries(consumers ?? {})) {
    const keyHashes: Buffer[] = [];
    for (const key of c.keys) {
      const hash = sha256(key);
      const hex = hash.toString('hex');
      const other = owner.get(hex);
      if (other !== undefined && other !== name) throw new Error(`consumers "${other}" and "${name}" have the same API key`);
      if (other === name) continue;
      owner.set(hex, name);
      keyHashes.push(hash);
    }
    out.set(
      name,
      Object.freeze({
        name,
        keyHashes: Object.freeze(keyHashes),
        scopes: Object.freeze([...(c.scopes ?? [])]),
        roles: Object.freeze([...(c.roles ?? [])]),
        metadata: Object.freeze({ ...(c.metadata ?? {}) }),
      }),
    );
  }
  return out;
}

export function compileApiKey(name: string, cfg: ApiKeyPolicyConfig, deps: PolicyDeps): CompiledPolicy {
  let consumers: CompiledConsumer[];
  if (cfg.consumers !== undefined) {
    consumers = cfg.consumers.map((c) => {
      const found = deps.consumers.get(c);
      if (found === undefined) throw new Error(`policy "${name}": apiKey names consumer "${c}", which is not in consumers`);
      return found;
    });
  } else {
    consumers = [...deps.consumers.values()];
  }
  // one flat table: hash i belongs to owners[i]
  const hashes: Buffer[] = [];
  const owners: CompiledConsumer[] = [];
  for (const c of consumers) {
    for (const h of c.keyHashes) {
      hashes.push(h);
      owners.push(c);
    }
  }
  const n = hashes.length;
  const read = credentialReader(cfg.from, { header: 'x-api-key' });
  const optional = cfg.optional ?? false;
  const consumerHeader = cfg.forward?.consumer?.toLowerCase();

  return {
    name,
    kind: 'apiKey',
    phase: 'authn',
    identityHeaders: consumerHeader !== undefined ? [consumerHeader] : [],
    run(ctx) {
      const key = read(ctx);
      if (key === null) return optional ? null : apiKeyError('CW_AUTH_MISSING', 'an API key is required');
      const hash = sha256(key);
      let found = -1;
      // every hash is compared, whatever matched before
      for (let i = 0; i < n; i++) {
        if (timingSafeEqual(hash, hashes[i]!) && found < 0) found = i;
      }
      if (found < 0) return apiKeyError('CW_AUTH_BAD_KEY');
      const c = owners[found]!;
      const identity: Identity = { kind: 'consumer', subject: c.name, consumer: c.name, method: 'api-key', scopes: c.scopes, roles: c.roles, claims: c.metadata };
      ctx.identity = identity;
      if (consumerHeader !== undefined) addUpstreamHeader(ctx, consumerHeader, c.name);
      return null;
    },
  };
}

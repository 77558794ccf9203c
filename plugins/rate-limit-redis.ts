// The Redis connection behind shared rate limits: one ioredis client per URL, kept across reloads
// in SharedResources, configured to fail fast while Redis is away and to reconnect forever.
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { durationOr } from '../config/duration.ts';
import type { RedisConfig } from '../config/policy-model.ts';
import type { PolicyLogger, SharedResources } from './policy.ts';

export const DEFAULT_REDIS_TIMEOUT_MS = 100;
export const DEFAULT_KEY_PREFIX = 'causeway:';
/** Reconnect delay grows with each attempt up to this cap, and attempts never stop. */
export const MAX_RECONNECT_DELAY_MS = 1000;
const CONNECT_TIMEOUT_MS = 2000;

interface ClientInfo {
  /** host:port/db, without credentials: safe to log. */
  address: string;
  lastError: string | null;
}

const info = new WeakMap<Redis, ClientInfo>();

// ioredis is loaded on first use only: a gateway without Redis does not carry it (≈ 20 MB of
// resident memory per process).
const requireCjs = createRequire(import.meta.url);
let RedisClass: typeof Redis | null = null;
function redisClass(): typeof Redis {
  return (RedisClass ??= (requireCjs('ioredis') as typeof import('ioredis')).Redis);
}

/** The URL's host, port and database, never its user or password. */
export function redisAddress(url: string): string {
  try {
    const u = new URL(url);
    const db = u.pathname && u.pathname !== '/' ? u.pathname : '';
    return `${u.protocol}//${u.hostname}:${u.port || '6379'}${db}`;
  } catch {
    return '(invalid url)';
  }
}

/** The shared client for this Redis config (created on first use, closed with SharedResources). */
export function sharedRedis(shared: SharedResources, cfg: RedisConfig, log: PolicyLogger): Redis {
  const timeout = durationOr(cfg.timeout, DEFAULT_REDIS_TIMEOUT_MS);
  const client = shared.get(`redis:${cfg.url}`, () => {
    const c = new (redisClass())(cfg.url, {
      // Every command gets at most `timeout`; while disconnected, commands fail at once instead of
      // queueing, and commands in flight when the connection drops are failed, not replayed.
      commandTimeout: timeout,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: (attempt) => Math.min(50 * attempt, MAX_RECONNECT_DELAY_MS),
    });
    const ci: ClientInfo = { address: redisAddress(cfg.url), lastError: null };
    info.set(c, ci);
    let wasReady = false;
    c.on('error', (err: Error) => {
      ci.lastError = err.message;
    });
    c.on('ready', () => {
      wasReady = true;
      ci.lastError = null;
      log.info({ redis: ci.address }, 'redis connected');
    });
    c.on('close', () => {
      if (wasReady) log.warn({ redis: ci.address, error: ci.lastError }, 'redis connection lost; reconnecting');
      wasReady = false;
    });
    return {
      value: c,
      close: async () => {
        try {
          await c.quit();
        } catch {
          c.disconnect();
        }
      },
    };
  });
  // The timeout is read per command: a reload that changes it applies to the shared client.
  client.options.commandTimeout = timeout;
  return client;
}

/** What to log about a client's state when the store fails. */
export function redisState(client: Redis): { redis: string; redisStatus: string; redisError: string | null } {
  const ci = info.get(client);
  return { redis: ci?.address ?? '?', redisStatus: client.status, redisError: ci?.lastError ?? null };
}

// The gateway process: the edge listener, the admin listener, snapshot swaps and draining.
import { EventEmitter } from 'node:events';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { pino } from 'pino';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { compile } from '../config/compile.ts';
import { ConfigError, formatIssues, type ConfigIssue } from '../config/issues.ts';
import { loadConfig } from '../config/load.ts';
import { EndpointRegistry, UpstreamClient } from '../mesh/upstream.ts';
import { registerAdminRoutes } from './admin.ts';
import { handleRequest, makeRuntime, type GatewaySnapshot, type Runtime } from './proxy.ts';
import { SharedResources } from '../plugins/policy.ts';
import { compilePolicySet, type PolicySet } from '../plugins/registry.ts';
import { handleUpgrade } from './websocket.ts';

export interface GatewayOptions {
  /** Config file or directory. */
  config: string;
  /** Watch the config files and reload on change (default true). */
  watch?: boolean;
  /** Environment for ${VAR} interpolation (default process.env). */
  env?: Record<string, string | undefined>;
  /** A pino logger, or the level for a new one writing JSON to stdout ('silent' for none). Default info. */
  logger?: FastifyBaseLogger | string;
}

export type ReloadResult =
  | { ok: true; version: string; changed: boolean; restartNeeded: string[] }
  | { ok: false; issues: ConfigIssue[]; message: string };

/** Emits 'reload' with each ReloadResult. */
export class Gateway extends EventEmitter {
  readonly options: GatewayOptions;
  readonly registry: EndpointRegistry;
  /** Policy resources that outlive a reload (JWKS caches, Redis connections). */
  readonly shared: SharedResources;
  readonly log: FastifyBaseLogger;
  private runtime: Runtime;
  private readonly app: FastifyInstance;
  private readonly admin: FastifyInstance;
  private readonly inflight = new Set<ServerResponse>();
  private draining = false;
  private closed = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private watchers: FSWatcher[] = [];
  private watchTimer: NodeJS.Timeout | null = null;
  reloadFailures = 0;
  reloads = 0;
  /** Unhandled rejections and uncaught exceptions in this process (set by cli/gateway.ts). */
  processErrors = { unhandledRejections: 0, uncaughtExceptions: 0 };

  private constructor(options: GatewayOptions, runtime: Runtime, registry: EndpointRegistry, shared: SharedResources, logger: FastifyBaseLogger) {
    super();
    this.options = options;
    this.runtime = runtime;
    this.registry = registry;
    this.shared = shared;
    const g = runtime.snapshot.gateway;
    const listener = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.app = Fastify({
      // Fastify's own lines ("Server listening at" for every interface) are noise next to ours.
      loggerInstance: quieter(logger, 'edge'),
      forceCloseConnections: 'idle',
      // Fastify owns the lifecycle (listen, close, logging); the snapshot is the router, so
      // the server's only handler is the gateway's own.
      serverFactory: () => {
        const server: Server = g.tls
          ? createHttpsServer({ cert: readTlsFile(g.tls.cert, 'gateway.tls.cert'), key: readTlsFile(g.tls.key, 'gateway.tls.key') }, listener)
          : createHttpServer(listener);
        server.on('upgrade', (req, socket, head) => handleUpgrade(req, socket, head, this.runtime, this.log));
        return server;
      },
    });
    this.log = logger;
    // Admin requests (probes every few seconds) are not worth a log line each: warnings and up.
    this.admin = Fastify({ loggerInstance: quieter(logger, 'admin') });
    registerAdminRoutes(this.admin, this);
  }

  /** Load, validate and compile the config, then listen on both ports. Throws ConfigError. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    const logger =
      typeof options.logger === 'object' ? options.logger : (pino({ level: options.logger ?? 'info' }) as FastifyBaseLogger);
    const registry = new EndpointRegistry();
    const shared = new SharedResources();
    const runtime = await Gateway.build(options, registry, shared, logger);
    if (!('snapshot' in runtime)) {
      await shared.close();
      throw new ConfigError(runtime);
    }
    const snapshot = runtime.snapshot;
    const gw = new Gateway(options, runtime, registry, shared, logger);
    let field = 'gateway.listen';
    try {
      await gw.app.listen({ host: snapshot.gateway.host, port: snapshot.gateway.port });
      field = 'admin.listen';
      await gw.admin.listen({ host: snapshot.admin.host, port: snapshot.admin.port });
    } catch (err) {
      await gw.close();
      const e = err as NodeJS.ErrnoException;
      const where = field === 'gateway.listen' ? snapshot.gateway : snapshot.admin;
      const why = e.code === 'EADDRINUSE' ? 'the address is already in use' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EADDRNOTAVAIL' ? 'the address is not available on this machine' : e.message;
      throw Object.assign(new Error(`cannot listen on ${where.host}:${where.port} (${field}): ${why}`), { code: 'CW_LISTEN_FAILED', cause: err });
    }
    if (options.watch !== false) gw.watchFiles();
    gw.log.info(
      { version: snapshot.version, routes: snapshot.routes.length, address: gw.address(), admin: gw.adminAddress() },
      `causeway gateway listening on ${gw.url()} (admin ${gw.adminUrl()})`,
    );
    return gw;
  }

  private static async build(
    options: GatewayOptions,
    registry: EndpointRegistry,
    shared: SharedResources,
    log: FastifyBaseLogger,
  ): Promise<Runtime | ConfigIssue[]> {
    const loaded = await loadConfig(options.config, options.env);
    if (!loaded.ok) return loaded.issues;
    const snapshot = compile(loaded.model, loaded.sources, (spec) => new UpstreamClient(spec, registry));
    let policies: PolicySet | null = null;
    if (loaded.model.policies !== undefined && Object.keys(loaded.model.policies).length > 0) {
      try {
        policies = await compilePolicySet(loaded.model, { shared, log });
      } catch (err) {
        return [{ path: 'policies', message: `the policies could not be set up: ${(err as Error).message}` }];
      }
    }
    return makeRuntime(snapshot, policies);
  }

  /** The running policies (null when the config declares none). */
  get policies(): PolicySet | null {
    return this.runtime.policies;
  }

  get snapshot(): GatewaySnapshot {
    return this.runtime.snapshot;
  }

  get ready(): boolean {
    return !this.draining && !this.closed;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  address(): AddressInfo {
    return this.app.server.address() as AddressInfo;
  }

  adminAddress(): AddressInfo {
    return this.admin.server.address() as AddressInfo;
  }

  url(): string {
    const a = this.address();
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.snapshot.gateway.tls ? 'https' : 'http'}://${host}:${a.port}`;
  }

  adminUrl(): string {
    const a = this.adminAddress();
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const inflight = this.inflight;
    inflight.add(res);
    // While draining, answer what is in flight and then close the connection.
    if (this.draining) res.shouldKeepAlive = false;
    handleRequest(req, res, this.runtime, {
      done: () => inflight.delete(res),
      policyError: (err, route, requestId) => this.log.error({ err, route, requestId, code: 'CW_POLICY_ERROR' }, 'a policy failed'),
    });
  }

  /**
   * Load the config again and swap the new snapshot in. In-flight requests finish on the
   * snapshot they started with. An invalid config changes nothing.
   */
  reload(reason: string): Promise<ReloadResult> {
    const run = this.reloadChain.then(async () => {
      const result = await this.doReload(reason);
      this.emit('reload', result);
      return result;
    });
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async doReload(reason: string): Promise<ReloadResult> {
    if (this.closed) return { ok: false, issues: [], message: 'the gateway is shutting down' };
    let built: Runtime | ConfigIssue[];
    try {
      built = await Gateway.build(this.options, this.registry, this.shared, this.log);
    } catch (err) {
      built = [{ path: '', message: `config could not be compiled: ${(err as Error).message}` }];
    }
    if (!('snapshot' in built)) {
      const next = built;
      this.reloadFailures++;
      const message = formatIssues(next);
      this.log.error({ reason, code: 'CW_CONFIG_INVALID', issues: next }, `config reload rejected; still serving version ${this.snapshot.version}:\n${message}`);
      return { ok: false, issues: next, message };
    }
    const next = built.snapshot;
    const prev = this.snapshot;
    if (next.version === prev.version) {
      this.log.info({ reason, version: prev.version }, 'config unchanged');
      return { ok: true, version: prev.version, changed: false, restartNeeded: [] };
    }
    const restartNeeded = listenerChanges(prev, next);
    this.runtime = built;
    this.reloads++;
    this.log.info(
      { reason, version: next.version, previous: prev.version, routes: next.routes.length, restartNeeded },
      restartNeeded.length > 0
        ? `config ${next.version} loaded; ${restartNeeded.join(', ')} changed and takes effect after a restart`
        : `config ${next.version} loaded`,
    );
    void this.registry.retain(poolsInUse(next));
    return { ok: true, version: next.version, changed: true, restartNeeded };
  }

  private watchFiles(): void {
    const target = resolve(this.options.config);
    // A directory target is watched whole (files may be added or removed); a file target is
    // watched through its directory, since editors often replace a file rather than write it.
    let isDir = false;
    try {
      isDir = statSync(target).isDirectory();
    } catch {
      // gone for now: watch its directory for it to come back
    }
    const dirs = new Map<string, Set<string> | null>([isDir ? [target, null] : [dirname(target), new Set([basename(target)])]]);
    for (const [dir, names] of dirs) {
      try {
        const w = watch(dir, (_event, file) => {
          const name = file?.toString() ?? '';
          if (names !== null && !names.has(name)) return;
          if (names === null && !/\.(ya?ml|json)$/.test(name)) return;
          this.scheduleFileReload();
        });
        w.on('error', (err) => this.log.warn({ err, dir }, 'config watch failed; SIGHUP and POST /reload still work'));
        this.watchers.push(w);
      } catch (err) {
        this.log.warn({ err, dir }, 'cannot watch the config; SIGHUP and POST /reload still work');
      }
    }
  }

  private scheduleFileReload(): void {
    if (this.watchTimer) clearTimeout(this.watchTimer);
    // Editors write a file in several steps: wait until it settles.
    this.watchTimer = setTimeout(() => {
      this.watchTimer = null;
      void this.reload('file change');
    }, 150);
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish up to the drain
   * deadline, then close what is left.
   */
  async shutdown(): Promise<{ drained: boolean }> {
    if (this.closed) return { drained: true };
    this.draining = true;
    const deadline = this.snapshot.gateway.drainTimeoutMs;
    this.log.info({ inflight: this.inflight.size, drainTimeoutMs: deadline }, 'draining');
    for (const res of this.inflight) if (!res.headersSent) res.shouldKeepAlive = false;
    let drained = true;
    const timer = setTimeout(() => {
      drained = false;
      this.log.warn({ inflight: this.inflight.size }, 'drain deadline passed; closing remaining connections');
      this.app.server.closeAllConnections();
    }, deadline);
    timer.unref();
    await this.close();
    clearTimeout(timer);
    this.log.info({ drained }, 'stopped');
    return { drained };
  }

  /** Stop listening and release everything (no drain deadline: see shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    this.draining = true;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    // The admin listener stays up while the edge drains, so /readyz can say "not ready".
    await this.app.close();
    await this.admin.close();
    await this.registry.close();
    await this.shared.close();
  }
}

/** A child logger for a Fastify instance that only passes on warnings and errors. */
function quieter(log: FastifyBaseLogger, listener: string): FastifyBaseLogger {
  return log.child({ listener }, { level: log.level === 'silent' ? 'silent' : 'warn' }) as FastifyBaseLogger;
}

function readTlsFile(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`cannot read ${field} ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`), {
      code: 'CW_TLS_FILE',
    });
  }
}

function listenerChanges(prev: GatewaySnapshot, next: GatewaySnapshot): string[] {
  const out: string[] = [];
  const a = prev.gateway;
  const b = next.gateway;
  if (a.host !== b.host || a.port !== b.port) out.push('gateway.listen');
  if (JSON.stringify(a.tls) !== JSON.stringify(b.tls)) out.push('gateway.tls');
  if (prev.admin.host !== next.admin.host || prev.admin.port !== next.admin.port) out.push('admin.listen');
  return out;
}

/** Pool keys each endpoint needs under a snapshot, so the registry closes the rest. */
function poolsInUse(s: GatewaySnapshot): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>();
  for (const route of s.routes) {
    for (const b of route.backends) {
      for (const e of b.upstream.endpoints) {
        let keys = used.get(e.state.origin);
        if (!keys) used.set(e.state.origin, (keys = new Set()));
        keys.add(`${b.timeouts.connectMs}/${b.spec.connections}`);
      }
    }
  }
  return used;
}

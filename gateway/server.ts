// The gateway process: the edge listener, the admin listener, snapshot swaps and draining.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { statSync, watch, type FSWatcher } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer, type Http2Session } from 'node:http2';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { basename, dirname, resolve } from 'node:path';
import { pino } from 'pino';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { compile, type GatewaySettings, type ListenerSpec, type TlsSpec } from '../config/compile.ts';
import { normaliseHost } from '../config/routes.ts';
import { ConfigError, formatIssues, type ConfigIssue } from '../config/issues.ts';
import { loadConfig } from '../config/load.ts';
import { EndpointRegistry, poolKey, UpstreamClient } from '../mesh/upstream.ts';
import { registerAdminRoutes } from './admin.ts';
import { AccessLogWriter, type AccessRecord, type LineSink } from './access-log.ts';
import { rawErrorResponse, sendError } from './errors.ts';
import { Metrics } from '../plugins/metrics.ts';
import { LiveStats, type RawStats } from './stats.ts';
import { otlpExporterFor, type OtlpExporter } from '../plugins/otlp.ts';
import { closeAfter, handleRequest, hostHeader, isH2, makeRuntime, type GatewaySnapshot, type ProxyHooks, type RequestInfo, type Runtime } from './proxy.ts';
import { TlsFileError, TlsListener, type CertificateInfo } from './tls.ts';
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
  /**
   * Set in a cluster worker (gateway/cluster.ts): its number, and the admin listener then binds
   * 127.0.0.1 on a port of its own for the primary to ask (the config's admin.listen is the
   * primary's).
   */
  worker?: number;
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
  private readonly edges: EdgeListener[];
  private readonly admin: FastifyInstance;
  private readonly inflight = new Set<ServerResponse>();
  private draining = false;
  private closed = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private watchers: FSWatcher[] = [];
  private watchTimer: NodeJS.Timeout | null = null;
  reloadFailures = 0;
  reloads = 0;
  readonly metrics: Metrics;
  /** Per-route, per-backend live stats for the admin API (gateway/stats.ts). Survive reloads. */
  readonly stats = new LiveStats();
  private readonly accessLog: FastifyBaseLogger;
  /** The hand-built access line writer, when the gateway made its own logger (else pino's child). */
  private readonly accessWriter: AccessLogWriter | null;
  /** The logger passes info lines (access lines are info). */
  private readonly accessLevelOn: boolean;
  /** Span export (telemetry.otlp), null when off. */
  private otlp: OtlpExporter | null;
  /** Unhandled rejections and uncaught exceptions in this process (set by cli/gateway.ts). */
  processErrors = { unhandledRejections: 0, uncaughtExceptions: 0 };

  private constructor(options: GatewayOptions, runtime: Runtime, registry: EndpointRegistry, shared: SharedResources, logger: FastifyBaseLogger, sink: LineSink | null) {
    super();
    this.options = options;
    this.runtime = runtime;
    this.registry = registry;
    this.shared = shared;
    this.accessLog = logger.child({ log: 'access' }) as FastifyBaseLogger;
    // With its own logger (pino, made in start) the gateway writes access lines itself.
    const access = this.accessLog as unknown as Record<symbol, unknown> & { isLevelEnabled(level: string): boolean };
    this.accessWriter = sink === null ? null : new AccessLogWriter(sink, String(access[pino.symbols.chindingsSym] ?? ''));
    this.accessLevelOn = sink === null || access.isLevelEnabled('info');
    this.otlp = otlpExporterFor(runtime.snapshot.model, null, logger);
    this.metrics = new Metrics('gateway', {
      configVersion: () => this.snapshot.version,
      reloads: () => ({ ok: this.reloads, failed: this.reloadFailures }),
      rateLimit: () => {
        const out: Array<{ policy: string; allowed: number; limited: number; storeFailures: number }> = [];
        for (const p of this.policies?.policies.values() ?? []) {
          const stats = (p as { stats?: { allowed: number; limited: number; storeFailures: number } }).stats;
          if (p.kind === 'rateLimit' && stats) out.push({ policy: p.name, allowed: stats.allowed, limited: stats.limited, storeFailures: stats.storeFailures });
        }
        return out;
      },
      otlp: () => this.otlp?.counts ?? null,
      certificates: () =>
        this.listenerInfo().flatMap((l) =>
          l.certificates.map((c) => ({ listener: l.name, subject: c.subject, notAfter: Date.parse(c.notAfter) })),
        ),
      retries: () =>
        [...this.snapshot.upstreams.values()].map(({ spec, upstream }) => ({
          upstream: spec.name,
          retries: upstream.stats.retries,
          budgetExhausted: upstream.stats.budgetExhausted,
        })),
      connectionsDropped: () => this.edges.map((l) => ({ listener: l.spec.name, dropped: l.dropped })),
      endpoints: () => {
        const now = Date.now();
        return [...this.snapshot.upstreams.values()].flatMap(({ spec, upstream }) =>
          upstream.endpoints.map((e) => ({
            upstream: spec.name,
            endpoint: e.spec.origin,
            ejected: e.state.ejectedUntil > now,
            connectFailures: e.state.connectFailures,
          })),
        );
      },
    });
    this.log = logger;
    const made: EdgeListener[] = [];
    try {
      for (const spec of runtime.snapshot.gateway.listeners) made.push(this.makeListener(spec, logger));
    } catch (err) {
      for (const l of made) l.tls?.close();
      throw err;
    }
    this.edges = made;
    // Admin requests (probes every few seconds) are not worth a log line each: warnings and up.
    this.admin = Fastify({ loggerInstance: quieter(logger, 'admin') });
    registerAdminRoutes(this.admin, this);
  }

  /** Load, validate and compile the config, then listen on both ports. Throws ConfigError. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    // Logs are written asynchronously (pino's destination flushes what is pending at exit), so
    // the access log never blocks the request path on a write to stdout.
    const sink = typeof options.logger === 'object' ? null : pino.destination({ dest: 1, sync: false });
    const logger = sink === null ? (options.logger as FastifyBaseLogger) : (pino({ level: (options.logger as string | undefined) ?? 'info' }, sink) as FastifyBaseLogger);
    const registry = new EndpointRegistry();
    const shared = new SharedResources();
    const runtime = await Gateway.build(options, registry, shared, logger);
    if (!('snapshot' in runtime)) {
      await shared.close();
      throw new ConfigError(runtime);
    }
    const snapshot = runtime.snapshot;
    let gw: Gateway;
    try {
      gw = new Gateway(options, runtime, registry, shared, logger, sink);
    } catch (err) {
      await registry.close();
      await shared.close();
      throw err;
    }
    let field = 'admin.listen';
    let where: { host: string; port: number } = snapshot.admin;
    try {
      for (const l of gw.edges) {
        field = l.spec.field;
        where = l.spec;
        await l.app.listen({ host: l.spec.host, port: l.spec.port });
        l.tls?.attach(l.app.server as unknown as Parameters<TlsListener['attach']>[0]);
      }
      field = 'admin.listen';
      where = snapshot.admin;
      if (options.worker === undefined) await gw.admin.listen({ host: snapshot.admin.host, port: snapshot.admin.port });
      // exclusive: not a cluster-shared handle, so each worker has its own port.
      else await gw.admin.listen({ host: '127.0.0.1', port: 0, exclusive: true });
    } catch (err) {
      await gw.close();
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EADDRINUSE' ? 'the address is already in use' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EADDRNOTAVAIL' ? 'the address is not available on this machine' : e.message;
      throw Object.assign(new Error(`cannot listen on ${where.host}:${where.port} (${field}): ${why}`), { code: 'CW_LISTEN_FAILED', cause: err });
    }
    if (options.watch !== false) gw.watchFiles();
    gw.warnInsecure(snapshot);
    const urls = gw.edges.map((_, i) => gw.url(i)).join(', ');
    gw.log.info(
      { version: snapshot.version, routes: snapshot.routes.length, address: gw.address(), admin: gw.adminAddress(), listeners: gw.edges.map((l, i) => ({ name: l.spec.name, url: gw.url(i), http2: l.spec.http2 !== null })) },
      options.worker === undefined ? `causeway gateway listening on ${urls} (admin ${gw.adminUrl()})` : `causeway worker ${options.worker} listening on ${urls}`,
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
    let snapshot: GatewaySnapshot;
    try {
      snapshot = compile(loaded.model, loaded.sources, (spec) => new UpstreamClient(spec, registry));
    } catch (err) {
      if ((err as { code?: string }).code !== 'CW_TLS_FILE') throw err;
      return [{ path: 'upstreams', message: (err as Error).message }];
    }
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

  /** This process's raw, mergeable live stats (gateway/stats.ts mergeRawStats, statsView). */
  rawStats(now = Date.now()): RawStats {
    return this.stats.raw(now);
  }

  get ready(): boolean {
    return !this.draining && !this.closed;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** The address of a listener (default: the first). */
  address(listener = 0): AddressInfo {
    return this.edges[listener]!.app.server.address() as AddressInfo;
  }

  /** Each listener as the admin API shows it: address, TLS, HTTP/2, certificates (with notAfter). */
  listenerInfo(): Array<{ name: string; url: string; tls: boolean; http2: boolean; certificates: CertificateInfo[] }> {
    return this.edges.map((l, i) => ({
      name: l.spec.name,
      url: this.url(i),
      tls: l.tls !== null,
      http2: l.spec.http2 !== null,
      certificates: l.tls?.certificates() ?? [],
    }));
  }

  adminAddress(): AddressInfo {
    return this.admin.server.address() as AddressInfo;
  }

  url(listener = 0): string {
    const a = this.address(listener);
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.edges[listener]!.tls ? 'https' : 'http'}://${host}:${a.port}`;
  }

  adminUrl(): string {
    const a = this.adminAddress();
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  private makeListener(spec: ListenerSpec, logger: FastifyBaseLogger): EdgeListener {
    const tls = spec.tls ? new TlsListener(spec.tls, logger, spec.name) : null;
    const l: EdgeListener = { spec, index: spec.index, tls, app: null as unknown as FastifyInstance, dropped: 0 };
    if (tls) tls.onReload = (r) => this.emit('certificates', { listener: spec.name, ok: r.ok, errors: r.errors.map((e) => e.message) });
    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(l, req, res);
    l.app = Fastify({
      // Fastify's own lines ("Server listening at" for every interface) are noise next to ours.
      loggerInstance: quieter(logger, spec.name),
      forceCloseConnections: 'idle',
      // Fastify owns the lifecycle (listen, close, logging); the snapshot is the router, so
      // the server's only handler is the gateway's own.
      serverFactory: () => {
        let server: Server;
        if (tls && spec.http2) {
          const h2 = createSecureServer(
            {
              ...tls.serverOptions(),
              allowHTTP1: true,
              settings: {
                maxConcurrentStreams: spec.http2.maxConcurrentStreams,
                maxHeaderListSize: spec.http2.maxHeaderListSize,
                maxFrameSize: spec.http2.maxFrameSize,
                enablePush: false,
              },
            },
            handler as never,
          );
          trackConnections(h2);
          server = h2 as unknown as Server;
        } else if (tls) {
          server = createHttpsServer({ ...tls.serverOptions(), ...clientLimits(this.runtime.snapshot.gateway) }, handler);
        } else {
          server = createHttpServer(clientLimits(this.runtime.snapshot.gateway), handler);
        }
        // A client must finish its request head in time (node checks every connectionsCheckingInterval).
        const g = this.runtime.snapshot.gateway;
        const headersMs = g.headersTimeoutMs;
        if (headersMs > 0 && 'headersTimeout' in server) {
          server.headersTimeout = headersMs;
          // Node's own whole-request timeout never fires before the gateway's body timeouts.
          server.requestTimeout = g.bodyTimeoutMs > 0 ? headersMs + g.bodyTimeoutMs : 0;
        }
        // Beyond maxConnections, node closes a new connection as soon as it is accepted.
        server.maxConnections = spec.maxConnections;
        server.on('drop', () => l.dropped++);
        // One header more than allowed is kept, so the handler can tell "too many" (431) from
        // "exactly the limit"; node would otherwise drop headers past 2000 silently.
        if ('maxHeadersCount' in server) server.maxHeadersCount = g.maxHeaders + 1;
        // WebSocket upgrades are HTTP/1.1 (also on an HTTP/2 listener, over an http/1.1 connection).
        server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
          const current = this.runtime.snapshot.gateway.listeners[spec.index] ?? spec;
          if (current.redirectToHttps !== null) {
            // Upgrades are not proxied in plain text on a listener that only redirects.
            socket.on('error', () => socket.destroy());
            const location = httpsLocation(req, current.redirectToHttps.port);
            socket.end(
              location === null
                ? rawErrorResponse(400, 'CW_BAD_HOST', 'the request has no valid host to redirect to', randomUUID(), this.runtime.requestIdHeader)
                : `HTTP/1.1 308 Permanent Redirect\r\nlocation: ${location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
            );
            return;
          }
          handleUpgrade(req, socket, head, this.runtime, this.log, spec.index);
        });
        return server;
      },
    });
    return l;
  }

  /** Metrics and the access log line for a finished request. */
  private requestDone(req: IncomingMessage, res: ServerResponse, info: RequestInfo): void {
    const now = performance.now();
    const cl = req.headers['content-length'];
    const requestBytes = cl === undefined ? 0 : Number(cl) || 0;
    const status = res.headersSent ? res.statusCode : 0;
    this.stats.record(info.route, info.backend, status, now - info.started, performance.timeOrigin + now);
    this.metrics.observe({
      route: info.route,
      backend: info.backend,
      method: req.method ?? 'GET',
      status,
      seconds: (now - info.started) / 1000,
      requestBytes,
      responseBytes: info.responseBytes,
    });
    if (info.code !== '' && info.backend === '' && info.route !== '') this.metrics.policyDenied(info.route, info.code);
    const otlp = this.otlp;
    if (otlp !== null && info.trace !== null && otlp.wants(info.trace.traceId, info.trace.flags)) this.exportSpan(otlp, req, info, status, now);
    const access = this.runtime.snapshot.gateway.accessLog;
    if (!access.enabled || !this.accessLevelOn) return;
    // Sampling keeps every error line and a share of the successful ones.
    if (access.sample < 1 && status >= 200 && status < 400 && Math.random() >= access.sample) return;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const record: AccessRecord = {
      requestId: info.requestId,
      traceId: info.traceId || undefined,
      method: req.method,
      host: hostHeader(req),
      path: q === -1 ? url : url.slice(0, q),
      route: info.route || undefined,
      backend: info.backend || undefined,
      status,
      code: info.code || undefined,
      ms: Math.round((now - info.started) * 1000) / 1000,
      upstreamMs: info.upstreamStart === 0 ? undefined : Math.round(((info.upstreamEnd || now) - info.upstreamStart) * 1000) / 1000,
      attempts: info.attempts > 1 ? info.attempts : undefined,
      requestBytes,
      responseBytes: info.responseBytes,
      clientIp: info.clientIp || req.socket.remoteAddress,
      subject: info.subject || undefined,
    };
    if (this.accessWriter !== null) this.accessWriter.write(record);
    else this.accessLog.info(record);
  }

  /** One server span for telemetry.otlp (only called when export is on and the trace sampled). */
  private exportSpan(otlp: OtlpExporter, req: IncomingMessage, info: RequestInfo, status: number, now: number): void {
    const t = info.trace!;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    otlp.add({
      traceId: t.traceId,
      spanId: t.spanId,
      parentSpanId: t.parentId,
      startMs: performance.timeOrigin + info.started,
      endMs: performance.timeOrigin + now,
      method: req.method ?? 'GET',
      path: q === -1 ? url : url.slice(0, q),
      host: hostHeader(req) ?? '',
      route: info.route,
      backend: info.backend,
      status,
      code: info.code,
      clientIp: info.clientIp,
      requestId: info.requestId,
      upstreamMs: info.upstreamStart === 0 ? -1 : (info.upstreamEnd || now) - info.upstreamStart,
    });
  }

  private onRequest(l: EdgeListener, req: IncomingMessage, res: ServerResponse): void {
    const inflight = this.inflight;
    inflight.add(res);
    // While draining, answer what is in flight and then close the connection.
    if (this.draining) closeAfter(res);
    const rt = this.runtime;
    // Settings not bound to the socket follow reloads; a listener the new config lacks keeps its own.
    const spec = rt.snapshot.gateway.listeners[l.index] ?? l.spec;
    if (spec.redirectToHttps !== null && !req.url?.startsWith('/.well-known/acme-challenge/')) {
      res.once('close', () => inflight.delete(res));
      redirectToHttps(req, res, spec.redirectToHttps.port, rt.requestIdHeader);
      return;
    }
    if (spec.hsts !== null && l.tls !== null) res.setHeader('strict-transport-security', spec.hsts);
    handleRequest(req, res, rt, this.hooks, l.index);
  }

  /** One set of request hooks for every request (no closures made per request). */
  private readonly hooks: ProxyHooks = {
    done: (req, res, info) => {
      this.inflight.delete(res);
      this.requestDone(req, res, info);
    },
    policyError: (err, route, requestId) => this.log.error({ err, route, requestId, code: 'CW_POLICY_ERROR' }, 'a policy failed'),
  };

  /** Log every upstream that skips certificate checks, on every load. */
  private warnInsecure(s: GatewaySnapshot): void {
    for (const { spec } of s.upstreams.values()) {
      if (spec.tls?.insecureSkipVerify) {
        this.log.warn(
          { upstream: spec.name, code: 'CW_TLS_INSECURE' },
          `upstreams.${spec.name}.tls.insecureSkipVerify is on: the certificates of its endpoints are NOT verified; anyone on the path can read and change this traffic`,
        );
      }
    }
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

  /** A rejected reload: counted, logged with every issue; the running snapshot stays. */
  private rejected(reason: string, issues: ConfigIssue[]): ReloadResult {
    this.reloadFailures++;
    const message = formatIssues(issues);
    this.log.error({ reason, code: 'CW_CONFIG_INVALID', issues }, `config reload rejected; still serving version ${this.snapshot.version}:\n${message}`);
    return { ok: false, issues, message };
  }

  private async doReload(reason: string): Promise<ReloadResult> {
    if (this.closed) return { ok: false, issues: [], message: 'the gateway is shutting down' };
    let built: Runtime | ConfigIssue[];
    try {
      built = await Gateway.build(this.options, this.registry, this.shared, this.log);
    } catch (err) {
      built = [{ path: '', message: `config could not be compiled: ${(err as Error).message}` }];
    }
    if (!('snapshot' in built)) return this.rejected(reason, built);
    const next = built.snapshot;
    const prev = this.snapshot;
    if (next.version === prev.version) {
      this.log.info({ reason, version: prev.version }, 'config unchanged');
      // A reload (SIGHUP, POST /reload) also reads renewed certificate files.
      for (const l of this.edges) l.tls?.reloadFromDisk();
      return { ok: true, version: prev.version, changed: false, restartNeeded: [] };
    }
    const restartNeeded = listenerChanges(prev, next);
    // Certificates of a listener whose other TLS settings are unchanged are swapped in now:
    // all of them load, or the reload is rejected.
    const swaps: Array<[TlsListener, TlsSpec]> = [];
    for (const l of this.edges) {
      const a = prev.gateway.listeners[l.index]?.tls;
      const b = next.gateway.listeners[l.index]?.tls;
      if (!l.tls || !a || !b || JSON.stringify(a.certificates) === JSON.stringify(b.certificates)) continue;
      if (restartNeeded.includes(l.spec.field) || restartNeeded.includes(b.field)) continue;
      try {
        TlsListener.prepare(b);
      } catch (err) {
        return this.rejected(reason, [{ path: err instanceof TlsFileError ? err.field : b.field, message: (err as Error).message }]);
      }
      swaps.push([l.tls, b]);
    }
    for (const [tls, spec] of swaps) tls.replace(spec);
    // Connection limits follow reloads (connections already open stay).
    for (const l of this.edges) l.app.server.maxConnections = next.gateway.listeners[l.index]?.maxConnections ?? l.spec.maxConnections;
    this.runtime = built;
    this.reloads++;
    this.stats.retain(next.routes);
    this.otlp = otlpExporterFor(next.model, this.otlp, this.log);
    this.log.info(
      { reason, version: next.version, previous: prev.version, routes: next.routes.length, restartNeeded },
      restartNeeded.length > 0
        ? `config ${next.version} loaded; ${restartNeeded.join(', ')} changed and takes effect after a restart`
        : `config ${next.version} loaded`,
    );
    this.warnInsecure(next);
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
    for (const res of this.inflight) if (!res.headersSent) closeAfter(res);
    let drained = true;
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      drained = false;
      this.log.warn({ inflight: this.inflight.size }, 'drain deadline passed; closing remaining connections');
      for (const l of this.edges) l.app.server.closeAllConnections();
    }, deadline);
    timer.unref();
    // Stop accepting, but keep open keep-alive connections for a short grace: a client that
    // sends its next request on one then gets an answer (with Connection: close) instead of a
    // reset, which is what lets a rolling restart under load lose nothing. Idle connections
    // still open after the grace are closed with the listener.
    for (const l of this.edges) stopAccepting(l.app.server);
    const grace = Math.min(DRAIN_IDLE_GRACE_MS, deadline);
    const since = performance.now();
    while (!late) {
      if (this.inflight.size === 0) {
        if (performance.now() - since >= grace) break;
        const open = await Promise.all(this.edges.map((l) => openConnections(l.app.server)));
        if (open.every((n) => n === 0)) break;
      }
      await delay(DRAIN_POLL_MS);
    }
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
    await Promise.all(
      this.edges.map(async (l) => {
        l.tls?.close();
        await l.app.close();
      }),
    );
    // Spans of the requests that just finished go out before the process ends.
    await this.otlp?.close();
    await this.admin.close();
    this.accessWriter?.close();
    await this.registry.close();
    await this.shared.close();
  }
}

const netServerClose = NetServer.prototype.close;

/** How long a draining gateway keeps idle keep-alive connections open (at most drainTimeout). */
const DRAIN_IDLE_GRACE_MS = 1000;
const DRAIN_POLL_MS = 20;

/** Close the listening socket only: open connections stay (http.Server#close would end the idle ones). */
function stopAccepting(server: Server): void {
  if (server.listening) netServerClose.call(server);
  (server as { drainSessions?: () => void }).drainSessions?.();
}

function openConnections(server: Server): Promise<number> {
  return new Promise((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n)));
}

/** A child logger for a Fastify instance that only passes on warnings and errors. */
function quieter(log: FastifyBaseLogger, listener: string): FastifyBaseLogger {
  return log.child({ listener }, { level: log.level === 'silent' ? 'silent' : 'warn' }) as FastifyBaseLogger;
}

interface EdgeListener {
  /** The settings the socket was opened with. */
  spec: ListenerSpec;
  index: number;
  app: FastifyInstance;
  tls: TlsListener | null;
  /** Connections closed at accept because the listener had maxConnections open. */
  dropped: number;
}

/**
 * Options of an HTTP/1.1 server: node checks headers and request timeouts every
 * connectionsCheckingInterval (30 s by default, which would let a slow client keep its connection
 * up to twice the timeout), so it is a quarter of the headers timeout, between 100 ms and 30 s.
 */
function clientLimits(g: GatewaySettings): { connectionsCheckingInterval: number } {
  const ms = g.headersTimeoutMs > 0 ? g.headersTimeoutMs / 4 : 30_000;
  return { connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.round(ms))) };
}

/** The https URL for the same host, path and query, or null without a usable host. */
function httpsLocation(req: IncomingMessage, port: number): string | null {
  const host = normaliseHost(hostHeader(req));
  const url = req.url ?? '';
  if (host === '' || !/^([a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])$/.test(host) || !url.startsWith('/')) return null;
  return `https://${host}${port === 443 ? '' : `:${port}`}${url}`;
}

/** 308 to the same host, path and query over https. */
function redirectToHttps(req: IncomingMessage, res: ServerResponse, port: number, requestIdHeader: string): void {
  const location = httpsLocation(req, port);
  if (location === null) {
    closeAfter(res);
    sendError(res, 400, 'CW_BAD_HOST', 'the request has no valid host to redirect to', randomUUID(), requestIdHeader);
    return;
  }
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) closeAfter(res);
  res.writeHead(308, { location, 'content-length': '0', 'cache-control': 'no-store' });
  res.end();
}

/**
 * An HTTP/2 server (with HTTP/1.1 fallback) gets what Fastify and the drain expect of an
 * http.Server: closeIdleConnections (GOAWAY to h2 sessions, idle HTTP/1.1 sockets closed) and
 * closeAllConnections.
 */
/** Idle HTTP/2 connections (no open stream, no traffic) are closed after this long. */
export const H2_IDLE_MS = 180_000;

function trackConnections(server: ReturnType<typeof createSecureServer>): void {
  const sessions = new Set<Http2Session>();
  const h1 = new Map<Socket, number>();
  let closing = false;
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (closing) session.close();
    // A connection with no stream open and no traffic for H2_IDLE_MS gets a GOAWAY. A silent
    // stream keeps it (the route's idle timeout bounds that); the timer re-arms when it closes.
    let open = 0;
    const idle = () => {
      if (open === 0) session.close();
    };
    session.on('timeout', idle);
    session.setTimeout(H2_IDLE_MS);
    session.on('stream', (stream: import('node:http2').ServerHttp2Stream) => {
      open++;
      stream.once('close', () => {
        open--;
        if (open === 0 && !session.closed && !session.destroyed) session.setTimeout(H2_IDLE_MS);
      });
    });
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return;
    h1.set(socket, 0);
    socket.once('close', () => h1.delete(socket));
  });
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (isH2(req)) return;
    const socket = req.socket;
    h1.set(socket, (h1.get(socket) ?? 0) + 1);
    if (closing) res.shouldKeepAlive = false;
    res.once('close', () => {
      const n = (h1.get(socket) ?? 1) - 1;
      if (h1.has(socket)) h1.set(socket, n);
      if (closing && n === 0) socket.destroySoon();
    });
  });
  const s = server as unknown as { closeIdleConnections(): void; closeAllConnections(): void; drainSessions(): void };
  // Drain: HTTP/2 sessions get their GOAWAY at once (streams in flight finish; the client opens
  // new ones elsewhere); HTTP/1.1 connections close after their next response.
  s.drainSessions = () => {
    closing = true;
    for (const session of sessions) session.close();
  };
  s.closeIdleConnections = () => {
    closing = true;
    for (const session of sessions) session.close();
    for (const [socket, n] of h1) if (n === 0) socket.destroy();
  };
  s.closeAllConnections = () => {
    closing = true;
    for (const session of sessions) session.destroy();
    for (const socket of h1.keys()) socket.destroy();
  };
}

function listenerChanges(prev: GatewaySnapshot, next: GatewaySnapshot): string[] {
  const out: string[] = [];
  const a = prev.gateway.listeners;
  const b = next.gateway.listeners;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    const field = (y ?? x)!.field;
    if (!x || !y || x.host !== y.host || x.port !== y.port) {
      out.push(field);
      continue;
    }
    if (JSON.stringify(x.http2) !== JSON.stringify(y.http2) || (x.tls === null) !== (y.tls === null)) {
      out.push(y.tls?.field ?? x.tls?.field ?? field);
      continue;
    }
    if (x.tls && y.tls) {
      // Everything but the certificates is bound to the server.
      const { certificates: _a, ...restA } = x.tls;
      const { certificates: _b, ...restB } = y.tls;
      if (JSON.stringify(restA) !== JSON.stringify(restB)) out.push(y.tls.field);
    }
  }
  if (prev.admin.host !== next.admin.host || prev.admin.port !== next.admin.port) out.push('admin.listen');
  if (prev.gateway.workers !== next.gateway.workers) out.push('gateway.workers');
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
        keys.add(poolKey(b.timeouts.connectMs, b.spec.connections, b.upstream.tls));
      }
    }
  }
  return used;
}

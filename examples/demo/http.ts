// Tiny node:http toolkit for the demo servers: a path router, JSON replies and bodies,
// a listening helper with graceful close, and a `main` runner with --port/--host flags.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export interface ServerOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Called with one access-log line per request; default silent. */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** The port actually bound. */
  port: number;
  /** Stop accepting connections and wait (at most a few seconds) for in-flight requests. */
  close(): Promise<void>;
}

/** An error that becomes a JSON reply: { error: code, message, details? }. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Array<{ field: string; problem: string }>,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Decoded values of :name segments in the route pattern. */
  params: Record<string, string>;
  query: URLSearchParams;
}

export type Handler = (ctx: RequestContext) => void | Promise<void>;

export interface RouteDef {
  method: string;
  /** Path pattern: literal segments and :name parameters, e.g. /users/:id. */
  path: string;
  handler: Handler;
}

interface CompiledRoute {
  method: string;
  segments: string[];
  handler: Handler;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body, null, 2) + '\n';
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(payload));
  res.end(payload);
}

const MAX_BODY_BYTES = 64 * 1024;

/** Read and parse a JSON request body; throws HttpError 415/413/400. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new HttpError(415, 'unsupported_media_type', 'Send the body as JSON with content-type: application/json.');
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    throw new HttpError(413, 'body_too_large', `The body may be at most ${MAX_BODY_BYTES} bytes.`, undefined, {
      connection: 'close',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(413, 'body_too_large', `The body may be at most ${MAX_BODY_BYTES} bytes.`, undefined, {
        connection: 'close',
      });
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'invalid_json', 'The request body is empty; expected a JSON object.');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, 'invalid_json', `The request body is not valid JSON: ${(err as Error).message}`);
  }
}

function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

/**
 * A request listener that dispatches to `routes`, answers unknown paths with 404 and known paths
 * with a wrong method with 405, stamps `x-served-by` on every response and turns HttpError into JSON.
 * HEAD is served by the GET handler (node:http drops the body).
 */
export function createApp(servedBy: string, routes: RouteDef[], log?: (line: string) => void) {
  const compiled: CompiledRoute[] = routes.map((r) => ({ method: r.method, segments: splitPath(r.path), handler: r.handler }));

  const match = (pathSegments: string[]) => {
    const found: Array<{ route: CompiledRoute; params: Record<string, string> }> = [];
    for (const route of compiled) {
      if (route.segments.length !== pathSegments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < route.segments.length; i++) {
        const want = route.segments[i]!;
        const got = pathSegments[i]!;
        if (want.startsWith(':')) params[want.slice(1)] = got;
        else if (want !== got) {
          ok = false;
          break;
        }
      }
      if (ok) found.push({ route, params });
    }
    return found;
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    res.setHeader('x-served-by', servedBy);
    if (log) {
      res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        log(`${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
      });
    }
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const rawPath = q === -1 ? url : url.slice(0, q);
      const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
      let segments: string[];
      try {
        segments = splitPath(rawPath).map((s) => decodeURIComponent(s));
      } catch {
        throw new HttpError(400, 'bad_path', 'The path is not valid percent-encoding.');
      }
      const candidates = match(segments);
      if (candidates.length === 0) {
        throw new HttpError(404, 'not_found', `Nothing here: ${rawPath}`);
      }
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      const hit = candidates.find((c) => c.route.method === method);
      if (!hit) {
        const allow = [...new Set(candidates.flatMap((c) => (c.route.method === 'GET' ? ['GET', 'HEAD'] : [c.route.method])))];
        throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${rawPath}.`, undefined, {
          allow: allow.join(', '),
        });
      }
      await hit.route.handler({ req, res, params: hit.params, query });
    } catch (err) {
      if (res.headersSent) {
        res.destroy(err as Error);
        return;
      }
      if (err instanceof HttpError) {
        const body: Record<string, unknown> = { error: err.code, message: err.message };
        if (err.details) body.details = err.details;
        sendJson(res, err.status, body, err.headers);
      } else {
        sendJson(res, 500, { error: 'internal', message: 'Something went wrong.' });
        log?.(`error: ${(err as Error).stack ?? String(err)}`);
      }
    }
  };
}

/** Listen with `app` and return the bound port and a graceful close. */
export function listen(
  app: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  { port = 0, host = '127.0.0.1' }: ServerOptions,
): Promise<RunningServer> {
  const server = createServer((req, res) => void app(req, res));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      const bound = (server.address() as AddressInfo).port;
      let closing: Promise<void> | undefined;
      resolve({
        port: bound,
        close() {
          closing ??= new Promise<void>((done) => {
            const force = setTimeout(() => server.closeAllConnections(), 5000);
            force.unref();
            server.close(() => {
              clearTimeout(force);
              done();
            });
            server.closeIdleConnections();
          });
          return closing;
        },
      });
    });
  });
}

/** True when `importMetaUrl` is the script node was started with (works compiled and under tsx). */
export function isMain(importMetaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(importMetaUrl));
  } catch {
    return false;
  }
}

/**
 * Run a demo server as a program: `--port N` (or env `portEnv`, or `defaultPort`) and `--host H`.
 * Prints "<name> listening on http://host:port"; SIGINT/SIGTERM close it and exit 0.
 */
export async function runMain(
  name: string,
  start: (opts: ServerOptions) => Promise<RunningServer>,
  defaultPort: number,
  portEnv: string,
): Promise<void> {
  let values: { port?: string; host?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`${name}: ${(err as Error).message}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(`usage: ${name} [--port N] [--host ADDRESS]   (default port $${portEnv} or ${defaultPort}, host 127.0.0.1)`);
    return;
  }
  const portText = values.port ?? process.env[portEnv] ?? String(defaultPort);
  const port = Number(portText);
  if (!/^[0-9]+$/.test(portText) || port > 65535) {
    console.error(`${name}: --port must be a number from 0 to 65535, got ${JSON.stringify(portText)}`);
    process.exit(2);
  }
  const host = values.host ?? '127.0.0.1';
  let server: RunningServer;
  try {
    server = await start({ port, host, log: (line) => console.log(line) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use` : e.message;
    console.error(`${name}: cannot listen: ${why}`);
    process.exit(1);
  }
  console.log(`${name} listening on http://${host.includes(':') ? `[${host}]` : host}:${server.port}`);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1); // second signal: do not wait
    stopping = true;
    console.log(`${name}: ${signal}, closing`);
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

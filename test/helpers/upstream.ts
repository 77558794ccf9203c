// Real HTTP upstreams for tests, on 127.0.0.1 and a free port, closed in t.teardown.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
}

export interface TestUpstream {
  name: string;
  port: number;
  url: string;
  server: Server;
  seen: SeenRequest[];
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** An upstream that answers every request with JSON describing what it received. */
export function echo(name: string): Handler {
  return (req, res, body) => {
    const payload = JSON.stringify({ upstream: name, method: req.method, url: req.url, headers: req.headers, body });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
    res.end(payload);
  };
}

export async function startUpstream(t: ExecutionContext, name: string, handler: Handler = echo(name)): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => closeServer(server));
  const port = (server.address() as AddressInfo).port;
  return { name, port, url: `http://127.0.0.1:${port}`, server, seen };
}

/** A server whose handler gets the raw request before the body is read (for streaming tests). */
export async function startRawUpstream(
  t: ExecutionContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ port: number; url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => closeServer(server));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, server };
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A port that nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

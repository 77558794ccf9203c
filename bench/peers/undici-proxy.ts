// The minimal Node proxy the benchmark compares Causeway with: node:http in front of one undici
// Pool, nothing else (no routing, no policies, no forwarding headers, no request id). It only
// does what any correct HTTP/1.1 proxy must: drop hop-by-hop headers both ways and stream
// bodies. Compiled with the rest of bench/ and run as
//   node dist/bench/peers/undici-proxy.js <listen-port> <upstream-url>
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';

const [portArg, upstreamArg] = process.argv.slice(2);
if (!portArg || !upstreamArg) {
  console.error('usage: undici-proxy <listen-port> <upstream-url>');
  process.exit(2);
}

const pool = new Pool(upstreamArg, { connections: 128, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect', 'host']);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP.has(name)) out[name] = value;
  }
  return out;
}

const server = createServer((req, res) => {
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  pool.stream(
    { method, path: req.url ?? '/', headers: forwardable(req.headers), body: hasBody ? req : null },
    ({ statusCode, headers }) => {
      for (const name in headers) {
        const value = headers[name];
        if (value !== undefined && !HOP.has(name)) res.setHeader(name, value);
      }
      res.statusCode = statusCode;
      return res;
    },
    (err) => {
      if (!err) return;
      if (!res.headersSent) {
        res.statusCode = 502;
        res.end('bad gateway\n');
      } else {
        res.destroy(err);
      }
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(portArg), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  void pool.close();
  setTimeout(() => process.exit(0), 200).unref();
});

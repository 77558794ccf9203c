// Bare Fastify + @fastify/http-proxy (reply-from on undici), the way its README sets it up,
// with logging off: the "framework proxy" the benchmark compares Causeway with.
//   node dist/bench/peers/fastify-proxy.js <listen-port> <upstream-url>
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const [portArg, upstreamArg] = process.argv.slice(2);
if (!portArg || !upstreamArg) {
  console.error('usage: fastify-proxy <listen-port> <upstream-url>');
  process.exit(2);
}

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
await app.register(proxy, { upstream: upstreamArg, prefix: '/', http2: false });
await app.listen({ port: Number(portArg), host: '127.0.0.1' });
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
});

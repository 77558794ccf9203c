// A large body in both directions streams through the gateway process without being
// buffered: its peak memory stays far below the size of what went through it.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { startGateway, tempDir, withTestListeners } from '../helpers/gateway.ts';
import { startCli } from '../helpers/process.ts';
import { startRawUpstream } from '../helpers/upstream.ts';

const MiB = 1024 * 1024;
const TOTAL = 512 * MiB;
const CHUNK = Buffer.alloc(256 * 1024, 'x');

function generate(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      sent += CHUNK.length;
      this.push(CHUNK);
    },
  });
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]);
  return kb / 1024;
}

test('a 512 MiB upload and a 512 MiB download stream through with bounded memory', async (t) => {
  const up = await startRawUpstream(t, (req, res) => {
    if (req.method === 'POST') {
      let received = 0;
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => res.end(JSON.stringify({ received })));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
    generate(TOTAL).pipe(res);
  });
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  await writeFile(file, JSON.stringify(withTestListeners({ upstreams: { big: { endpoints: [up.url] } }, routes: [{ name: 'big', upstream: 'big' }] })));
  const gw = startCli(t, ['gateway', '-c', file]);
  const ready = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  const port: number = ready.address.port;
  const baseline = peakRssMiB(gw.child.pid!);

  const upload = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/upload', method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    generate(TOTAL).pipe(req); // chunked: the gateway cannot know the size in advance
  });
  t.is(upload.status, 200);
  t.deepEqual(JSON.parse(upload.body), { received: TOTAL });

  const downloaded = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/download', agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  t.is(downloaded, TOTAL);

  const peak = peakRssMiB(gw.child.pid!);
  t.log(`gateway peak RSS ${peak.toFixed(0)} MiB (at start ${baseline.toFixed(0)} MiB) after moving ${(2 * TOTAL) / MiB} MiB`);
  t.true(peak - baseline < TOTAL / MiB / 4, `peak RSS grew by ${(peak - baseline).toFixed(0)} MiB`);
});

/** `size` bytes that differ for every id (and inside, so a misplaced piece shows). */
function pattern(id: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + id * 101 + (i >>> 9)) & 0xff;
  return b;
}

test('bodies arrive intact when clients read at different speeds over few shared upstream connections', async (t) => {
  // The upstream pool reads into one buffer per connection and reuses it while no client write
  // still holds a piece of it (mesh/h1.ts, chunksHeld). Slow clients stop reading until the
  // kernel's buffers towards them are full, so the gateway's writes to them queue while the
  // upstream keeps sending small pieces (Content-Length and chunked), through 2 connections.
  const ids = Array.from({ length: 8 }, (_, i) => i);
  const slow = (id: number) => id % 2 === 1;
  const bodies = new Map(ids.map((id) => [id, pattern(id, slow(id) ? 8 * MiB : 2 * MiB)]));
  /** Ids whose upstream write is waiting for drain now. */
  const blocked = new Set<number>();
  /** Ids whose whole body the upstream has written. */
  const done = new Set<number>();
  const up = await startRawUpstream(t, (req, res) => {
    const id = Number(req.url!.slice(1));
    const body = bodies.get(id)!;
    if (id % 4 < 2) res.writeHead(200, { 'content-length': body.length });
    else res.writeHead(200);
    const step = 1000 + id * 311;
    let i = 0;
    const more = (): void => {
      while (i < body.length) {
        const piece = body.subarray(i, Math.min(body.length, i + step));
        i += piece.length;
        if (!res.write(piece)) {
          // Backpressure all the way from the client: the gateway's writes to it are queued.
          blocked.add(id);
          return void res.once('drain', () => {
            blocked.delete(id);
            more();
          });
        }
      }
      res.end();
      done.add(id);
    };
    more();
  });
  const gw = await startGateway(t, { upstreams: { up: { endpoints: [up.url], connections: 2 } }, routes: [{ name: 'all', upstream: 'up' }] });
  const results = await Promise.all(
    ids.map(
      (id) =>
        new Promise<Buffer>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port: gw.port, path: `/${id}`, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('end', () => resolve(Buffer.concat(chunks)));
            res.on('error', reject);
            if (!slow(id)) return void res.on('data', (c: Buffer) => chunks.push(c));
            // A slow client takes a chunk only while the backpressure reaches the upstream.
            const wait = (): void => {
              if (blocked.has(id) || done.has(id)) res.resume();
              else setTimeout(wait, 1);
            };
            res.on('data', (c: Buffer) => {
              chunks.push(c);
              res.pause();
              wait();
            });
          });
          req.on('error', reject);
          req.end();
        }),
    ),
  );
  for (const id of ids) t.true(results[id]!.equals(bodies.get(id)!), `body ${id} intact (${results[id]!.length} bytes)`);
});

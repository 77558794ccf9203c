// A large body in both directions streams through the gateway process without being
// buffered: its peak memory stays far below the size of what went through it.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { tempDir, withTestListeners } from '../helpers/gateway.ts';
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

// Bounded load for fault tests: a fixed number of requests from a fixed number of concurrent
// clients, to 127.0.0.1 only, with every answer counted. Faults are injected at request counts
// (`at`), never at times, so a slow machine changes how long a test takes, not what it checks.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';

export interface LoadOptions {
  port: number;
  total: number;
  concurrency: number;
  /** The path of request i (default "/load/i"). */
  path?: (i: number) => string;
  method?: string;
  /** TLS: the CA to trust (servername "localhost"). */
  ca?: string;
  /** A new connection per request (default: keep-alive connections, one per client). */
  fresh?: boolean;
  /** Called (not awaited by the clients) when this many answers have come back. */
  at?: Record<number, () => unknown>;
  /** Stop once this settles (and after `total` requests at most): load that spans a fault. */
  until?: Promise<unknown>;
}

export interface Answer {
  i: number;
  path: string;
  status: number;
  /** The gateway's error code, when it answered with one. */
  code?: string;
  /** A transport error instead of an answer (ECONNRESET, …). */
  error?: string;
}

export interface LoadResult {
  answers: Answer[];
  /** Answers that are not 2xx, and transport errors. */
  failed: Answer[];
  /** Count by "status code" ("200", "503 CW_RATE_LIMIT_UNAVAILABLE", "error ECONNRESET"). */
  tally: Record<string, number>;
  /** What the `at` hooks returned (promises resolved). */
  hooks: Promise<unknown[]>;
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  const tls = o.ca !== undefined;
  const agent = o.fresh ? false : tls ? new HttpsAgent({ keepAlive: true, maxSockets: o.concurrency, ca: o.ca }) : new HttpAgent({ keepAlive: true, maxSockets: o.concurrency });
  const answers: Answer[] = [];
  const hookRuns: Promise<unknown>[] = [];
  let next = 0;
  let stop = false;
  void o.until?.then(
    () => (stop = true),
    () => (stop = true),
  );
  const one = (i: number): Promise<Answer> =>
    new Promise((resolve) => {
      const path = o.path ? o.path(i) : `/load/${i}`;
      const opts = { host: '127.0.0.1', port: o.port, path, method: o.method ?? 'GET', agent, headers: { host: 'localhost' }, ...(tls ? { ca: o.ca, servername: 'localhost' } : {}) };
      const req = (tls ? httpsRequest : httpRequest)(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ i, path, status: 0, error: e.code ?? e.message }));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let code: string | undefined;
          if (status >= 400) {
            try {
              code = JSON.parse(Buffer.concat(chunks).toString('utf8')).error?.code;
            } catch {
              code = undefined;
            }
          }
          resolve({ i, path, status, ...(code ? { code } : {}) });
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ i, path, status: 0, error: e.code ?? e.message }));
      req.end();
    });
  const client = async () => {
    while (next < o.total && !stop) {
      const a = await one(next++);
      answers.push(a);
      const hook = o.at?.[answers.length];
      if (hook) hookRuns.push(Promise.resolve().then(hook));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  if (agent) agent.destroy();
  const tally: Record<string, number> = {};
  for (const a of answers) {
    const key = a.error !== undefined ? `error ${a.error}` : a.code !== undefined ? `${a.status} ${a.code}` : String(a.status);
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return {
    answers,
    failed: answers.filter((a) => a.error !== undefined || a.status < 200 || a.status >= 300),
    tally,
    hooks: Promise.all(hookRuns),
  };
}

/** Resident memory of a process in bytes: the current size and the peak (VmHWM). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

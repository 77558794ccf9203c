// The two load tools: wrk for throughput at saturation (closed loop), and our own open-loop
// generator (bench/loadgen/loadgen.c, compiled at start) for latency at a fixed rate.
import { join } from 'node:path';
import { runCommand } from './procs.ts';

export interface WrkResult {
  rps: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
  transferPerSec: string;
}

export async function runWrk(
  wrk: string,
  url: string,
  opts: { seconds: number; connections: number; threads: number; headers: string[]; cpu?: number },
): Promise<WrkResult> {
  const args = [`-t${opts.threads}`, `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '5s'];
  for (const h of opts.headers) args.push('-H', h);
  args.push(url);
  const r = await runCommand(wrk, args, { cpu: opts.cpu, timeoutMs: (opts.seconds + 15) * 1000 });
  const out = r.stdout;
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (r.code !== 0 || !rps) throw new Error(`wrk failed (exit ${r.code}) on ${url}:\n${out}\n${r.stderr}`);
  const requests = /(\d+) requests in/.exec(out);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const transfer = /Transfer\/sec:\s+(\S+)/.exec(out);
  return {
    rps: Number(rps[1]),
    requests: requests ? Number(requests[1]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0,
    transferPerSec: transfer ? transfer[1]! : '',
  };
}

export interface LoadgenResult {
  rate: number;
  scheduled: number;
  sent: number;
  ok: number;
  errors: number;
  status_errors: number;
  conn_errors: number;
  timeouts: number;
  unsent: number;
  achieved_rps: number;
  mean_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}

/** Compiles the load generator with the system cc into dir; returns the binary's path. */
export async function buildLoadgen(cc: string, source: string, dir: string): Promise<string> {
  const out = join(dir, 'loadgen');
  const r = await runCommand(cc, ['-O2', '-Wall', '-o', out, source], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`compiling the load generator failed:\n${r.stdout}${r.stderr}`);
  return out;
}

export async function runLoadgen(
  bin: string,
  port: number,
  path: string,
  opts: { rate: number; seconds: number; warmup: number; connections: number; headers: string[]; cpu?: number },
): Promise<LoadgenResult> {
  const args = ['-a', '127.0.0.1', '-p', String(port), '-P', path, '-r', String(opts.rate), '-d', String(opts.seconds), '-w', String(opts.warmup), '-c', String(opts.connections), '-t', '5000'];
  for (const h of opts.headers) args.push('-H', h);
  const r = await runCommand(bin, args, { cpu: opts.cpu, timeoutMs: (opts.seconds + opts.warmup + 20) * 1000 });
  if (r.code !== 0) throw new Error(`load generator failed (exit ${r.code}) on port ${port}: ${r.stderr}`);
  return JSON.parse(r.stdout) as LoadgenResult;
}

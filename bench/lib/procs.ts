// Every process the benchmark starts goes through here, so that all of them can be stopped by
// PID at the end, on Ctrl-C, on SIGTERM and on any error.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';

export interface Managed {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  exited: boolean;
  exitCode: number | null;
  /** Resolves when the process has exited. */
  done: Promise<void>;
  /** Processes it started (nginx workers), found after start-up; stopped with it. */
  children: number[];
}

const live = new Map<number, Managed>();
let pinning: ((cpu: number) => string[]) | null = null;

/** `taskset -c N` prefix for spawned commands, or none when taskset is missing or pinning is off. */
export function setPinning(tasksetPath: string | null): void {
  pinning = tasksetPath ? (cpu: number) => [tasksetPath, '-c', String(cpu)] : null;
}

export function pinned(): boolean {
  return pinning !== null;
}

export interface StartOptions {
  cpu?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile: string;
}

/** Starts a long-running process (a proxy or the upstream) with stdout and stderr to a log file. */
export function startProcess(name: string, cmd: string, args: string[], opts: StartOptions): Managed {
  const argv = opts.cpu !== undefined && pinning ? [...pinning(opts.cpu), cmd, ...args] : [cmd, ...args];
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  let resolveDone!: () => void;
  const m: Managed = {
    name,
    pid: child.pid,
    child,
    logFile: opts.logFile,
    exited: false,
    exitCode: null,
    done: new Promise<void>((r) => (resolveDone = r)),
    children: [],
  };
  child.on('exit', (code) => {
    m.exited = true;
    m.exitCode = code;
    live.delete(m.pid);
    resolveDone();
  });
  child.on('error', () => {
    m.exited = true;
    live.delete(m.pid);
    resolveDone();
  });
  live.set(m.pid, m);
  return m;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived command (wrk, the load generator, cc) to completion, killed after timeoutMs. */
export function runCommand(cmd: string, args: string[], opts: { cpu?: number; timeoutMs: number; cwd?: string }): Promise<RunResult> {
  const argv = opts.cpu !== undefined && pinning ? [...pinning(opts.cpu), cmd, ...args] : [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const pid = child.pid;
    let m: Managed | undefined;
    if (pid !== undefined) {
      m = { name: cmd, pid, child, logFile: '', exited: false, exitCode: null, done: Promise.resolve(), children: [] };
      live.set(pid, m);
    }
    const timer = setTimeout(() => {
      if (pid !== undefined) kill(pid, 'SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      if (pid !== undefined) live.delete(pid);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (pid !== undefined) live.delete(pid);
      resolve({ code, stdout, stderr });
    });
  });
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct children of a process, from /proc. */
export function childPids(pid: number): number[] {
  const out = new Set<number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const f = `/proc/${pid}/task/${tid}/children`;
      if (!existsSync(f)) continue;
      for (const s of readFileSync(f, 'utf8').trim().split(/\s+/)) if (s) out.add(Number(s));
    }
    if (out.size > 0) return [...out];
  } catch {
    // fall through to the scan
  }
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) out.add(Number(d));
      } catch {
        // raced with an exit
      }
    }
  } catch {
    // no /proc
  }
  return [...out];
}

/** Peak (VmHWM) and current (VmRSS) resident set size in KiB, from /proc/<pid>/status. */
export function memoryOf(pid: number): { hwmKiB: number; rssKiB: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (!hwm || !rss) return null;
    return { hwmKiB: Number(hwm[1]), rssKiB: Number(rss[1]) };
  } catch {
    return null;
  }
}

let stopping: Promise<void> | null = null;

/** Stops every process still running: SIGTERM by PID, then SIGKILL after graceMs. */
export function stopAll(graceMs = 3000): Promise<void> {
  stopping ??= (async () => {
    const all = [...live.values()];
    for (const m of all) kill(m.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    await Promise.race([Promise.all(all.map((m) => m.done)), new Promise((r) => setTimeout(r, graceMs))]);
    for (const m of all) if (!m.exited && alive(m.pid)) kill(m.pid, 'SIGKILL');
    // Children (nginx workers) leave with their master; make sure of it.
    while (Date.now() < deadline + 500 && all.some((m) => m.children.some(alive))) await new Promise((r) => setTimeout(r, 50));
    for (const m of all) for (const c of m.children) if (alive(c)) kill(c, 'SIGKILL');
  })();
  return stopping;
}

/** Last resort on process exit: SIGKILL whatever is left, synchronously. */
function killAllNow(): void {
  for (const m of live.values()) {
    kill(m.pid, 'SIGKILL');
    for (const c of m.children) kill(c, 'SIGKILL');
  }
}

/** Installs the handlers that stop everything on Ctrl-C, SIGTERM, SIGHUP and uncaught errors. */
export function installCleanup(onInterrupt: (why: string) => void, afterStop: () => void): void {
  const finish = (code: number) => () => {
    try {
      afterStop();
    } finally {
      process.exit(code);
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      onInterrupt(sig);
      void stopAll().finally(finish(130));
    });
  }
  process.on('uncaughtException', (err) => {
    console.error('bench: uncaught error:', err);
    void stopAll().finally(finish(1));
  });
  process.on('unhandledRejection', (err) => {
    console.error('bench: unhandled rejection:', err);
    void stopAll().finally(finish(1));
  });
  process.on('exit', killAllNow);
}

/** A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function probe(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

/** Waits until GET path on the port answers 2xx; fails with the log's tail if the process exits or time runs out. */
export async function waitReady(m: Managed, port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    if (m.exited) throw new Error(`${m.name} exited (code ${m.exitCode}) before it was ready:\n${tail(m.logFile)}`);
    last = await probe(port, path, headers);
    if (last >= 200 && last < 300) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${m.name} not ready on port ${port} after ${timeoutMs} ms (last status ${last}):\n${tail(m.logFile)}`);
}

// Runs the demo's processes as children of one process: start them, wait until each accepts
// connections, pass their output on line by line, notice when one dies, and stop them all.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';

export interface PortCheck {
  host: string;
  port: number;
}

export interface ChildSpec {
  /** Short name used in prefixes and messages ("gateway"). */
  name: string;
  /** Executable, e.g. process.execPath. */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The child is ready when every one of these accepts TCP connections. */
  ports: PortCheck[];
  /** How long the child may take to become ready. Default 20s. */
  readyTimeoutMs?: number;
  /** After SIGTERM, how long to wait before SIGKILL. Default 5s. */
  stopTimeoutMs?: number;
}

export interface ChildFailure {
  name: string;
  /** "exited with code 1", "was killed by SIGKILL", "did not accept connections on 127.0.0.1:8080 within 20s", … */
  reason: string;
  /** Whether it had become ready before it failed. */
  wasReady: boolean;
  /** Its last lines of output (stderr and stdout interleaved as they came). */
  tail: string[];
}

export interface SupervisorOptions {
  /** Each line a child writes, without the newline. */
  onLine?: (name: string, stream: 'stdout' | 'stderr', line: string) => void;
  /** The supervisor's own notes ("gateway did not stop within 8s; sending SIGKILL"). */
  onNote?: (message: string) => void;
  /** Lines of output kept per child for failure reports. Default 20. */
  tailLines?: number;
  /** Delay between readiness probes. Default 100ms. */
  pollIntervalMs?: number;
}

interface Child {
  spec: ChildSpec;
  proc: ChildProcess;
  ready: boolean;
  tail: string[];
  /** Settles once the process has exited (or never started), with its stdio drained (bounded). */
  done: Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Where to connect to reach a listener bound to `host` (wildcards become loopback). */
export function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host.replace(/^\[(.*)\]$/, '$1');
}

/** Does something accept TCP connections at host:port? */
export function canConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: probeHost(host), port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** Can we bind host:port right now? False when another process holds it. */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export class Supervisor {
  private readonly children: Child[] = [];
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private failed = false;
  private resolveFailure!: (failure: ChildFailure) => void;
  private resolveStopping!: () => void;
  private readonly stoppingSignal = new Promise<void>((resolve) => (this.resolveStopping = resolve));

  /** Settles with the first failure: a child that exits, fails to spawn or is not ready in time while not being stopped. */
  readonly failure: Promise<ChildFailure> = new Promise((resolve) => (this.resolveFailure = resolve));

  constructor(private readonly options: SupervisorOptions = {}) {}

  /** Process ids of the children that are still running. */
  get pids(): number[] {
    return this.children.filter((c) => isRunning(c.proc)).map((c) => c.proc.pid!);
  }

  /**
   * Spawn every child, then wait until all are ready. Resolves when they are; rejects with the
   * first failure (also delivered through `failure`) or when `stop()` is called meanwhile.
   */
  async start(specs: ChildSpec[]): Promise<void> {
    if (this.stopping) throw new Error('supervisor is stopping');
    const started = specs.map((spec) => this.spawnChild(spec));
    const allReady = Promise.all(started.map((child) => this.waitReady(child)));
    const outcome = await Promise.race([
      allReady.then(() => 'ready' as const),
      this.failure.then(() => 'failed' as const),
      this.stoppingSignal.then(() => 'stopped' as const),
    ]);
    if (outcome === 'failed') throw new Error('a child failed while starting');
    if (outcome === 'stopped') throw new Error('stopped while starting');
  }

  /**
   * Stop every child, last started first: SIGTERM by pid, wait up to its stopTimeoutMs, then SIGKILL.
   * Safe to call more than once; later calls wait for the first.
   */
  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopping = true;
      this.resolveStopping();
      this.stopped = (async () => {
        for (const child of [...this.children].reverse()) await this.stopChild(child);
      })();
    }
    return this.stopped;
  }

  /** SIGKILL every child still running, synchronously (for process 'exit' handlers). */
  killAll(): void {
    this.stopping = true;
    for (const child of this.children) if (isRunning(child.proc)) child.proc.kill('SIGKILL');
  }

  private spawnChild(spec: ChildSpec): Child {
    const proc = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: a Ctrl-C in the terminal reaches only the supervising process, which
      // then sends each child exactly one SIGTERM (a child hit by both SIGINT and SIGTERM would
      // take the second signal as "stop now" and cut its drain short).
      detached: true,
    });
    const child: Child = { spec, proc, ready: false, tail: [], done: Promise.resolve() };
    const keep = this.options.tailLines ?? 20;
    const streamClosed: Array<Promise<void>> = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const input = proc[stream]!;
      const lines = createInterface({ input, crlfDelay: Infinity });
      streamClosed.push(new Promise((resolve) => lines.once('close', resolve)));
      lines.on('line', (line) => {
        child.tail.push(line);
        if (child.tail.length > keep) child.tail.shift();
        this.options.onLine?.(spec.name, stream, line);
      });
    }
    child.done = new Promise<void>((resolve) => {
      let settled = false;
      const finish = (reason: string) => {
        if (settled) return;
        settled = true;
        // Let the last lines (usually the reason it died) arrive before reporting; bounded, since a
        // grandchild could hold the pipes open.
        void Promise.race([Promise.all(streamClosed), sleep(500)]).then(() => {
          resolve();
          if (!this.stopping) this.fail(child, reason);
        });
      };
      proc.once('error', (err) => finish(`could not be started: ${err.message}`));
      proc.once('exit', (code, signal) => finish(code !== null ? `exited with code ${code}` : `was killed by ${signal}`));
    });
    this.children.push(child);
    return child;
  }

  private async waitReady(child: Child): Promise<void> {
    const { spec } = child;
    const timeout = spec.readyTimeoutMs ?? 20_000;
    const deadline = Date.now() + timeout;
    const interval = this.options.pollIntervalMs ?? 100;
    for (const { host, port } of spec.ports) {
      for (;;) {
        if (this.stopping || this.failed || !isRunning(child.proc)) return new Promise(() => {}); // the race is decided elsewhere
        if (await canConnect(host, port)) break;
        if (Date.now() >= deadline) {
          this.fail(child, `did not accept connections on ${probeHost(host)}:${port} within ${Math.round(timeout / 1000)}s`);
          return new Promise(() => {});
        }
        await sleep(interval);
      }
    }
    child.ready = true;
  }

  private fail(child: Child, reason: string): void {
    if (this.failed || this.stopping) return;
    this.failed = true;
    this.resolveFailure({ name: child.spec.name, reason, wasReady: child.ready, tail: [...child.tail] });
  }

  private async stopChild(child: Child): Promise<void> {
    if (!isRunning(child.proc)) return child.done;
    const { name, stopTimeoutMs = 5000 } = child.spec;
    child.proc.kill('SIGTERM');
    const exited = await Promise.race([child.done.then(() => true), sleep(stopTimeoutMs).then(() => false)]);
    if (exited) return;
    this.options.onNote?.(`${name} did not stop within ${stopTimeoutMs / 1000}s; sending SIGKILL`);
    child.proc.kill('SIGKILL');
    await child.done;
  }
}

function isRunning(proc: ChildProcess): boolean {
  return proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null;
}

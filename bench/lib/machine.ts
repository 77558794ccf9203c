// What is installed, and what machine this is: recorded with every result.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function which(bin: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** First line of a command's output (stdout or stderr), whatever its exit code. */
function versionLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return text.split('\n').find((l) => l.trim())?.trim() ?? 'unknown';
}

export interface Tools {
  nginx: string | null;
  haproxy: string | null;
  wrk: string | null;
  cc: string | null;
  taskset: string | null;
}

export function findTools(): Tools {
  return { nginx: which('nginx'), haproxy: which('haproxy'), wrk: which('wrk'), cc: which('cc'), taskset: which('taskset') };
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  nginx: string | null;
  haproxy: string | null;
  wrk: string | null;
  cc: string | null;
  taskset: boolean;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
  git: { commit: string; dirty: string[] };
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

function git(root: string): { commit: string; dirty: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => l.slice(3));
    return { commit, dirty };
  } catch {
    return { commit: 'unknown', dirty: [] };
  }
}

export function describeMachine(tools: Tools, root: string): Machine {
  return {
    cpuModel: cpuModel(),
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    nginx: tools.nginx ? versionLine(tools.nginx, ['-v']).replace(/^nginx version:\s*/, '') : null,
    haproxy: tools.haproxy ? versionLine(tools.haproxy, ['-v']).replace(/^HAProxy version\s*/, '').replace(/ - https?:.*$/, '') : null,
    wrk: tools.wrk ? versionLine(tools.wrk, ['-v']).replace(/^wrk\s*/, '').replace(/ Copyright.*$/, '') : null,
    cc: tools.cc ? versionLine(tools.cc, ['--version']) : null,
    taskset: tools.taskset !== null,
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    git: git(root),
  };
}

/** The causeway checkout this file is in (compiled or not): the nearest package.json named causeway. */
export function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'causeway') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the causeway checkout (package.json)');
    dir = up;
  }
}

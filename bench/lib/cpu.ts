// How much CPU other work took while the benchmark ran: all busy CPU time on the machine
// (/proc/stat) minus what the benchmark's own processes used (/proc/<pid>/stat, and the reaped
// wrk / load generator runs through this process's cutime and cstime). Linux only; null elsewhere.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc times (USER_HZ, 100 on Linux builds in practice). */
const HZ = 100;

function machineBusyTicks(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest is already in user)
    const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
    return busy;
  } catch {
    return null;
  }
}

/** utime + stime (+ cutime + cstime with children) of a process, in ticks. */
export function processTicks(pid: number | 'self', withChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    let t = Number(f[11]) + Number(f[12]);
    if (withChildren) t += Number(f[13]) + Number(f[14]);
    return t;
  } catch {
    return 0;
  }
}

export interface CpuMark {
  busy: number;
  self: number;
  at: number;
}

export function markCpu(): CpuMark | null {
  const busy = machineBusyTicks();
  return busy === null ? null : { busy, self: processTicks('self', true), at: Date.now() };
}

export interface OtherCpu {
  /** Seconds of the run. */
  wallSeconds: number;
  /** CPU seconds used on the machine by everything. */
  totalCpuSeconds: number;
  /** CPU seconds used by the benchmark's processes. */
  benchCpuSeconds: number;
  /** The rest: other work on the machine, in CPU seconds and as cores busy on average. */
  otherCpuSeconds: number;
  otherCores: number;
}

/** `benchTicks`: ticks of the long-running processes the benchmark started (read before stopping them). */
export function otherCpuSince(mark: CpuMark | null, benchTicks: number): OtherCpu | null {
  const busy = machineBusyTicks();
  if (!mark || busy === null) return null;
  const wall = (Date.now() - mark.at) / 1000;
  const total = (busy - mark.busy) / HZ;
  const bench = (processTicks('self', true) - mark.self + benchTicks) / HZ;
  const other = Math.max(0, total - bench);
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { wallSeconds: r(wall), totalCpuSeconds: r(total), benchCpuSeconds: r(bench), otherCpuSeconds: r(other), otherCores: Math.round((other / wall) * 100) / 100 };
}

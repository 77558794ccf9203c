// Makes a child's output readable in the demo terminal: pino JSON lines become
// "12:00:01.123 INFO  message key=value"; anything else passes through unchanged.

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

function clock(time: unknown): string | undefined {
  if (typeof time !== 'number' && typeof time !== 'string') return undefined;
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return undefined;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** One output line, made readable. Multi-line results (an error's stack) are joined with "\n". */
export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return line;
  const e = entry as Record<string, unknown>;
  if (typeof e.level !== 'number' && typeof e.level !== 'string') return line;

  const level = typeof e.level === 'number' ? (LEVELS[e.level] ?? `L${e.level}`) : e.level.toUpperCase();
  const parts: string[] = [];
  const at = clock(e.time);
  if (at) parts.push(at);
  parts.push(level.padEnd(5));
  if (typeof e.msg === 'string' && e.msg !== '') parts.push(e.msg);

  let stack: string | undefined;
  for (const [key, value] of Object.entries(e)) {
    if (HIDDEN.has(key) || value === undefined) continue;
    if (key === 'err' && typeof value === 'object' && value !== null) {
      const err = value as Record<string, unknown>;
      if (typeof err.message === 'string') parts.push(`err=${JSON.stringify(err.message)}`);
      if (typeof err.code === 'string') parts.push(`code=${err.code}`);
      if (typeof err.stack === 'string') stack = err.stack;
      continue;
    }
    parts.push(`${key}=${typeof value === 'string' && !/[\s"]/.test(value) ? value : JSON.stringify(value)}`);
  }
  const text = parts.join(' ');
  return stack ? `${text}\n${stack}` : text;
}

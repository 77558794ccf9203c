// Config issues: one problem in the user's config, with where it is and what is wrong.

export interface ConfigIssue {
  /** File the problem is in, as the user named it (a directory target gives "dir/file.yaml"). */
  file?: string;
  /** 1-based line and column in `file`. */
  line?: number;
  column?: number;
  /** Where in the merged config, in JS-ish notation: routes[3].match.path, upstreams.monolith.endpoints[0]. */
  path: string;
  message: string;
}

/** "dir/gw.yaml:12:7 routes[3].match.path: must start with \"/\"" */
export function formatIssue(i: ConfigIssue): string {
  let where = i.file ?? '';
  if (i.file !== undefined && i.line !== undefined) {
    where += `:${i.line}`;
    if (i.column !== undefined) where += `:${i.column}`;
  }
  if (where && i.path) return `${where} ${i.path}: ${i.message}`;
  if (where) return `${where}: ${i.message}`;
  if (i.path) return `${i.path}: ${i.message}`;
  return i.message;
}

/** One issue per line. */
export function formatIssues(issues: ConfigIssue[]): string {
  return issues.map(formatIssue).join('\n');
}

/** Thrown by callers that want an exception instead of a LoadResult. */
export class ConfigError extends Error {
  readonly code = 'CW_CONFIG_INVALID';
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(formatIssues(issues));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/**
 * Sorts issues by file (in the given order of files; issues without a file first), then line,
 * column and path, and drops exact duplicates.
 */
export function sortIssues(issues: ConfigIssue[], fileOrder: readonly string[] = []): ConfigIssue[] {
  const rank = (f: string | undefined) => {
    if (f === undefined) return -1;
    const i = fileOrder.indexOf(f);
    return i === -1 ? fileOrder.length : i;
  };
  const seen = new Set<string>();
  const unique = issues.filter((i) => {
    const key = `${i.file ?? ''}\0${i.line ?? ''}\0${i.column ?? ''}\0${i.path}\0${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort(
    (a, b) =>
      rank(a.file) - rank(b.file) ||
      cmp(a.file ?? '', b.file ?? '') ||
      (a.line ?? 0) - (b.line ?? 0) ||
      (a.column ?? 0) - (b.column ?? 0) ||
      cmp(a.path, b.path),
  );
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

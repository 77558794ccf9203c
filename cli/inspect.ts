// `causeway validate` and `causeway routes`: read a config without running anything.
import { compile, type Snapshot, type UpstreamSpec } from '../config/compile.ts';
import { formatIssues } from '../config/issues.ts';
import { loadConfig } from '../config/load.ts';
import { describeStringMatch, type TableEntry } from '../config/routes.ts';

async function load(path: string, json: boolean | undefined): Promise<Snapshot<UpstreamSpec> | null> {
  const loaded = await loadConfig(path);
  if (!loaded.ok) {
    if (json) console.log(JSON.stringify({ valid: false, issues: loaded.issues }, null, 2));
    else console.error(`${formatIssues(loaded.issues)}\n\n${loaded.issues.length} error${loaded.issues.length === 1 ? '' : 's'} in ${path}`);
    return null;
  }
  return compile(loaded.model, loaded.sources, (spec) => spec);
}

export async function runValidate(path: string, opts: { json?: boolean }): Promise<number> {
  const s = await load(path, opts.json);
  if (!s) return 1;
  const summary = {
    valid: true,
    version: s.version,
    sources: s.sources,
    routes: s.routes.length,
    upstreams: s.upstreams.size,
    endpoints: [...s.upstreams.values()].reduce((n, u) => n + u.spec.endpoints.length, 0),
  };
  if (opts.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(
      `${path}: valid (version ${s.version}): ${summary.routes} route${summary.routes === 1 ? '' : 's'}, ` +
        `${summary.upstreams} upstream${summary.upstreams === 1 ? '' : 's'} with ${summary.endpoints} endpoint${summary.endpoints === 1 ? '' : 's'}, ` +
        `from ${s.sources.length} file${s.sources.length === 1 ? '' : 's'}`,
    );
  }
  return 0;
}

export interface RouteRow {
  order: number;
  route: string;
  host: string;
  path: string;
  kind: string;
  conditions: string;
  backends: string;
  policies: string;
}

export function routeRows<
  R extends {
    name: string;
    backends: Array<{ spec: UpstreamSpec; weight: number }>;
    config: { match?: { headers?: Record<string, unknown>; query?: Record<string, unknown> }; policies?: string[]; useDefaultPolicies?: boolean };
  },
>(table: TableEntry<R>[], defaultPolicies: string[] = []): RouteRow[] {
  return table.map((e, i) => {
    const m = e.route.config.match;
    const cond: string[] = [];
    if (e.methods) cond.push(e.methods.join(','));
    for (const [k, v] of Object.entries(m?.headers ?? {})) cond.push(`${k.toLowerCase()}: ${describeStringMatch(v as never)}`);
    for (const [k, v] of Object.entries(m?.query ?? {})) cond.push(`?${k}=${describeStringMatch(v as never)}`);
    const total = e.route.backends.reduce((n, b) => n + b.weight, 0);
    return {
      order: i + 1,
      route: e.route.name,
      host: e.host.kind === 'any' ? '*' : e.host.kind === 'wildcard' ? `*${e.host.value}` : e.host.value,
      path: e.path.kind === 'prefix' ? (e.path.value === '/' ? '/*' : `${e.path.value}/*`) : e.path.kind === 'regex' ? `~/${e.path.value}/` : e.path.value,
      kind: e.path.kind,
      conditions: cond.join(' ') || '-',
      backends: e.route.backends
        .map((b) => (e.route.backends.length === 1 ? b.spec.name : `${b.spec.name} ${Math.round((b.weight / total) * 100)}%`))
        .join(', '),
      policies:
        [...new Set([...(e.route.config.useDefaultPolicies === false ? [] : defaultPolicies), ...(e.route.config.policies ?? [])])].join(',') ||
        '-',
    };
  });
}

export async function runRoutes(path: string, opts: { json?: boolean }): Promise<number> {
  const s = await load(path, opts.json);
  if (!s) return 1;
  const rows = routeRows(s.table, s.model.defaultPolicies);
  if (opts.json) {
    console.log(JSON.stringify(rows, null, 2));
    return 0;
  }
  const head: RouteRow = { order: 0, route: 'ROUTE', host: 'HOST', path: 'PATH', kind: 'MATCH', conditions: 'CONDITIONS', backends: 'BACKENDS', policies: 'POLICIES' };
  const cols: Array<keyof RouteRow> = ['route', 'host', 'path', 'kind', 'conditions', 'backends', 'policies'];
  const all = [head, ...rows];
  const width = (c: keyof RouteRow) => Math.max(...all.map((r) => String(r[c]).length));
  const widths = cols.map(width);
  const orderWidth = String(rows.length).length;
  for (const r of all) {
    const num = r === head ? '#'.padStart(orderWidth) : String(r.order).padStart(orderWidth);
    console.log(`${num}  ${cols.map((c, i) => String(r[c]).padEnd(widths[i]!)).join('  ')}`.trimEnd());
  }
  console.log(`\n${rows.length} entr${rows.length === 1 ? 'y' : 'ies'} in match order (first match wins; see docs/routing.md)`);
  return 0;
}

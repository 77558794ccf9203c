// Loading config: files or a directory → parse (YAML; JSON is read by the same parser) →
// ${ENV} interpolation → merge → validate. Every value keeps the file:line:column it came
// from, so every issue, also after merging, points at the right place.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { coerceScalar, interpolate, type Env } from './interpolate.ts';
import { sortIssues, type ConfigIssue } from './issues.ts';
import type { ConfigModel } from './model.ts';
import { TOP_LEVEL_FIELDS } from './schema-validator.generated.ts';
import { formatPath, shortLoc, SourceMap, type Loc, type Segment } from './source-map.ts';
import { toIssue, validateValue, type RawIssue } from './validate.ts';

export type LoadResult = { ok: true; model: ConfigModel; sources: string[] } | { ok: false; issues: ConfigIssue[] };

export interface ConfigText {
  /** Name used in issues; relative file paths in it (tls, keys) are resolved against its directory. */
  file: string;
  text: string;
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
const TOP_LEVEL: readonly string[] = TOP_LEVEL_FIELDS;
/**
 * Sections merged by name (the same name in two files is an issue), and what one entry is
 * called. gateway, admin, redis and telemetry are merged setting by setting instead.
 */
const BY_NAME: Record<string, string> = { upstreams: 'upstream', policies: 'policy', consumers: 'consumer' };
/** File paths inside a policy, by kind, resolved against the directory of the file that sets them. */
const POLICY_FILES: Record<string, readonly string[]> = {
  jwt: ['jwksFile', 'publicKeyFile'],
  identityToken: ['keyFile'],
};
const MAX_SYNTAX_ERRORS = 10;
/** Guards against alias bombs ("billion laughs"). */
const MAX_ALIAS_EXPANSIONS = 10_000;

/**
 * Loads a YAML or JSON file, or every *.yaml, *.yml and *.json file directly in a directory
 * (sorted by name, merged). Never throws for a problem in the config: it comes back as issues.
 * `sources` are the absolute paths of the files read.
 */
export async function loadConfig(target: string, env: Env = process.env): Promise<LoadResult> {
  let info;
  try {
    info = await stat(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' || code === 'ENOTDIR' ? 'file or directory does not exist' : `cannot read: ${(err as Error).message}`;
    return { ok: false, issues: [{ file: target, path: '', message }] };
  }

  let names: string[];
  if (info.isDirectory()) {
    let entries: string[];
    try {
      entries = await readdir(target);
    } catch (err) {
      return { ok: false, issues: [{ file: target, path: '', message: `cannot read directory: ${(err as Error).message}` }] };
    }
    names = [];
    for (const entry of entries.sort(compareNames)) {
      // Dot files are skipped (editor droppings; Kubernetes ConfigMap mounts keep ..data there).
      if (entry.startsWith('.') || !EXTENSIONS.has(path.extname(entry).toLowerCase())) continue;
      const full = path.join(target, entry);
      try {
        if ((await stat(full)).isFile()) names.push(full);
      } catch {
        // A dangling symlink: not a config file.
      }
    }
    if (names.length === 0) {
      return { ok: false, issues: [{ file: target, path: '', message: 'directory has no .yaml, .yml or .json files' }] };
    }
  } else {
    names = [target];
  }

  const files: ConfigText[] = [];
  const readIssues: ConfigIssue[] = [];
  for (const file of names) {
    try {
      files.push({ file, text: await readFile(file, 'utf8') });
    } catch (err) {
      readIssues.push({ file, path: '', message: `cannot read: ${(err as Error).message}` });
    }
  }
  if (readIssues.length > 0) {
    const parsed = loadConfigText(files, env);
    return { ok: false, issues: sortIssues([...readIssues, ...(parsed.ok ? [] : parsed.issues)], names) };
  }
  return loadConfigText(files, env);
}

/** A TLS value that is PEM text itself rather than a file name. */
export const isPemText = (v: string): boolean => v.trimStart().startsWith('-----BEGIN');

const compareNames = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The same as loadConfig for texts already in memory, merged in the order given. */
export function loadConfigText(files: ConfigText[], env: Env = process.env): LoadResult {
  const order = files.map((f) => f.file);
  const loader = new Loader(env);

  // Syntax first: with a file that does not parse, anything else would be guesswork.
  const docs: Array<{ file: string; doc: Document; lc: LineCounter }> = [];
  const syntax: ConfigIssue[] = [];
  for (const { file, text } of files) {
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
    // One error per line, at most MAX_SYNTAX_ERRORS a file: after the first mistake the parser
    // often reports every following token, which helps nobody.
    const lines = new Set<number>();
    let hidden = 0;
    for (const err of doc.errors) {
      const pos = lc.linePos(err.pos[0]);
      if (lines.has(pos.line)) continue;
      if (lines.size >= MAX_SYNTAX_ERRORS) {
        hidden++;
        continue;
      }
      lines.add(pos.line);
      syntax.push({ file, line: pos.line, column: pos.col, path: '', message: yamlMessage(err.message) });
    }
    if (hidden > 0) {
      const last = lc.linePos(text.length);
      syntax.push({ file, line: last.line, column: last.col, path: '', message: `and ${hidden} more YAML errors on later lines` });
    }
    docs.push({ file, doc, lc });
  }
  if (syntax.length > 0) return { ok: false, issues: sortIssues(syntax, order) };

  for (const d of docs) loader.addFile(d.file, d.doc, d.lc);
  const merged = loader.merged;
  const locate = (segs: readonly Segment[], kind?: 'key' | 'value') => loader.map.locate(segs, kind);
  const early = loader.issues.map((raw) => toIssue(raw, locate));
  const result = validateValue(merged, locate, [...loader.tainted]);
  const issues = [...early, ...(result.ok ? [] : result.issues)];
  if (issues.length > 0) return { ok: false, issues: sortIssues(issues, order) };
  return { ok: true, model: merged as ConfigModel, sources: files.map((f) => path.resolve(f.file)) };
}

/** yaml's messages without the " at line 3, column 5" tail (the issue carries the position). */
function yamlMessage(message: string): string {
  return message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}

function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function describeNode(node: unknown): string {
  if (isSeq(node)) return 'a list';
  if (isMap(node)) return 'an object';
  if (isScalar(node)) return node.value === null ? 'nothing' : `a ${typeof node.value}`;
  return 'nothing';
}

/** Walks yaml documents into one merged plain value, recording where every value came from. */
class Loader {
  readonly map = new SourceMap();
  readonly merged: Record<string, unknown> = {};
  readonly issues: RawIssue[] = [];
  /** Paths whose value is already known to be wrong (bad ${...}); nothing more is said there. */
  readonly tainted = new Set<string>();
  private routeCount = 0;
  private file = '';
  private lc = new LineCounter();
  private doc: Document | undefined;
  private aliasStack = new Set<Node>();
  private aliasCount = 0;

  constructor(private readonly env: Env) {}

  private loc(node: { range?: readonly number[] | null } | null | undefined): Loc | undefined {
    const offset = node?.range?.[0];
    if (offset === undefined) return undefined;
    const p = this.lc.linePos(offset);
    return { file: this.file, line: p.line, column: p.col };
  }

  private issue(segs: Segment[], message: string, at?: Loc, kind?: 'key'): void {
    const raw: RawIssue = { segs, message };
    if (kind) raw.kind = kind;
    if (at) raw.at = at;
    this.issues.push(raw);
  }

  private resolve(node: unknown): unknown {
    if (isAlias(node) && this.doc) return node.resolve(this.doc) ?? null;
    return node;
  }

  addFile(file: string, doc: Document, lc: LineCounter): void {
    this.file = file;
    this.lc = lc;
    this.doc = doc;
    this.aliasCount = 0;
    const fileStart: Loc = { file, line: 1, column: 1 };
    this.map.root ??= fileStart;
    const root = this.resolve(doc.contents);
    if (root === null || root === undefined || (isScalar(root) && root.value === null)) return; // empty file
    if (!isMap(root)) {
      this.issue([], `the top level must be an object with ${TOP_LEVEL.join(', ')}`, this.loc(root as Node) ?? fileStart);
      return;
    }
    for (const pair of root.items) {
      const keyNode = pair.key as Node | null;
      const key = this.keyOf(keyNode, []);
      if (key === undefined) continue;
      const keyLoc = this.loc(keyNode) ?? fileStart;
      const valueNode = this.resolve(pair.value) as Node | null;
      const valueLoc = this.loc(valueNode) ?? keyLoc;
      const empty = valueNode === null || (isScalar(valueNode) && valueNode.value === null);
      switch (key) {
        case '$schema':
          break;
        case 'gateway':
        case 'admin':
        case 'redis':
        case 'telemetry':
        case 'upstreams':
        case 'policies':
        case 'consumers': {
          if (empty) break; // "gateway:" with everything commented out
          if (!isMap(valueNode)) {
            // Not merged, so nothing else is said about it.
            this.issue([key], `expected an object, got ${describeNode(valueNode)}`, valueLoc);
            break;
          }
          if (!Object.hasOwn(this.merged, key)) {
            this.map.setValue([key], valueLoc);
            this.map.setKey([key], keyLoc);
            setOwn(this.merged, key, {});
          }
          const target = this.merged[key];
          if (!target || typeof target !== 'object' || Array.isArray(target)) break;
          for (const inner of valueNode.items) {
            const innerKeyNode = inner.key as Node | null;
            const name = this.keyOf(innerKeyNode, [key]);
            if (name === undefined) continue;
            const segs = [key, name];
            const innerKeyLoc = this.loc(innerKeyNode) ?? keyLoc;
            if (Object.hasOwn(target, name)) {
              const first = shortLoc(this.map.keys.get(formatPath(segs)) ?? this.map.values.get(formatPath(segs)));
              const here = `${file}:${innerKeyLoc.line}`;
              const entry = BY_NAME[key];
              const message = entry
                ? `${entry} "${name}" is defined in both ${first} and ${here}`
                : `${key}.${name} is set in both ${first} and ${here}; each setting may appear in one file only`;
              this.issue(segs, message, innerKeyLoc, 'key');
              continue;
            }
            this.map.setKey(segs, innerKeyLoc);
            const value = this.walk(inner.value as Node | null, segs, innerKeyLoc);
            setOwn(target as Record<string, unknown>, name, value);
            if (key === 'gateway' && name === 'tls') this.resolveTlsFiles(value);
            if (key === 'gateway' && name === 'listeners' && Array.isArray(value)) {
              for (const l of value) if (l && typeof l === 'object') this.resolveTlsFiles((l as Record<string, unknown>).tls);
            }
            if (key === 'upstreams' && value && typeof value === 'object') {
              this.resolveFiles((value as Record<string, unknown>).tls, ['ca', 'cert', 'key']);
            }
            if (key === 'policies') this.resolvePolicyFiles(value);
          }
          break;
        }
        case 'defaultPolicies': {
          if (empty) break;
          if (Object.hasOwn(this.merged, key)) {
            const first = shortLoc(this.map.keys.get(key));
            this.issue(
              [key],
              `defaultPolicies is set in both ${first} and ${file}:${keyLoc.line}; set it in one file only`,
              keyLoc,
              'key',
            );
            break;
          }
          this.map.setKey([key], keyLoc);
          setOwn(this.merged, key, this.walk(valueNode, [key], keyLoc));
          break;
        }
        case 'routes': {
          if (empty) break;
          if (!isSeq(valueNode)) {
            this.issue(['routes'], `expected a list, got ${describeNode(valueNode)}`, valueLoc);
            break;
          }
          if (!Object.hasOwn(this.merged, 'routes')) {
            this.map.setValue(['routes'], valueLoc);
            this.map.setKey(['routes'], keyLoc);
            setOwn(this.merged, 'routes', []);
          }
          const list = this.merged.routes as unknown[];
          for (const item of valueNode.items) {
            const segs = ['routes', this.routeCount++];
            list.push(this.walk(item as Node | null, segs, valueLoc));
          }
          break;
        }
        default: {
          // Unknown top-level field: let the schema say so (once per name).
          if (Object.hasOwn(this.merged, key)) {
            this.issue([key], `unknown field "${key}" (allowed: ${TOP_LEVEL.join(', ')})`, keyLoc, 'key');
            break;
          }
          this.map.setKey([key], keyLoc);
          setOwn(this.merged, key, this.walk(valueNode, [key], keyLoc));
        }
      }
    }
  }

  /**
   * Relative file paths (`fields` of `obj`) become absolute, against the declaring file's
   * directory: certificate, key, chain and CA files of TLS settings (not inline PEM text), a
   * jwt policy's jwksFile and publicKeyFile, an identityToken policy's keyFile.
   */
  private resolveFiles(obj: unknown, fields: readonly string[]): void {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return;
    const dir = path.dirname(path.resolve(this.file));
    for (const k of fields) {
      const v = (obj as Record<string, unknown>)[k];
      if (typeof v === 'string' && v !== '' && !isPemText(v)) (obj as Record<string, unknown>)[k] = path.resolve(dir, v);
    }
  }

  /** A listener's tls: its certificate files, those of each of its certificates, the client CA. */
  private resolveTlsFiles(tls: unknown): void {
    if (!tls || typeof tls !== 'object' || Array.isArray(tls)) return;
    const t = tls as Record<string, unknown>;
    this.resolveFiles(t, ['cert', 'key', 'chain']);
    if (Array.isArray(t.certificates)) for (const c of t.certificates) this.resolveFiles(c, ['cert', 'key', 'chain']);
    this.resolveFiles(t.clientAuth, ['ca']);
  }

  private resolvePolicyFiles(policy: unknown): void {
    if (!policy || typeof policy !== 'object' || Array.isArray(policy)) return;
    for (const [kind, fields] of Object.entries(POLICY_FILES)) {
      if (Object.hasOwn(policy, kind)) this.resolveFiles((policy as Record<string, unknown>)[kind], fields);
    }
  }

  private keyOf(keyNode: Node | null, parent: Segment[]): string | undefined {
    const k = this.resolve(keyNode);
    if (isScalar(k)) return k.value === null || k.value === undefined ? '' : String(k.value);
    this.issue(parent, 'keys must be plain strings, not lists or objects', this.loc(keyNode));
    return undefined;
  }

  /** Converts a node to a plain value, interpolating strings and recording locations. */
  private walk(raw: Node | null | undefined, segs: Segment[], fallback?: Loc): unknown {
    const loc = this.loc(raw) ?? fallback;
    if (loc) this.map.setValue(segs, loc);
    if (raw === null || raw === undefined) return null;
    if (isAlias(raw)) {
      const target = this.resolve(raw) as Node | null;
      if (!target) return null;
      if (this.aliasStack.has(target)) {
        this.issue(segs, `alias *${raw.source} refers to a value that contains it`, loc);
        return null;
      }
      if (++this.aliasCount > MAX_ALIAS_EXPANSIONS) {
        if (this.aliasCount === MAX_ALIAS_EXPANSIONS + 1) {
          this.issue(segs, `more than ${MAX_ALIAS_EXPANSIONS} alias expansions in one file; not following more`, loc);
        }
        return null;
      }
      this.aliasStack.add(target);
      try {
        const value = this.walk(target, segs, loc);
        if (loc) this.map.setValue(segs, loc);
        return value;
      } finally {
        this.aliasStack.delete(target);
      }
    }
    if (isScalar(raw)) {
      const value = raw.value;
      if (typeof value !== 'string') return typeof value === 'bigint' ? Number(value) : (value ?? null);
      const r = interpolate(value, this.env);
      if (r.errors.length > 0) {
        for (const e of r.errors) this.issue(segs, e, loc);
        this.tainted.add(formatPath(segs));
        return r.value;
      }
      if (r.whole && raw.type === 'PLAIN') return coerceScalar(r.value);
      return r.value;
    }
    if (isSeq(raw)) {
      return raw.items.map((item, i) => this.walk(item as Node | null, [...segs, i], loc));
    }
    if (isMap(raw)) {
      const obj: Record<string, unknown> = {};
      for (const pair of raw.items) {
        if (!isPair(pair)) continue;
        const keyNode = pair.key as Node | null;
        const key = this.keyOf(keyNode, segs);
        if (key === undefined) continue;
        const keyLoc = this.loc(keyNode) ?? loc;
        const childSegs = [...segs, key];
        if (keyLoc) this.map.setKey(childSegs, keyLoc);
        setOwn(obj, key, this.walk(pair.value as Node | null, childSegs, keyLoc));
      }
      return obj;
    }
    return null;
  }
}

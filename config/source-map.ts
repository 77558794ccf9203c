// Where each value of the merged config came from: a map from its path to file:line:column.

export type Segment = string | number;

export interface Loc {
  file: string;
  line: number;
  column: number;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** JS-ish path: routes[3].match.path, upstreams.monolith.endpoints[0], match.headers["x-id"]. */
export function formatPath(segs: readonly Segment[]): string {
  let out = '';
  for (const s of segs) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENT.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** "file:line" for use inside messages. */
export function shortLoc(loc: Loc | undefined): string | undefined {
  return loc ? `${loc.file}:${loc.line}` : undefined;
}

export class SourceMap {
  /** Location of each value (for a mapping or sequence: where it starts). */
  readonly values = new Map<string, Loc>();
  /** Location of the key of each mapping entry. */
  readonly keys = new Map<string, Loc>();
  /** Where to point when nothing better is known (the first file). */
  root: Loc | undefined;

  setValue(segs: readonly Segment[], loc: Loc): void {
    this.values.set(formatPath(segs), loc);
  }

  setKey(segs: readonly Segment[], loc: Loc): void {
    this.keys.set(formatPath(segs), loc);
  }

  /**
   * The location for a path: its key (kind 'key', when it has one) or its value; otherwise the
   * nearest ancestor that has one.
   */
  locate(segs: readonly Segment[], kind: 'key' | 'value' = 'value'): Loc | undefined {
    for (let n = segs.length; n >= 0; n--) {
      const p = formatPath(segs.slice(0, n));
      const loc =
        n === segs.length && kind === 'key'
          ? (this.keys.get(p) ?? this.values.get(p))
          : (this.values.get(p) ?? this.keys.get(p));
      if (loc) return loc;
    }
    return this.root;
  }
}

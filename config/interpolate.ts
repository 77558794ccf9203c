// ${VAR} and ${VAR:-default} in config strings.
//
//   ${NAME}          the variable's value; an unset variable is an error
//   ${NAME:-text}    the variable's value, or `text` when it is unset or empty (as in sh)
//   $${              a literal "${"
//
// NAME is [A-Za-z_][A-Za-z0-9_]*. The default runs to the first "}" and is not interpolated.

export type Env = Record<string, string | undefined>;

export interface Interpolated {
  value: string;
  /** Human messages, one per bad reference. */
  errors: string[];
  /** The whole text was one valid ${...} reference (so the caller may coerce the result). */
  whole: boolean;
}

const REF = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

export function interpolate(text: string, env: Env): Interpolated {
  if (!text.includes('${')) return { value: text, errors: [], whole: false };
  const errors: string[] = [];
  let out = '';
  let whole = false;
  let i = 0;
  while (i < text.length) {
    const j = text.indexOf('$', i);
    if (j === -1) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, j);
    if (text.startsWith('$${', j)) {
      out += '${';
      i = j + 3;
      continue;
    }
    if (text[j + 1] !== '{') {
      out += '$';
      i = j + 1;
      continue;
    }
    const close = text.indexOf('}', j + 2);
    if (close === -1) {
      errors.push(`unterminated "\${" (write "$\${" for a literal "\${")`);
      out += text.slice(j);
      break;
    }
    const body = text.slice(j + 2, close);
    const m = REF.exec(body);
    if (!m) {
      errors.push(
        `invalid variable reference "\${${body}}": use \${NAME} or \${NAME:-default}, NAME made of letters, digits and "_", not starting with a digit`,
      );
      out += text.slice(j, close + 1);
      i = close + 1;
      continue;
    }
    const name = m[1]!;
    const fallback = m[2];
    const value = env[name];
    if (value === undefined || (fallback !== undefined && value === '')) {
      if (fallback !== undefined) out += fallback;
      else errors.push(`environment variable ${name} is not set`);
    } else {
      out += value;
    }
    if (j === 0 && close === text.length - 1) whole = true;
    i = close + 1;
  }
  return { value: out, errors, whole };
}

/**
 * The value a plain YAML scalar that was exactly one ${...} takes: integers and booleans
 * become numbers and booleans (so `port: ${PORT:-8080}` is a number), anything else stays text.
 */
export function coerceScalar(value: string): string | number | boolean {
  if (/^[-+]?[0-9]+$/.test(value)) {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
  }
  if (value === 'true' || value === 'True' || value === 'TRUE') return true;
  if (value === 'false' || value === 'False' || value === 'FALSE') return false;
  return value;
}

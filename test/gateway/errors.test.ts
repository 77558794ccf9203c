import { readFileSync } from 'node:fs';
import test from 'ava';
import { GATEWAY_ERRORS } from '../../gateway/errors.ts';

test('docs/errors.md lists every gateway error code with its status, and no others', (t) => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Client-facing errors'), doc.indexOf('## Operator-facing errors'));
  const documented = new Map<string, number>();
  for (const m of section.matchAll(/^\| `(CW_[A-Z_]+)` \| (\d{3}) \|/gm)) documented.set(m[1]!, Number(m[2]));
  const declared = new Map(Object.entries(GATEWAY_ERRORS).map(([code, def]) => [code, def.status as number]));
  t.deepEqual([...documented.entries()].sort(), [...declared.entries()].sort());
});

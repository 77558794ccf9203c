// Schema pieces shared by the gateway model (model.ts) and the policy model (policy-model.ts).
import { Type, type TSchema } from '@sinclair/typebox';

export const desc = <T extends TSchema>(schema: T, description: string): T => ({ ...schema, description }) as T;

/** "250ms", "2s", "1.5m", "1h" or a number of milliseconds. */
export const Duration = Type.Union(
  [
    Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$' }),
    Type.Integer({ minimum: 0 }),
  ],
  {
    title: 'duration',
    description: 'A duration: "250ms", "2s", "1.5m", "1h", or a whole number of milliseconds.',
  },
);

export const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" });

export const HeaderRules = Type.Object(
  {
    add: Type.Optional(desc(Type.Record(HeaderName, Type.String(), { additionalProperties: false }), 'Append these headers (keeps existing values).')),
    set: Type.Optional(desc(Type.Record(HeaderName, Type.String(), { additionalProperties: false }), 'Set these headers, replacing any value.')),
    remove: Type.Optional(desc(Type.Array(HeaderName), 'Remove these headers.')),
  },
  { additionalProperties: false },
);

import { z } from 'zod';

/** Routing-key words: datasource, event, tenant. `.`, `*` and `#` would change what a binding matches. */
export const WORD = /^[A-Za-z0-9_-]{1,64}$/;
const wordMessage = 'must be 1-64 characters of A-Z, a-z, 0-9, _ and -';

/** `commits[0].timestamp`: names joined by dots, each optionally followed by [n] indexes. */
export const FIELD_PATH = /^[A-Za-z_$][\w$-]*(\[\d+\])*(\.[A-Za-z_$][\w$-]*(\[\d+\])*)*$/;
const fieldPath = z
  .string()
  .max(256, 'must be at most 256 characters')
  .regex(FIELD_PATH, 'must be a field path such as commits[0].timestamp');

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be an HTTP header name')
  .transform((name) => name.toLowerCase());

const secret = z.string().min(8, 'must be at least 8 characters').max(1024, 'must be at most 1024 characters');

const verify = z.discriminatedUnion('scheme', [
  z.strictObject({ scheme: z.literal('github'), secret }),
  z.strictObject({ scheme: z.literal('stripe'), secret }),
  z.strictObject({
    scheme: z.literal('standard-webhooks'),
    secret: secret.regex(/^(whsec_)?[A-Za-z0-9+/]+={0,2}$/, 'must be a whsec_<base64> secret'),
  }),
  z.strictObject({
    scheme: z.literal('hmac-sha256'),
    secret,
    header: headerName,
    encoding: z.enum(['hex', 'base64']).default('hex'),
  }),
]);

export const hookInput = z
  .strictObject({
    datasource: z.string().regex(WORD, wordMessage),
    event: z.string().refine((e) => e === '*' || WORD.test(e), `${wordMessage}, or *`),
    /** Absent: unchanged on update. `""` or null: cleared. */
    tsField: z
      .union([z.literal(''), fieldPath])
      .nullable()
      .optional()
      .transform((v) => (v === '' ? null : v)),
    eventFrom: z
      .union([z.strictObject({ header: headerName }), z.strictObject({ field: fieldPath })], {
        error: 'must be {"header": name} or {"field": path}',
      })
      .nullable()
      .optional(),
    verify: verify.nullable().optional(),
  })
  .superRefine((hook, ctx) => {
    if (hook.event === '*' && !hook.eventFrom) {
      ctx.addIssue({ code: 'custom', path: ['eventFrom'], message: 'is required when event is *' });
    }
    if (hook.event !== '*' && hook.eventFrom) {
      ctx.addIssue({ code: 'custom', path: ['eventFrom'], message: 'is only allowed when event is *' });
    }
  });

export type HookInput = z.output<typeof hookInput>;

import { z } from 'zod';
import { compileResourceKeyPattern, ResourceKeyPatternError } from './resource-key-pattern.js';

/** Exact event names (words joined by dots) or a trailing `*` glob: `github.push`, `github.*`, `*`. */
export const EVENT_PATTERN = /^(\*|([A-Za-z0-9_-]{1,64}\.){0,7}([A-Za-z0-9_-]{1,64}|\*))$/;

/** Headers hookbus sets itself, or that would break the request (SPEC §5.1). */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'user-agent',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
export const isReservedHeader = (name: string, hasAuth: boolean) => {
  const lower = name.toLowerCase();
  return (
    RESERVED_HEADERS.has(lower) ||
    lower.startsWith('webhook-') ||
    lower.startsWith('x-hookbus-') ||
    (hasAuth && lower === 'authorization')
  );
};

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
// Visible ASCII and spaces/tabs only: no CR/LF header injection.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]{0,4096}$/;

const url = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .superRefine((value, ctx) => {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute http or https URL' });
      return;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: 'must be an http or https URL' });
    }
    if (parsed.username || parsed.password) {
      ctx.addIssue({ code: 'custom', message: 'must not contain credentials; use auth instead' });
    }
  });

const resourceKeyPattern = z.string().superRefine((pattern, ctx) => {
  try {
    compileResourceKeyPattern(pattern);
  } catch (error) {
    if (!(error instanceof ResourceKeyPatternError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
  }
});

const secretText = z.string().min(1, 'must not be empty').max(4096, 'must be at most 4096 characters');
const auth = z.union(
  [
    z.strictObject({ bearer: secretText }),
    z.strictObject({
      basic: z.strictObject({
        username: z
          .string()
          .min(1)
          .max(256)
          .regex(/^[^:]*$/, 'must not contain :'),
        password: secretText,
      }),
    }),
  ],
  { error: 'must be {"bearer": token} or {"basic": {"username", "password"}}' },
);

// zod's record skips a `__proto__` key unseen (it cannot be a plain object's own header): refuse
// it rather than drop a field the caller sent.
const headers = z
  .unknown()
  .superRefine((value, ctx) => {
    if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
      ctx.addIssue({ code: 'custom', path: ['__proto__'], message: 'is not accepted as a header name' });
    }
  })
  .pipe(
    z.record(
      z.string().regex(HEADER_NAME, 'must be an HTTP header name'),
      z.string().regex(HEADER_VALUE, 'must be printable text of at most 4096 characters'),
    ),
  );

/** Fields shared by create and update; on update every one is optional and null clears. */
const fields = {
  name: z.string().max(200, 'must be at most 200 characters'),
  description: z.string().max(2000, 'must be at most 2000 characters'),
  url,
  events: z
    .array(z.string().regex(EVENT_PATTERN, 'must be an event name or a trailing * glob such as github.*'))
    .min(1, 'must list at least one event')
    .max(100, 'must list at most 100 events'),
  scope: z.enum(['tenant', 'site']),
  filter: z.strictObject({ resourceKeyPattern: resourceKeyPattern.optional() }),
  headers,
  auth,
  sslVerification: z.boolean(),
  enabled: z.boolean(),
  payload: z.enum(['envelope', 'data']),
  retry: z.strictObject({
    maxAttempts: z.number().int('must be a whole number').min(1, 'must be at least 1').optional(),
    timeoutMs: z.number().int('must be a whole number').min(1, 'must be at least 1').optional(),
  }),
};

function checkHeaders(value: { headers?: Record<string, string> | null }, ctx: z.RefinementCtx, hasAuth: boolean) {
  for (const name of Object.keys(value.headers ?? {})) {
    if (isReservedHeader(name, hasAuth)) {
      ctx.addIssue({ code: 'custom', path: ['headers', name], message: 'is set by hookbus and cannot be overridden' });
    }
  }
}

export const createInput = z
  .strictObject({
    ...fields,
    name: fields.name.optional(),
    description: fields.description.optional(),
    scope: fields.scope.default('tenant'),
    filter: fields.filter.default({}),
    headers: fields.headers.default({}),
    auth: fields.auth.optional(),
    sslVerification: fields.sslVerification.default(true),
    enabled: fields.enabled.default(true),
    payload: fields.payload.default('envelope'),
    retry: fields.retry.default({}),
  })
  .superRefine((value, ctx) => checkHeaders(value, ctx, value.auth !== undefined));

export const updateInput = z.strictObject({
  name: fields.name.nullable().optional(),
  description: fields.description.nullable().optional(),
  url: fields.url.optional(),
  events: fields.events.optional(),
  scope: fields.scope.optional(),
  filter: fields.filter.nullable().optional(),
  headers: fields.headers.nullable().optional(),
  auth: fields.auth.nullable().optional(),
  sslVerification: fields.sslVerification.optional(),
  enabled: fields.enabled.optional(),
  payload: fields.payload.optional(),
  retry: fields.retry.nullable().optional(),
});

export type CreateInput = z.output<typeof createInput>;
export type UpdateInput = z.output<typeof updateInput>;

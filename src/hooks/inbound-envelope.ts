import type { IncomingHttpHeaders } from 'node:http';
import { getProperty } from 'dot-prop';
import { WORD } from './validation.js';

/**
 * Provider headers kept in the envelope. Never authorization, cookies or shared-secret headers
 * such as X-Gitlab-Token; signatures are digests, not secrets, and let consumers re-verify.
 */
const KEPT_EXACT = new Set([
  'user-agent',
  'content-type',
  'x-request-id',
  'stripe-signature',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'x-hub-signature',
  'x-hub-signature-256',
  'x-event-key',
  'x-hook-uuid',
  'x-request-uuid',
]);
const KEPT_PREFIXES = ['x-github-', 'x-gitlab-', 'x-bitbucket-', 'x-shopify-', 'x-slack-', 'x-twilio-'];
const NEVER = new Set(['x-gitlab-token', 'x-shopify-access-token']);

export function keptHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || NEVER.has(name)) continue;
    if (KEPT_EXACT.has(name) || KEPT_PREFIXES.some((prefix) => name.startsWith(prefix))) {
      kept[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return kept;
}

/**
 * The time the payload says the event happened: an ISO 8601 date, or an epoch number (below 1e11
 * it is seconds, else milliseconds), as a number or a string of digits. Anything else: undefined.
 */
export function occurredAtOf(data: unknown, tsField: string | null): string | undefined {
  if (!tsField || typeof data !== 'object' || data === null) return undefined;
  const value: unknown = getProperty(data as Record<string, unknown>, tsField);
  let ms: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) ms = value < 1e11 ? value * 1000 : value;
  else if (typeof value === 'string' && /^\d{1,16}(\.\d+)?$/.test(value)) {
    const n = Number(value);
    ms = n < 1e11 ? n * 1000 : n;
  } else if (typeof value === 'string') {
    const iso = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?)?$/.exec(value);
    // Without an offset, a time is UTC: never the server's own time zone.
    if (iso) ms = Date.parse(iso[2] ? `${iso[1]}T${iso[2]}${iso[3] ?? 'Z'}` : `${iso[1]}T00:00:00Z`);
  }
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  const date = new Date(Math.round(ms));
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * An event name read from a request: one or more event words joined by dots (Stripe's
 * `charge.succeeded` becomes routing-key words `charge.succeeded`). `*`, `#` and empty words are refused.
 */
export function eventNameOf(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 128) return undefined;
  return value.split('.').every((word) => WORD.test(word)) ? value : undefined;
}

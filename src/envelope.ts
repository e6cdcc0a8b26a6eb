import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';
import { nestingDepth, topLevelMembers, trimmed, withoutBom, withRawMember } from './json/raw.js';

/** The one message shape on the bus (SPEC §4.2). */
export interface Envelope {
  id: string;
  /** `<datasource>.<event>` for webhooks. */
  event: string;
  tenantId: string;
  /** `hookId` is not a secret (see hookIdOf): the envelope reaches every subscriber, so no token is in it. */
  source: { kind: 'webhook'; hookId: string; datasource: string; event: string } | { kind: 'api' };
  resourceKey: string | null;
  occurredAt: string;
  receivedAt: string;
  headers: Record<string, string>;
  data: unknown;
}

/**
 * The CSPRNG in 4 KiB draws: ulid's default asks the system for one byte per character, which
 * showed up at ~7% of the ingest path's CPU time.
 */
const pool = Buffer.alloc(4096);
let drawn = pool.length;
function pooledRandom(): number {
  if (drawn >= pool.length) {
    randomFillSync(pool);
    drawn = 0;
  }
  return pool[drawn++]! / 256;
}

const ulid = monotonicFactory(pooledRandom);

export const newEventId = (): string => `evt_${ulid()}`;

/** The routing key of an inbound webhook: `event.<tenantId>.<datasource>.<event>`. */
export const inboundRoutingKey = (tenantId: string, datasource: string, event: string): string =>
  `event.${tenantId}.${datasource}.${event}`;

/**
 * Arrays and objects in a payload nest at most this deep: ingest and `POST /api/events` refuse
 * deeper ones with a 400, so every envelope they publish is one the dispatcher can carry.
 */
export const MAX_DATA_DEPTH = 512;

/** The largest envelope the dispatcher carries: well under MongoDB's 16 MiB document limit (a delivery stores it). */
export const MAX_ENVELOPE_BYTES = 9 * 1024 * 1024;

/** The largest `INBOUND_MAX_BODY`: a body that size still fits an envelope with its kept headers. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

// ignoreBOM: the decoder must not drop a mark on its own, or the text parsed and the bytes
// carried would differ (a second mark would pass JSON.parse but stay in the bytes).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

type Unreadable = 'empty' | 'not UTF-8' | 'too deep' | 'not JSON';
export type Payload = { ok: true; value: unknown; bytes: Buffer } | { ok: false; why: Unreadable; problem: string };

const unreadable = (why: Unreadable, problem: string): Payload => ({ ok: false, why, problem });

/**
 * A request body read as a payload hookbus will carry: strict UTF-8 JSON, a leading byte-order
 * mark dropped (RFC 8259 §8.1), nesting at most `maxDepth` deep. `bytes` is the JSON text exactly
 * as sent, less the mark and the whitespace around the value; `value` is for reading fields (event names, timestamps), never for
 * re-encoding.
 */
export function readPayload(raw: Buffer, maxDepth = MAX_DATA_DEPTH): Payload {
  const bytes = trimmed(withoutBom(raw));
  if (bytes.length === 0) return unreadable('empty', 'The body is empty (or only whitespace).');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return unreadable('not UTF-8', 'The body is not valid UTF-8.');
  }
  if (nestingDepth(bytes, maxDepth) > maxDepth) {
    return unreadable('too deep', `The body nests arrays and objects more than ${maxDepth} levels deep.`);
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown, bytes };
  } catch {
    return unreadable('not JSON', 'The body is not valid JSON.');
  }
}

const envelopeSchema = z.looseObject({
  id: z.string().min(1).max(200),
  event: z.string().min(1).max(255),
  tenantId: z.union([z.string().min(1).max(200), z.number()]).transform(String),
  resourceKey: z.string().nullable().optional(),
  data: z.unknown(),
});

export type ReadEnvelope =
  { ok: true; envelope: z.infer<typeof envelopeSchema>; data: () => Buffer } | { ok: false; reason: string };

/**
 * Reads a message as an envelope (SPEC §4.2), or says in one line why it is not one. `data()` is
 * the exact bytes of its `data` member, taken out of the message, never re-encoded.
 */
export function parseEnvelope(content: Buffer): ReadEnvelope {
  if (content.length > MAX_ENVELOPE_BYTES) return { ok: false, reason: `larger than ${MAX_ENVELOPE_BYTES} bytes` };
  // The envelope's own object is one level above its data.
  const payload = readPayload(content, MAX_DATA_DEPTH + 1);
  if (!payload.ok) {
    const reason = payload.why === 'too deep' ? `data nested more than ${MAX_DATA_DEPTH} levels deep` : payload.why;
    return { ok: false, reason: reason === 'empty' ? 'not JSON' : reason };
  }
  const result = envelopeSchema.safeParse(payload.value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return { ok: false, reason: `not an envelope: ${issue.path.join('.') || 'message'} ${issue.message}` };
  }
  return { ok: true, envelope: result.data, data: () => topLevelMembers(payload.bytes).get('data')! };
}

/**
 * Serialises an envelope whose `data` is JSON text as received: those bytes go into the message
 * unchanged (key order, spacing and number spelling included), not re-encoded.
 */
export const envelopeWithRawData = (envelope: Omit<Envelope, 'data'>, rawData: Buffer): Buffer =>
  withRawMember(envelope, 'data', rawData);

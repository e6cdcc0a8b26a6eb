import { createHash } from 'node:crypto';
import { Schema, type Connection } from 'mongoose';

export type DeliveryStatus = 'pending' | 'retrying' | 'success' | 'failed';

/** A header as stored: name/value pairs, because header names may contain `.` (FerretDB refuses such keys). */
export interface HeaderPair {
  name: string;
  value: string;
}

export interface AttemptRecord {
  n: number;
  at: Date;
  durationMs: number;
  /** Headers sent, with the signature and any credentials redacted. */
  request: { headers: HeaderPair[] };
  /** null when no response arrived (timeout, refused connection, refused target). */
  response: { status: number; headers: HeaderPair[]; body: string; bodyTruncated: boolean } | null;
  error: string | null;
}

/**
 * One event for one subscription (SPEC §5.3). `payload` is the body exactly as sent, as text, so
 * payload keys such as `a.b` or `$x` round-trip on MongoDB and on FerretDB alike.
 */
export interface DeliveryRecord {
  _id: string;
  webhookId: string;
  tenantId: string;
  eventId: string;
  event: string;
  url: string;
  status: DeliveryStatus;
  attempts: AttemptRecord[];
  payload: string;
  createdAt: Date;
  updatedAt: Date;
  nextAttemptAt: Date | null;
}

const headerPairs = { type: [{ _id: false, name: String, value: String }], default: [] };

const schema = new Schema<DeliveryRecord>(
  {
    _id: { type: String, required: true },
    webhookId: { type: String, required: true },
    tenantId: { type: String, required: true },
    eventId: { type: String, required: true },
    event: { type: String, required: true },
    url: { type: String, required: true },
    status: { type: String, enum: ['pending', 'retrying', 'success', 'failed'], required: true },
    attempts: {
      type: [
        {
          _id: false,
          n: Number,
          at: Date,
          durationMs: Number,
          request: { headers: headerPairs },
          response: { type: Schema.Types.Mixed, default: null },
          error: { type: String, default: null },
        },
      ],
      default: [],
    },
    payload: { type: String, required: true },
    createdAt: { type: Date, required: true },
    updatedAt: { type: Date, required: true },
    nextAttemptAt: { type: Date, default: null },
  },
  { collection: 'deliveries', versionKey: false, minimize: false },
);
// The delivery log lists a subscription's deliveries newest first, optionally by status (SPEC §5.1).
schema.index({ webhookId: 1, createdAt: -1 });
schema.index({ webhookId: 1, status: 1, createdAt: -1 });

export const deliveryModel = (connection: Connection) => connection.model<DeliveryRecord>('Delivery', schema);
export type DeliveryModel = ReturnType<typeof deliveryModel>;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32 (lower case, unpadded). */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * `msg_` + base32 of the first 128 bits of SHA-256(eventId, webhookId): the same envelope and
 * subscription always give the same delivery, so a redelivered envelope cannot duplicate one.
 */
export function deliveryIdOf(eventId: string, webhookId: string): string {
  const digest = createHash('sha256').update(eventId).update('\u0000').update(webhookId).digest();
  return `msg_${base32(digest.subarray(0, 16))}`;
}

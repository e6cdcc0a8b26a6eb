import { createHash } from 'node:crypto';
import { Schema, type Connection } from 'mongoose';

export type VerifySettings =
  | { scheme: 'github'; secret: string }
  | { scheme: 'stripe'; secret: string }
  | { scheme: 'standard-webhooks'; secret: string }
  | { scheme: 'hmac-sha256'; secret: string; header: string; encoding: 'hex' | 'base64' };

export type EventFrom = { header: string } | { field: string };

/**
 * A hook's id that is not a secret (its token is): `hk_` + 128 bits of SHA-256(token). It names the
 * hook in envelopes, which reach every subscriber, and in API answers.
 */
export const hookIdOf = (token: string): string =>
  `hk_${createHash('sha256').update(token).digest('hex').slice(0, 32)}`;

/** A hook as stored. `_id` is the 40-hex token, so the inbound lookup is by `_id`. */
export interface HookRecord {
  _id: string;
  apiToken: string;
  tenantId: string;
  datasource: string;
  /** An event word, or `*` with `eventFrom` saying where each request's event is. */
  event: string;
  eventFrom: EventFrom | null;
  tsField: string | null;
  /** Write-only: the secret is never returned by the API. */
  verify: VerifySettings | null;
  createdAt: Date;
  updatedAt: Date;
}

const schema = new Schema<HookRecord>(
  {
    _id: { type: String, required: true },
    apiToken: { type: String, required: true },
    tenantId: { type: String, required: true },
    datasource: { type: String, required: true },
    event: { type: String, required: true },
    eventFrom: { type: Schema.Types.Mixed, default: null },
    tsField: { type: String, default: null },
    verify: { type: Schema.Types.Mixed, default: null },
  },
  { collection: 'hooks', timestamps: true, versionKey: false },
);
// One hook per tenant, datasource and event: create-or-update matches on it, and it settles a race.
schema.index({ tenantId: 1, datasource: 1, event: 1 }, { unique: true });

export const hookModel = (connection: Connection) => connection.model<HookRecord>('Hook', schema);
export type HookModel = ReturnType<typeof hookModel>;

import { Schema, type Connection } from 'mongoose';

export type SubscriptionAuth = { bearer: string } | { basic: { username: string; password: string } };

export interface SigningSecret {
  value: string;
  /** null for the current secret; the previous one signs too until this time (24 h after a rotation). */
  expiresAt: Date | null;
}

/** An outbound subscription as stored (SPEC §5.1). `_id` is `wh_<ULID>`, so ids sort by creation. */
export interface SubscriptionRecord {
  _id: string;
  tenantId: string;
  name: string | null;
  description: string | null;
  url: string;
  events: string[];
  scope: 'tenant' | 'site';
  filter: { resourceKeyPattern?: string };
  /** Name/value pairs: header names may contain `.`, which FerretDB refuses as a key. */
  headers: { name: string; value: string }[];
  auth: SubscriptionAuth | null;
  sslVerification: boolean;
  enabled: boolean;
  payload: 'envelope' | 'data';
  retry: { maxAttempts?: number; timeoutMs?: number };
  secrets: SigningSecret[];
  createdAt: Date;
  createdBy: string;
  updatedAt: Date;
  updatedBy: string;
}

const schema = new Schema<SubscriptionRecord>(
  {
    _id: { type: String, required: true },
    tenantId: { type: String, required: true },
    name: { type: String, default: null },
    description: { type: String, default: null },
    url: { type: String, required: true },
    events: { type: [String], required: true },
    scope: { type: String, enum: ['tenant', 'site'], required: true },
    filter: { type: Schema.Types.Mixed, default: {} },
    headers: { type: [{ _id: false, name: String, value: String }], default: [] },
    auth: { type: Schema.Types.Mixed, default: null },
    sslVerification: { type: Boolean, default: true },
    enabled: { type: Boolean, default: true },
    payload: { type: String, enum: ['envelope', 'data'], default: 'envelope' },
    retry: { type: Schema.Types.Mixed, default: {} },
    secrets: { type: [{ _id: false, value: String, expiresAt: Date }], required: true },
    createdBy: { type: String, required: true },
    updatedBy: { type: String, required: true },
  },
  { collection: 'webhooks', timestamps: true, versionKey: false, minimize: false },
);
schema.index({ tenantId: 1, _id: 1 });

export const subscriptionModel = (connection: Connection) =>
  connection.model<SubscriptionRecord>('Subscription', schema);
export type SubscriptionModel = ReturnType<typeof subscriptionModel>;

/** `410 Gone`: the receiver says it is gone for good, so its subscription is disabled. */
export const disableGone = (subscriptions: SubscriptionModel, id: string) =>
  subscriptions.updateOne(
    { _id: id },
    { $set: { enabled: false, updatedAt: new Date(), updatedBy: 'hookbus:410-gone' } },
    { timestamps: false },
  );

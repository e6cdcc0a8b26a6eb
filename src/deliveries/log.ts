import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Caller } from '../http/auth.js';
import { DELIVERY_ID } from './ids.js';
import type { Connection } from 'mongoose';
import {
  attemptModel,
  deliveryModel,
  type AttemptDoc,
  type AttemptModel,
  type DeliveryDoc,
  type DeliveryModel,
  type DeliveryRecord,
} from './model.js';
import { deliveryView } from './view.js';

/** Where a walk through a subscription's deliveries (newest first) stopped. */
export interface Cursor {
  createdAt: Date;
  id: string;
}

export const encodeCursor = ({ createdAt, id }: Cursor): string =>
  Buffer.from(JSON.stringify([createdAt.getTime(), id])).toString('base64url');

/** The cursor, or null when the text is not one this API handed out. */
export function decodeCursor(text: string): Cursor | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 2) return null;
    const [ms, id] = value as unknown[];
    if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || typeof id !== 'string' || !DELIVERY_ID.test(id)) {
      return null;
    }
    const createdAt = new Date(ms);
    return Number.isNaN(createdAt.getTime()) ? null : { createdAt, id };
  } catch {
    return null;
  }
}

export interface WalkFilter {
  webhookId: string;
  /** Whose deliveries: DeliveryLog.visibleTo(caller). */
  visible: Record<string, unknown>;
  /** createdAt >= since */
  since?: Date;
  /** createdAt < until */
  until?: Date;
  /** Leave the payload out (listings). */
  withoutPayload?: boolean;
  /** Deliveries read per query (at most CHUNK): a listing's page needs no more than limit + 1. */
  chunk?: number;
}

/** Deliveries read per query while walking. */
const CHUNK = 200;

/**
 * Reads of the delivery log. A delivery's current status is its latest attempt's (attempts are
 * separate, insert-only documents: see AttemptDoc), so filtering by status walks a subscription's
 * deliveries newest first through the {webhookId, createdAt, _id} index and reads each chunk's
 * attempts through the {deliveryId} index. The purge keeps a subscription's deliveries to
 * DELIVERY_LOG_LIMIT, which bounds such a walk.
 */
export class DeliveryLog {
  constructor(
    readonly deliveries: DeliveryModel,
    readonly attempts: AttemptModel,
  ) {}

  /** The delivery log of a database. */
  static of(connection: Connection): DeliveryLog {
    return new DeliveryLog(deliveryModel(connection), attemptModel(connection));
  }

  /** Every delivery matching a filter on stored fields, with its attempts, oldest first (tests, tools). */
  async records(filter: Record<string, unknown> = {}): Promise<DeliveryRecord[]> {
    const docs = await this.deliveries.find(filter).sort({ createdAt: 1, _id: 1 }).lean<DeliveryDoc[]>();
    const attempts = await this.attemptsOf(docs.map((d) => d._id));
    return docs.map((d) => deliveryView(d, attempts.get(d._id) ?? []));
  }

  /** Stores deliveries and attempts exactly as given (restoring records; tests seeding a log). */
  async insertRecords(deliveries: readonly DeliveryDoc[], attempts: readonly AttemptDoc[]): Promise<void> {
    if (deliveries.length > 0) await this.deliveries.collection.insertMany(deliveries as never[], { ordered: false });
    if (attempts.length > 0) await this.attempts.collection.insertMany(attempts as never[], { ordered: false });
  }

  /** Which deliveries the caller may see: its tenant's, and site-scope ones only with the admin claim. */
  static visibleTo(caller: Caller): Record<string, unknown> {
    return caller.admin ? { tenantId: caller.tenantId } : { tenantId: caller.tenantId, scope: 'tenant' };
  }

  /** visibleTo's rule, for a delivery already read. */
  static canSee(caller: Caller, doc: Pick<DeliveryDoc, 'tenantId' | 'scope'>): boolean {
    return doc.tenantId === caller.tenantId && (caller.admin || doc.scope === 'tenant');
  }

  /** One delivery with every attempt, if the caller may see it. */
  async find(caller: Caller, id: unknown): Promise<{ doc: DeliveryDoc; attempts: AttemptDoc[] } | null> {
    if (typeof id !== 'string' || !DELIVERY_ID.test(id)) return null;
    // By `_id` alone, the one filter FerretDB's SQLite backend pushes down to SQL (11–13 ms at 20,000
    // documents, measured); who may see it is checked here: any other field made it scan.
    const doc = await this.deliveries.findOne({ _id: id }).lean<DeliveryDoc>();
    if (!doc || !DeliveryLog.canSee(caller, doc)) return null;
    return { doc, attempts: await this.attempts.find({ deliveryId: id }).lean<AttemptDoc[]>() };
  }

  /** The attempts (and replay marks) of these deliveries, by delivery id. */
  async attemptsOf(ids: readonly string[]): Promise<Map<string, AttemptDoc[]>> {
    const byDelivery = new Map<string, AttemptDoc[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return byDelivery;
    const found = await this.attempts.find({ deliveryId: { $in: ids } }).lean<AttemptDoc[]>();
    for (const attempt of found) byDelivery.get(attempt.deliveryId)?.push(attempt);
    return byDelivery;
  }

  /**
   * A subscription's deliveries, newest first (ties broken by id), from just after `after`, in
   * chunks with their attempts folded in. Deliveries that arrive meanwhile are newer than any
   * cursor, so a walk neither repeats nor skips one.
   */
  async *walk(filter: WalkFilter, after: Cursor | null = null): AsyncGenerator<DeliveryRecord[]> {
    let from = after;
    for (;;) {
      const query: Record<string, unknown> = { ...filter.visible, webhookId: filter.webhookId };
      const createdAt: Record<string, Date> = {};
      if (filter.since) createdAt.$gte = filter.since;
      if (filter.until) createdAt.$lt = filter.until;
      if (Object.keys(createdAt).length > 0) query.createdAt = createdAt;
      if (from) {
        query.$or = [{ createdAt: { $lt: from.createdAt } }, { createdAt: from.createdAt, _id: { $lt: from.id } }];
      }
      const size = Math.min(CHUNK, filter.chunk ?? CHUNK);
      const docs = await this.deliveries
        .find(query, filter.withoutPayload ? { payload: 0 } : {})
        .sort({ createdAt: -1, _id: -1 })
        .limit(size)
        .lean<DeliveryDoc[]>();
      if (docs.length === 0) return;
      const attempts = await this.attemptsOf(docs.map((d) => d._id));
      yield docs.map((d) => deliveryView({ ...d, payload: d.payload ?? '' }, attempts.get(d._id) ?? []));
      if (docs.length < size) return;
      const last = docs.at(-1)!;
      from = { createdAt: new Date(last.createdAt), id: last._id };
    }
  }

  /** Deletes deliveries and then their attempts (attempts left by a crash in between are swept by the purge). */
  async remove(ids: readonly string[]): Promise<{ deliveries: number; attempts: number }> {
    if (ids.length === 0) return { deliveries: 0, attempts: 0 };
    const deleted = await this.deliveries.deleteMany({ _id: { $in: ids } });
    const attempts = await this.attempts.deleteMany({ deliveryId: { $in: ids } });
    return { deliveries: deleted.deletedCount, attempts: attempts.deletedCount };
  }

  /**
   * Stores attempts or replay marks (inserts, like every attempt: see AttemptDoc). Tried three
   * times: the database may refuse a write for a moment while another process writes.
   */
  async insertEntries(entries: readonly Omit<AttemptDoc, '_id'>[]): Promise<AttemptDoc[]> {
    const docs = entries.map((e) => ({ ...e, _id: `${e.deliveryId}.${e.n}.${randomBytes(4).toString('hex')}` }));
    if (docs.length === 0) return docs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.attempts.collection.insertMany(docs as never[], { ordered: false });
        return docs;
      } catch (error) {
        const codes = writeErrorCodes(error);
        // A retried insert may find its documents already written by the failed try.
        if (codes.length > 0 && codes.every((code) => code === DUPLICATE_KEY)) return docs;
        if (attempt === 3) throw error;
        await sleep(attempt * 200);
      }
    }
  }
}

const DUPLICATE_KEY = 11000;

function writeErrorCodes(error: unknown): number[] {
  const { writeErrors } = error as { writeErrors?: { code: number }[] | { code: number } };
  return writeErrors === undefined ? [] : (Array.isArray(writeErrors) ? writeErrors : [writeErrors]).map((e) => e.code);
}

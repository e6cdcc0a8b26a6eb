import type { Connection } from 'mongoose';
import type { AttemptDoc, DeliveryDoc } from './model.js';
import { currentStatus, isSettled } from './view.js';
import type { Logger } from '../logger.js';
import type { DeliveryLog } from './log.js';

const DUPLICATE_KEY = 11000;
/** Deliveries checked and deleted per round trip. */
const CHUNK = 500;
/** Replicas spread their start of a slot over at most this long, so one of them takes it. */
const MAX_JITTER_MS = 2000;
/** Lease documents kept (older ones are deleted by whoever takes a lease). */
const LEASES_KEPT = 10;

export interface RetentionOptions {
  log: DeliveryLog;
  connection: Connection;
  /** DELIVERY_LOG_LIMIT, DELIVERY_LOG_MAX_AGE, DELIVERY_CLEANUP_INTERVAL */
  limit: number;
  maxAge: number;
  interval: number;
  logger: Logger;
  /** Who holds a lease, for the lease document (the process's connection name). */
  holder: string;
}

export interface PurgeResult {
  deliveries: number;
  attempts: number;
  /** Deliveries over a limit kept because they still have an attempt to come. */
  kept: number;
}

interface Lease {
  _id: string;
  holder: string;
  at: Date;
}

/**
 * The delivery log's retention (SPEC §5.3): every DELIVERY_CLEANUP_INTERVAL, the deliveries of each
 * subscription beyond the newest DELIVERY_LOG_LIMIT and any older than DELIVERY_LOG_MAX_AGE are
 * deleted with their attempts, except those still pending or retrying. Time is cut into slots of
 * one interval; a purge runs for a slot only in the process that inserts the slot's lease document
 * (a unique `_id`: works the same on MongoDB and on FerretDB, no TTL index or transaction), so
 * several replicas purge once per slot between them.
 */
export class DeliveryLogRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private lastSlot = -1;

  constructor(private readonly options: RetentionOptions) {}

  private get leases() {
    return this.options.connection.collection<Lease>('leases');
  }

  /** Tries the current slot now, then once per slot, a little after its start. */
  start(): void {
    this.schedule(Math.random() * Math.min(MAX_JITTER_MS, this.options.interval / 10));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        const { interval } = this.options;
        const jitter = Math.random() * Math.min(MAX_JITTER_MS, interval / 10);
        this.schedule((Math.floor(Date.now() / interval) + 1) * interval - Date.now() + jitter);
      });
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const slot = Math.floor(Date.now() / this.options.interval);
    if (slot === this.lastSlot) return;
    this.lastSlot = slot;
    try {
      await this.runSlot(slot);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message, slot }, 'delivery log purge failed; next slot retries');
    }
  }

  /** Takes the slot's lease and purges; null when another process holds the lease. */
  async runSlot(slot: number): Promise<PurgeResult | null> {
    const id = leaseId(slot);
    try {
      await this.leases.insertOne({ _id: id, holder: this.options.holder, at: new Date() });
    } catch (error) {
      if ((error as { code?: unknown }).code === DUPLICATE_KEY) return null;
      throw error;
    }
    await this.leases.deleteMany({ _id: { $lt: leaseId(slot - LEASES_KEPT) } });
    const started = Date.now();
    const result = await this.purge(new Date());
    this.options.logger.info({ slot, ...result, durationMs: Date.now() - started }, 'delivery log purged');
    return result;
  }

  /**
   * One purge as of `now`. Ids are handled CHUNK at a time as the walk finds them: the process
   * never holds more than one chunk of them, however large the log.
   */
  async purge(now: Date): Promise<PurgeResult> {
    const cutoff = new Date(now.getTime() - this.options.maxAge);
    const result: PurgeResult = { deliveries: 0, attempts: 0, kept: 0 };
    for await (const ids of chunks(this.overLimit(cutoff))) {
      if (this.stopped) break;
      await this.removeSettled(ids, result);
    }
    if (!this.stopped) result.attempts += await this.sweepOrphans(cutoff);
    return result;
  }

  /** Deletes those of `ids` that are settled, with their attempts; counts the others as kept. */
  private async removeSettled(ids: string[], result: PurgeResult): Promise<void> {
    const { log } = this.options;
    const attempts = await log.attemptsOf(ids);
    const settled = ids.filter((id) => isSettled(currentStatus(attempts.get(id) ?? [])));
    result.kept += ids.length - settled.length;
    const removed = await log.remove(settled);
    result.deliveries += removed.deliveries;
    result.attempts += removed.attempts;
  }

  /** Ids of deliveries beyond their subscription's newest `limit`, or created before `cutoff`, as the walk meets them. */
  private async *overLimit(cutoff: Date): AsyncGenerator<string> {
    const { log, limit } = this.options;
    let current = '';
    let seen = 0;
    const cursor = log.deliveries
      .find({}, { _id: 1, webhookId: 1, createdAt: 1 })
      .sort({ webhookId: 1, createdAt: -1, _id: -1 })
      .lean<Pick<DeliveryDoc, '_id' | 'webhookId' | 'createdAt'>[]>()
      .cursor();
    for await (const doc of cursor as AsyncIterable<Pick<DeliveryDoc, '_id' | 'webhookId' | 'createdAt'>>) {
      if (doc.webhookId !== current) {
        current = doc.webhookId;
        seen = 0;
      }
      seen++;
      if (seen > limit || new Date(doc.createdAt) < cutoff) yield doc._id;
    }
  }

  /**
   * Attempts older than the age limit whose delivery no longer exists: left by a crash between
   * deleting a delivery and its attempts, or recorded by an attempt that was under way meanwhile.
   */
  private async sweepOrphans(cutoff: Date): Promise<number> {
    const { log } = this.options;
    const cursor = log.attempts
      .find({ at: { $lt: cutoff } }, { deliveryId: 1 })
      // Sorted (by the {at} index): FerretDB then reads the matches whole before the first batch,
      // instead of keeping a read open on the table the deletes below write to.
      .sort({ at: 1 })
      .lean<Pick<AttemptDoc, 'deliveryId'>[]>()
      .cursor();
    const owners = async function* () {
      for await (const attempt of cursor as AsyncIterable<Pick<AttemptDoc, 'deliveryId'>>) yield attempt.deliveryId;
    };
    let deleted = 0;
    for await (const chunk of chunks(owners())) {
      if (this.stopped) break;
      const ids = [...new Set(chunk)];
      const existing = new Set(
        (await log.deliveries.find({ _id: { $in: ids } }, { _id: 1 }).lean<{ _id: string }[]>()).map((d) => d._id),
      );
      const orphans = ids.filter((id) => !existing.has(id));
      if (orphans.length > 0) {
        deleted += (await log.attempts.deleteMany({ deliveryId: { $in: orphans } })).deletedCount;
      }
    }
    return deleted;
  }
}

/** The items in lists of at most CHUNK. */
async function* chunks<T>(items: AsyncIterable<T>): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length === CHUNK) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** Zero-padded, so lease ids sort as their slots do. */
const leaseId = (slot: number) => `delivery-log-purge:${String(Math.max(0, slot)).padStart(16, '0')}`;

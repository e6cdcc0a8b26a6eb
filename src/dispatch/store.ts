import type { mongo } from 'mongoose';
import type { Logger } from '../logger.js';
import type { AttemptRecord, DeliveryModel, DeliveryRecord, DeliveryStatus } from './deliveries.js';
import { Batcher, untilDone } from './work.js';

const DUPLICATE_KEY = 11000;

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

interface PendingInsert extends Waiter<Map<string, DeliveryStatus>> {
  docs: DeliveryRecord[];
}

export interface AttemptUpdate {
  id: string;
  attempt: AttemptRecord | null;
  status: DeliveryStatus;
  nextAttemptAt: Date | null;
}

interface PendingUpdate extends Waiter<void> {
  update: AttemptUpdate;
}

interface BulkWriteErrorLike {
  code?: number;
  writeErrors?: { code: number; index: number }[] | { code: number; index: number };
}

/**
 * Writes of the dispatch path, gathered per turn of the event loop into one insertMany and one
 * bulkWrite, by `_id` only (FerretDB's SQLite backend filters nothing else in SQL). Writes are
 * retried while MongoDB is unreachable; once the dispatcher stops they reject, and the messages
 * they belong to stay unacknowledged.
 */
export class DeliveryStore {
  private readonly inserts = new Batcher<PendingInsert>((batch) => void this.insertBatch(batch));
  private readonly updates = new Batcher<PendingUpdate>((batch) => void this.updateBatch(batch));

  /** The driver's collection, typed by its documents (string ids): bulk writes skip mongoose's casting. */
  private readonly collection: mongo.Collection<DeliveryRecord>;

  constructor(
    deliveries: DeliveryModel,
    private readonly logger: Logger,
    private readonly stopped: () => boolean,
  ) {
    this.collection = deliveries.collection as unknown as mongo.Collection<DeliveryRecord>;
  }

  /**
   * Inserts the deliveries that do not exist yet. Resolves with the status of those that already
   * did (a redelivered envelope), so the caller does not start a second chain of attempts.
   */
  insertIfAbsent(docs: DeliveryRecord[]): Promise<Map<string, DeliveryStatus>> {
    if (docs.length === 0) return Promise.resolve(new Map<string, DeliveryStatus>());
    return new Promise((resolve, reject) => this.inserts.push({ docs, resolve, reject }));
  }

  record(update: AttemptUpdate): Promise<void> {
    return new Promise((resolve, reject) => this.updates.push({ update, resolve, reject }));
  }

  private async insertBatch(batch: PendingInsert[]): Promise<void> {
    const docs = batch.flatMap((p) => p.docs);
    try {
      const duplicates = await untilDone(
        () => this.insertMany(docs),
        this.stopped,
        (error, retryInMs) => this.logger.warn({ err: error.message, retryInMs }, 'could not store deliveries'),
      );
      const existing =
        duplicates.length === 0
          ? new Map<string, DeliveryStatus>()
          : await untilDone(
              () => this.statusOf(duplicates),
              this.stopped,
              (error, retryInMs) => this.logger.warn({ err: error.message, retryInMs }, 'could not read deliveries'),
            );
      for (const pending of batch) pending.resolve(existing);
    } catch (error) {
      for (const pending of batch) pending.reject(error as Error);
    }
  }

  /** The ids that already existed. */
  private async insertMany(docs: DeliveryRecord[]): Promise<string[]> {
    try {
      await this.collection.insertMany(docs, { ordered: false });
      return [];
    } catch (error) {
      const { writeErrors } = error as BulkWriteErrorLike;
      const errors = writeErrors === undefined ? [] : Array.isArray(writeErrors) ? writeErrors : [writeErrors];
      if (errors.length === 0 || errors.some((e) => e.code !== DUPLICATE_KEY)) throw error;
      return errors.map((e) => docs[e.index]!._id);
    }
  }

  private async statusOf(ids: string[]): Promise<Map<string, DeliveryStatus>> {
    const found = await this.collection
      .find<{ _id: string; status: DeliveryStatus }>({ _id: { $in: ids } }, { projection: { status: 1 } })
      .toArray();
    return new Map(found.map((d) => [d._id, d.status]));
  }

  private async updateBatch(batch: PendingUpdate[]): Promise<void> {
    const now = new Date();
    const operations: mongo.AnyBulkWriteOperation<DeliveryRecord>[] = batch.map(({ update }) => ({
      updateOne: {
        filter: { _id: update.id },
        update: {
          $set: { status: update.status, nextAttemptAt: update.nextAttemptAt, updatedAt: now },
          ...(update.attempt ? { $push: { attempts: update.attempt } } : {}),
        },
      },
    }));
    try {
      await untilDone(
        () => this.collection.bulkWrite(operations, { ordered: false }),
        this.stopped,
        (error, retryInMs) => this.logger.warn({ err: error.message, retryInMs }, 'could not record delivery attempts'),
      );
      for (const pending of batch) pending.resolve();
    } catch (error) {
      for (const pending of batch) pending.reject(error as Error);
    }
  }
}

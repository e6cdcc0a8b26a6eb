import { randomBytes } from 'node:crypto';
import type { mongo } from 'mongoose';
import type { Logger } from '../logger.js';
import { attemptDoc, type AttemptDoc, type AttemptRecord, type DeliveryDoc, type DeliveryStatus } from './model.js';
import type { DeliveryLog } from './log.js';
import { currentStatus } from './view.js';
import { Batcher, untilDone } from '../work.js';

const DUPLICATE_KEY = 11000;
/** Writes taken into one insertMany pair at most (a backlog is written in slices this big). */
const MAX_BATCH = 1000;

type Waiter<T> = { resolve(value: T): void; reject(error: Error): void };

/** What a delivery's state is folded from (see latestEntry). */
export type Entry = Pick<AttemptDoc, 'n' | 'at' | 'durationMs' | 'status' | 'queued'>;

type Pending =
  | ({ kind: 'deliveries'; docs: DeliveryDoc[] } & Waiter<Map<string, DeliveryStatus>>)
  | ({ kind: 'attempt'; doc: AttemptDoc } & Waiter<void>);

export interface AttemptWrite {
  deliveryId: string;
  webhookId: string;
  tenantId: string;
  attempt: AttemptRecord;
  /** The delivery's status after this attempt. */
  status: DeliveryStatus;
  nextAttemptAt: Date | null;
}

interface BulkWriteErrorLike {
  writeErrors?: { code: number; index: number }[] | { code: number; index: number };
}

/**
 * Writes of the dispatch path. Everything is an insert (deliveries at fan-out, one document per
 * attempt), gathered per turn of the event loop into at most two insertMany calls, and one write
 * runs at a time: FerretDB's SQLite backend has a single writer and answers a second concurrent
 * one with SQLITE_BUSY. Writes are retried while the database is unreachable; once the dispatcher
 * stops they reject, and the messages they belong to stay unacknowledged.
 */
export class DeliveryStore {
  /** Writes waiting for the one in progress; the next write takes all of them. */
  private queue: Pending[] = [];
  private writing = false;
  /** The driver's collections, typed by their documents (string ids): no mongoose casting on the hot path. */
  private readonly deliveries: mongo.Collection<DeliveryDoc>;
  private readonly attempts: mongo.Collection<AttemptDoc>;

  constructor(
    log: DeliveryLog,
    private readonly logger: Logger,
    private readonly stopped: () => boolean,
  ) {
    this.deliveries = log.deliveries.collection as unknown as mongo.Collection<DeliveryDoc>;
    this.attempts = log.attempts.collection as unknown as mongo.Collection<AttemptDoc>;
  }

  /**
   * Inserts the deliveries that do not exist yet. Resolves with the current status of those that
   * already did (a redelivered envelope), so the caller does not start a second chain of attempts.
   */
  insertIfAbsent(docs: DeliveryDoc[]): Promise<Map<string, DeliveryStatus>> {
    if (docs.length === 0) return Promise.resolve(new Map<string, DeliveryStatus>());
    return new Promise((resolve, reject) => this.push({ kind: 'deliveries', docs, resolve, reject }));
  }

  /** Stores one attempt (an insert; a repeated attempt after a crash is a second document). */
  record(write: AttemptWrite): Promise<void> {
    const doc = attemptDoc(write.attempt, {
      _id: `${write.deliveryId}.${write.attempt.n}.${randomBytes(4).toString('hex')}`,
      deliveryId: write.deliveryId,
      webhookId: write.webhookId,
      tenantId: write.tenantId,
      status: write.status,
      nextAttemptAt: write.nextAttemptAt,
    });
    return new Promise((resolve, reject) => this.push({ kind: 'attempt', doc, resolve, reject }));
  }

  private push(pending: Pending): void {
    this.queue.push(pending);
    if (!this.writing) {
      this.writing = true;
      // Let the rest of this turn's writes join the batch.
      setImmediate(() => void this.drain());
    }
  }

  /** One write at a time; everything that queued up meanwhile goes into the next one. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      await this.write(batch);
    }
    this.writing = false;
  }

  private async write(batch: Pending[]): Promise<void> {
    const retrying = (what: string) => (error: Error, retryInMs: number) =>
      this.logger.warn({ err: error.message, retryInMs }, `could not store ${what}`);
    const deliveryBatch = batch.filter((p) => p.kind === 'deliveries');
    const attemptBatch = batch.filter((p) => p.kind === 'attempt');
    if (deliveryBatch.length > 0) {
      try {
        const docs = deliveryBatch.flatMap((p) => p.docs);
        const duplicates = await untilDone(() => this.insertMany(docs), this.stopped, retrying('deliveries'));
        const existing =
          duplicates.length === 0
            ? new Map<string, DeliveryStatus>()
            : await untilDone(() => this.statusOf(duplicates), this.stopped, retrying('deliveries (reading)'));
        for (const pending of deliveryBatch) pending.resolve(existing);
      } catch (error) {
        for (const pending of deliveryBatch) pending.reject(error as Error);
      }
    }
    if (attemptBatch.length > 0) {
      try {
        const docs = attemptBatch.map((p) => p.doc);
        await untilDone(
          () => this.attempts.insertMany(docs, { ordered: false }).catch(ignoreDuplicates),
          this.stopped,
          retrying('delivery attempts'),
        );
        for (const pending of attemptBatch) pending.resolve();
      } catch (error) {
        for (const pending of attemptBatch) pending.reject(error as Error);
      }
    }
  }

  /** The ids that already existed. */
  private async insertMany(docs: DeliveryDoc[]): Promise<string[]> {
    try {
      await this.deliveries.insertMany(docs, { ordered: false });
      return [];
    } catch (error) {
      return duplicateIndexes(error).map((i) => docs[i]!._id);
    }
  }

  /** Each existing delivery's status: that of its latest attempt, else `pending`. */
  private async statusOf(ids: string[]): Promise<Map<string, DeliveryStatus>> {
    const entries = await this.entriesOf(ids);
    return new Map([...entries].map(([id, list]) => [id, currentStatus(list)]));
  }

  /** The attempts and replay marks of these deliveries (what their state is folded from), by id. */
  private async entriesOf(ids: readonly string[]): Promise<Map<string, Entry[]>> {
    const byDelivery = new Map<string, Entry[]>(ids.map((id) => [id, []]));
    const found = await this.attempts
      .find(
        { deliveryId: { $in: [...ids] } },
        { projection: { deliveryId: 1, n: 1, at: 1, durationMs: 1, status: 1, queued: 1 } },
      )
      .toArray();
    for (const entry of found) byDelivery.get(entry.deliveryId)?.push(entry);
    return byDelivery;
  }

  /**
   * A delivery's attempts so far, read for many deliveries at once: the deliveries a turn of the
   * event loop asks about share one query (retries arrive in bursts after an outage).
   */
  attemptsSoFar(deliveryId: string): Promise<Entry[]> {
    return new Promise((resolve, reject) => this.reads.push({ deliveryId, resolve, reject }));
  }

  private readonly reads = new Batcher<{ deliveryId: string } & Waiter<Entry[]>>((batch) => {
    const ids = [...new Set(batch.map((r) => r.deliveryId))];
    untilDone(
      () => this.entriesOf(ids),
      this.stopped,
      (error, retryInMs) => this.logger.warn({ err: error.message, retryInMs }, 'could not read delivery attempts'),
    ).then(
      (entries) => batch.forEach((r) => r.resolve(entries.get(r.deliveryId) ?? [])),
      (error: Error) => batch.forEach((r) => r.reject(error)),
    );
  });
}

/** The indexes of the documents refused as duplicates; rethrows any other failure. */
function duplicateIndexes(error: unknown): number[] {
  const { writeErrors } = error as BulkWriteErrorLike;
  const errors = writeErrors === undefined ? [] : Array.isArray(writeErrors) ? writeErrors : [writeErrors];
  if (errors.length === 0 || errors.some((e) => e.code !== DUPLICATE_KEY)) throw error;
  return errors.map((e) => e.index);
}

/** A retried insertMany may find some of its documents already written by the failed try. */
function ignoreDuplicates(error: unknown): void {
  duplicateIndexes(error);
}

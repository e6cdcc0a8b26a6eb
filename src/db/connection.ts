import mongoose, { type Connection } from 'mongoose';
import { setTimeout as sleep } from 'node:timers/promises';
import { within, type Dependency } from '../health.js';
import { redactUrl, type Logger } from '../logger.js';

export interface DatabaseOptions {
  uri: string;
  logger: Logger;
  /** How long one connect attempt or operation waits for a server. */
  serverSelectionTimeoutMs?: number;
  reconnectSeconds?: number;
  maxReconnectSeconds?: number;
}

/**
 * The MongoDB connection of one process. The driver reconnects a lost connection by itself; the
 * first connect is retried here with exponential backoff, so hookbus starts (and answers /readyz
 * with 503) while MongoDB is still down.
 */
export class Database implements Dependency {
  readonly name = 'mongodb';
  readonly connection: Connection;
  private closed = false;
  private opening: Promise<void> | undefined;
  private readonly stopRetrying = new AbortController();

  constructor(private readonly options: DatabaseOptions) {
    this.connection = mongoose.createConnection();
    const { logger } = options;
    this.connection.on('connected', () => {
      logger.info({ uri: redactUrl(options.uri) }, 'mongodb connected');
      void this.ensureIndexes();
    });
    this.connection.on('disconnected', () => {
      if (!this.closed) logger.warn('mongodb connection lost; reconnecting');
    });
    this.connection.on('reconnected', () => logger.info('mongodb reconnected'));
    // Without a listener, a driver error event would crash the process.
    this.connection.on('error', (err: Error) => logger.warn({ err: err.message }, 'mongodb error'));
  }

  /** Starts connecting; resolves at once. `ready()` resolves when the first connect succeeded. */
  connect(): void {
    this.opening ??= this.openWithRetry();
  }

  async ready(): Promise<void> {
    this.connect();
    await this.opening;
  }

  private async openWithRetry(): Promise<void> {
    const base = (this.options.reconnectSeconds ?? 0.5) * 1000;
    const max = (this.options.maxReconnectSeconds ?? 30) * 1000;
    for (let wait = base; !this.closed; wait = Math.min(max, wait * 2)) {
      try {
        await this.connection.openUri(this.options.uri, {
          serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMs ?? 2000,
          heartbeatFrequencyMS: 2000,
          // Mongoose's own index build runs once, when a model is compiled, and with
          // bufferCommands off it fails silently if the connection is not open yet: see ensureIndexes.
          autoIndex: false,
          // Fail at once while disconnected (a 503 now) rather than queue for up to 10 s.
          bufferCommands: false,
        });
        return;
      } catch (error) {
        if (this.closed) return;
        this.options.logger.warn({ err: (error as Error).message, retryInMs: wait }, 'mongodb connect failed');
        try {
          await sleep(wait, undefined, { signal: this.stopRetrying.signal });
        } catch {
          return; // close() was called
        }
      }
    }
  }

  /** True once close() was called: nothing should wait for this connection any more. */
  isClosed(): boolean {
    return this.closed;
  }

  async check(): Promise<boolean> {
    const db = this.connection.db;
    if (this.connection.readyState !== mongoose.ConnectionStates.connected || !db) return false;
    return within(
      db.command({ ping: 1 }).then(() => true),
      1000,
      false,
    );
  }

  /**
   * Makes every compiled model's indexes exactly those of its schema (mongoose's syncIndexes: builds
   * missing ones, drops ones no schema declares any more). Runs on each connect, and once the
   * roles have compiled their models (startApp); one run at a time, and a failed run is retried
   * with backoff while connected. Resolves when a run has succeeded or the connection is gone.
   */
  ensureIndexes(): Promise<void> {
    // A call during a run (models compiled since it began) makes one more run after it.
    this.indexAgain = this.indexing !== undefined;
    this.indexing ??= (async () => {
      do {
        this.indexAgain = false;
        await this.syncIndexes();
      } while (this.indexAgain && !this.closed);
    })().finally(() => (this.indexing = undefined));
    return this.indexing;
  }

  private indexing: Promise<void> | undefined;
  private indexAgain = false;

  private async syncIndexes(): Promise<void> {
    for (let wait = 1000; !this.closed; wait = Math.min(30_000, wait * 2)) {
      if (this.connection.readyState !== mongoose.ConnectionStates.connected) return;
      const failed: string[] = [];
      for (const model of Object.values(this.connection.models)) {
        try {
          const dropped = await model.syncIndexes();
          if (dropped.length > 0) {
            this.options.logger.info({ collection: model.collection.collectionName, dropped }, 'dropped old indexes');
          }
        } catch (error) {
          failed.push(model.collection.collectionName);
          this.options.logger.error(
            { err: (error as Error).message, collection: model.collection.collectionName, retryInMs: wait },
            'could not build indexes',
          );
        }
      }
      if (failed.length === 0) return;
      await sleep(wait, undefined, { signal: this.stopRetrying.signal }).catch(() => undefined);
    }
  }

  /** Stops retrying and closes at once; does not wait for an operation the server never answers. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopRetrying.abort();
    await this.connection.close(true);
  }
}

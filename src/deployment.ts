import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel, ConfirmChannel, Options } from 'amqplib';
import { Schema, type Connection } from 'mongoose';
import { ulid } from 'ulid';
import type { Bus, Topology } from './bus/connection.js';
import type { Database } from './db/connection.js';
import { within } from './health.js';
import type { Logger } from './logger.js';

/** The one document of the `deployment` collection. */
export interface DeploymentRecord {
  _id: 'deployment';
  deploymentId: string;
  createdAt: Date;
}

const schema = new Schema<DeploymentRecord>(
  { _id: String, deploymentId: { type: String, required: true }, createdAt: { type: Date, required: true } },
  { collection: 'deployment', versionKey: false },
);

export const deploymentModel = (connection: Connection) => connection.model<DeploymentRecord>('Deployment', schema);

/** The document a deployment's first start stores (a benchmark stores one before hookbus starts). */
export const newDeployment = (): DeploymentRecord => ({
  _id: 'deployment',
  deploymentId: `dep_${ulid()}`,
  createdAt: new Date(),
});

const DUPLICATE_KEY = 11000;
/** How long a refused process waits for its other setups before it gives the marker back. */
const SETTLE_MS = 2000;
const RETRY_MS = 1000;
/** A read of the id gets this long: a connection that went silent must not hold every channel. */
const READ_TIMEOUT_MS = 2000;

/**
 * Another deployment's queue: the broker refused to declare it as this deployment's. The message
 * is the one line an operator needs.
 */
export class DeploymentConflict extends Error {
  override name = 'DeploymentConflict';
  constructor(
    message: string,
    /** The queue the broker refused. */
    readonly queue: string,
  ) {
    super(message);
  }
}

export interface DeploymentOptions {
  db: Database;
  bus: Bus;
  logger: Logger;
  /** DISPATCH_QUEUE_PREFIX: the deployment's queues are named by it, and its marker queue. */
  prefix: string;
  onConflict: (conflict: DeploymentConflict) => void;
}

/**
 * The deployment this process belongs to: a database's id, made on its first start (an insert of
 * a fixed `_id`, so replicas starting together agree on one) and the same for every replica after.
 * Every queue hookbus declares carries it (see QueueOwner), starting with the prefix's marker
 * queue `<prefix>.deployment`, which every process of every role declares before anything else:
 * a second deployment given one DISPATCH_QUEUE_PREFIX on one broker is refused by the broker.
 */
export class Deployment {
  private id: Promise<string> | undefined;
  private resolved = false;

  constructor(private readonly options: DeploymentOptions) {}

  /** Resolves once MongoDB has answered; waits (retrying) while it is unreachable. */
  deploymentId(): Promise<string> {
    this.id ??= this.readOrCreate().then((id) => {
      this.resolved = true;
      return id;
    });
    return this.id;
  }

  /** True once the id has been read: until then no channel can declare anything. */
  isKnown(): boolean {
    return this.resolved;
  }

  /**
   * A topology declared as this deployment's: it waits for the id and claims the prefix's marker
   * queue first; a queue the broker holds for another deployment is reported to onConflict (the
   * process refuses to go on) and fails the setup.
   */
  topology(build: (owner: QueueOwner) => Topology): Topology {
    const marker = `${this.options.prefix}.deployment`;
    const declareAll = (owner: QueueOwner) => async (channel: ConfirmChannel) => {
      // Refused meanwhile: the marker this process may be giving back must not be claimed again.
      if (this.conflict) throw this.conflict;
      await owner.declare(channel, marker, { durable: true, deadLetterExchange: '' });
      await build(owner)(channel);
    };
    // The first run learns the queues an older hookbus declared on throwaway channels, before
    // the channel that stays: a refusal would close it, and the bus reconnects to recover.
    let learnt = false;
    return async (channel) => {
      const { prefix, logger } = this.options;
      const owner = new QueueOwner(prefix, await this.deploymentId(), this.legacy, logger);
      if (this.conflict) throw this.conflict;
      this.declaring++;
      try {
        if (!learnt) await this.learnLegacy(declareAll, owner);
        learnt = true;
        await declareAll(owner)(channel);
      } catch (error) {
        // A legacy queue that appeared since: learn again on the next run (the bus reconnects).
        if (error instanceof LegacyQueue) learnt = false;
        throw await this.refused(error as Error, marker);
      } finally {
        this.declaring--;
      }
    };
  }

  /** The first conflict found: from then on this process declares nothing. */
  private conflict: DeploymentConflict | undefined;
  /** Setups declaring right now. */
  private declaring = 0;

  /**
   * Reports a conflict to onConflict, once. A conflict found past the marker means the marker was
   * missing and this process claimed it for the wrong deployment: once its other setups have
   * settled (one may be declaring the marker), it is deleted again, so the deployment that holds
   * the queues can go on.
   */
  private async refused(error: Error, marker: string): Promise<Error> {
    if (!(error instanceof DeploymentConflict) || this.conflict) return error;
    this.conflict = error;
    if (error.queue !== marker) {
      for (let waited = 0; this.declaring > 1 && waited < SETTLE_MS; waited += 10) await sleep(10);
      await this.giveBack(marker);
    }
    this.options.onConflict(error);
    return error;
  }

  /** Deletes the marker this process claimed by mistake; says so when it cannot. */
  private async giveBack(marker: string): Promise<void> {
    const connection = this.options.bus.manager.connection;
    const given = connection
      ? connection.createChannel().then(async (channel) => {
          channel.on('error', () => undefined); // a refused delete: reported by the call itself
          await channel.deleteQueue(marker, { ifEmpty: true });
          closeSoon(channel);
          return true;
        })
      : Promise.resolve(false);
    if (
      !(await within(
        given.catch(() => false),
        SETTLE_MS,
        false,
      ))
    ) {
      this.options.logger.warn(
        { queue: marker },
        'could not give back the marker queue this process claimed by mistake',
      );
    }
  }

  /** Queues an older hookbus declared (no deployment id): used as they stand. */
  private readonly legacy = new Set<string>();

  /** Runs the declarations once more on throwaway channels, learning every legacy queue. */
  private async learnLegacy(declareAll: (owner: QueueOwner) => Topology, owner: QueueOwner): Promise<void> {
    const connection = this.options.bus.manager.connection;
    if (!connection) return;
    const open = async () => {
      const channel = await connection.createConfirmChannel();
      channel.on('error', () => undefined); // a refused declaration: reported by the call itself
      return channel;
    };
    // One pass: each queue is tried on a throwaway channel of its own first, so a refusal costs
    // only that channel and the pass goes on.
    const channel = await open();
    try {
      await declareAll(owner.probing(open))(channel);
    } finally {
      closeSoon(channel);
    }
  }

  private async readOrCreate(): Promise<string> {
    const { db, logger } = this.options;
    const model = deploymentModel(db.connection);
    while (!db.isClosed()) {
      try {
        await db.ready();
        const read: Promise<DeploymentRecord | null> = model.findById('deployment').lean().exec();
        const found = await within<DeploymentRecord | null | 'timeout'>(read, READ_TIMEOUT_MS, 'timeout');
        if (found === 'timeout') throw new Error(`no answer from MongoDB within ${READ_TIMEOUT_MS} ms`);
        if (found) return found.deploymentId;
        const { deploymentId } = await model.create(newDeployment());
        logger.info({ deploymentId }, 'first start of this deployment: its id is stored in MongoDB');
        return deploymentId;
      } catch (error) {
        // Another replica's first start inserted it first: read theirs.
        if ((error as { code?: number }).code === DUPLICATE_KEY) continue;
        if (db.isClosed()) break;
        logger.warn({ err: (error as Error).message, retryInMs: RETRY_MS }, 'could not read the deployment id');
        await sleep(RETRY_MS, undefined, { ref: false });
      }
    }
    throw new Error('the database was closed before the deployment id was read');
  }
}

/**
 * The broker compares only the arguments it knows on a redeclare, and ignores others: the id
 * rides in `x-dead-letter-routing-key`, so a queue declared by another deployment is refused by
 * the broker itself. Messages the broker dead-letters carry it as their routing key.
 */
export const deploymentRoutingKey = (deploymentId: string) => `deployment.${deploymentId}`;

/** RabbitMQ's words: `inequivalent arg 'x-…' for queue '…' in vhost '…': received … but current is …`. */
const INEQUIVALENT = /inequivalent arg '([^']+)' for queue .* but current is (.*)$/;
const OWNER_ID = /'deployment\.([^']+)'/;
/** What an older hookbus's queues hold where the id goes: nothing, or its retry queues' key. */
const LEGACY_VALUES = /^(none|'delivery')"?$/;

type QueueOptions = Options.AssertQueue & { deadLetterExchange: string };

/** Closes a throwaway channel without waiting: a close the broker never confirms must not hold anything. */
const closeSoon = (channel: Channel) => void channel.close().catch(() => undefined);

/** A queue an older hookbus declared: recorded, and the declaration is made again. */
class LegacyQueue extends Error {
  override name = 'LegacyQueue';
}

/**
 * Declares queues as one deployment's. A queue another deployment holds is a DeploymentConflict;
 * one declared before deployments had ids (no id, or an older hookbus's arguments) is a
 * LegacyQueue the first time, recorded with a warning, and used as it stands after that (the
 * marker queue guards its prefix).
 */
export class QueueOwner {
  constructor(
    readonly prefix: string,
    readonly deploymentId: string,
    private readonly legacy: Set<string>,
    private readonly logger: Logger,
    /** When set, each queue is first tried on a channel of this function's (see learnLegacy). */
    private readonly probe?: () => Promise<Channel>,
  ) {}

  /** The same owner, trying each queue on a throwaway channel first: legacy ones are learnt, not thrown. */
  probing(open: () => Promise<Channel>): QueueOwner {
    return new QueueOwner(this.prefix, this.deploymentId, this.legacy, this.logger, open);
  }

  /** `deadLetterExchange`: where the broker dead-letters its messages (`''`: dropped, no queue has the key's name). */
  async declare(channel: Channel, queue: string, options: QueueOptions): Promise<void> {
    if (this.probe && !this.legacy.has(queue)) await this.learn(this.probe, queue, options);
    await this.declareOn(channel, queue, options);
  }

  /** Tries the queue on a throwaway channel: a legacy one is recorded instead of failing the pass. */
  private async learn(probe: () => Promise<Channel>, queue: string, options: QueueOptions): Promise<void> {
    const channel = await probe();
    try {
      await this.declareOn(channel, queue, options);
    } catch (error) {
      if (!(error instanceof LegacyQueue)) throw error;
    } finally {
      closeSoon(channel);
    }
  }

  private async declareOn(channel: Channel, queue: string, options: QueueOptions): Promise<void> {
    if (this.legacy.has(queue)) {
      // Deleted since (a 404 closes the channel): the next setup declares it with the id.
      await channel.checkQueue(queue).catch((error: Error) => {
        this.legacy.delete(queue);
        throw error;
      });
      return;
    }
    try {
      await channel.assertQueue(queue, { ...options, deadLetterRoutingKey: deploymentRoutingKey(this.deploymentId) });
    } catch (error) {
      throw this.refusal(queue, error as Error);
    }
  }

  /**
   * What a refused declaration means. Another deployment's id: a conflict. A dead-letter argument
   * an older hookbus set or left out (no id), on any queue but the marker: a legacy queue.
   * Anything else: the broker's own error.
   */
  private refusal(queue: string, error: Error): Error {
    const refused = INEQUIVALENT.exec(error.message);
    if (!refused) return error;
    const [, argument, current] = refused as unknown as [string, string, string];
    const other = OWNER_ID.exec(current)?.[1];
    if (other !== undefined) return this.conflict(queue, other);
    if (queue === `${this.prefix}.deployment`) {
      return new DeploymentConflict(
        `queue ${queue} exists without this deployment's id (made by hand?), so DISPATCH_QUEUE_PREFIX ` +
          `${this.prefix} cannot be guarded: delete that queue`,
        queue,
      );
    }
    if (!argument.startsWith('x-dead-letter-') || !LEGACY_VALUES.test(current)) return error;
    this.legacy.add(queue);
    this.logger.warn(
      { queue, deploymentId: this.deploymentId },
      `queue declared before deployment ids, used as it is; the ${this.prefix}.deployment queue guards the prefix`,
    );
    return new LegacyQueue(queue);
  }

  private conflict(queue: string, other: string): DeploymentConflict {
    return new DeploymentConflict(
      `DISPATCH_QUEUE_PREFIX ${this.prefix} belongs to deployment ${other} (queue ${queue}), but this ` +
        `database's deployment is ${this.deploymentId}: give each deployment its own DISPATCH_QUEUE_PREFIX ` +
        `(two on one prefix would take each other's events)`,
      queue,
    );
  }
}

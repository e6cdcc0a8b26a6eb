import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfirmChannel, Options } from 'amqplib';
import { Schema, type Connection } from 'mongoose';
import { ulid } from 'ulid';
import type { Topology } from './bus/connection.js';
import type { Database } from './db/connection.js';
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
const RETRY_MS = 1000;

/** Who owns a queue: the deployment, and the prefix its queues are named by. */
export interface QueueOwner {
  prefix: string;
  deploymentId: string;
}

/**
 * Another deployment's queue, or one declared before deployments had ids: the broker refused to
 * declare it as this deployment's. The message is the one line an operator needs.
 */
export class DeploymentConflict extends Error {
  override name = 'DeploymentConflict';
}

/**
 * The deployment this process belongs to: a database's id, made on its first start (an insert
 * of a fixed `_id`, so replicas starting together agree on one) and the same for every replica
 * after. Every queue hookbus declares carries it, so two deployments given one
 * DISPATCH_QUEUE_PREFIX on one broker cannot share queues: the second is refused at start-up.
 */
export class Deployment {
  private id: Promise<string> | undefined;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
    private readonly onConflict: (conflict: DeploymentConflict) => void,
  ) {}

  /** Resolves once MongoDB has answered; waits (retrying) while it is unreachable. */
  deploymentId(): Promise<string> {
    this.id ??= this.readOrCreate();
    return this.id;
  }

  /**
   * A topology declared as this deployment's: it waits for the id, and a queue the broker refuses
   * as another deployment's is reported to onConflict (the process refuses to go on).
   */
  topology(build: (deploymentId: string) => Topology): Topology {
    return async (channel) => {
      try {
        await build(await this.deploymentId())(channel);
      } catch (error) {
        if (error instanceof DeploymentConflict) this.onConflict(error);
        throw error;
      }
    };
  }

  private async readOrCreate(): Promise<string> {
    const model = deploymentModel(this.db.connection);
    while (!this.db.isClosed()) {
      try {
        await this.db.ready();
        const found = await model.findById('deployment').lean();
        if (found) return found.deploymentId;
        const { deploymentId } = await model.create(newDeployment());
        this.logger.info({ deploymentId }, 'first start of this deployment: its id is stored in MongoDB');
        return deploymentId;
      } catch (error) {
        // Another replica's first start inserted it first: read theirs.
        if ((error as { code?: number }).code === DUPLICATE_KEY) continue;
        this.logger.warn({ err: (error as Error).message, retryInMs: RETRY_MS }, 'could not read the deployment id');
        await sleep(RETRY_MS, undefined, { ref: false });
      }
    }
    throw new Error('the database was closed before the deployment id was read');
  }
}

/**
 * The broker compares only the arguments it knows on a redeclare, and ignores others: the id
 * rides in `x-dead-letter-routing-key`, so a queue declared by another deployment (or without an
 * id) is refused by the broker itself. Messages the broker dead-letters carry it as their key.
 */
export const deploymentRoutingKey = (deploymentId: string) => `deployment.${deploymentId}`;

/**
 * Declares a queue as the owner's. `deadLetterExchange` is where the broker dead-letters its
 * messages (`''` with no queue named by the routing key: dropped, as with no dead-lettering).
 */
export async function declareOwnedQueue(
  channel: ConfirmChannel,
  queue: string,
  options: Options.AssertQueue & { deadLetterExchange: string },
  owner: QueueOwner,
): Promise<void> {
  try {
    await channel.assertQueue(queue, { ...options, deadLetterRoutingKey: deploymentRoutingKey(owner.deploymentId) });
  } catch (error) {
    throw conflictOf(error as Error, queue, owner) ?? error;
  }
}

/** RabbitMQ's words: `inequivalent arg 'x-…' for queue '…' in vhost '…': received … but current is …`. */
const INEQUIVALENT = /inequivalent arg 'x-dead-letter-(?:routing-key|exchange)'.*but current is (.*?)"?$/;
const CURRENT_ID = /^'deployment\.([^']+)'$/;

function conflictOf(error: Error, queue: string, owner: QueueOwner): DeploymentConflict | undefined {
  const current = INEQUIVALENT.exec(error.message)?.[1];
  if (current === undefined) return undefined;
  const other = CURRENT_ID.exec(current)?.[1];
  const ours = `this database's deployment is ${owner.deploymentId}`;
  return new DeploymentConflict(
    other === undefined
      ? `queue ${queue} (DISPATCH_QUEUE_PREFIX ${owner.prefix}) was declared without a deployment id (by an ` +
          `older hookbus, or by hand) and ${ours}: drain and delete the prefix's queues, or give this ` +
          `deployment its own DISPATCH_QUEUE_PREFIX`
      : `DISPATCH_QUEUE_PREFIX ${owner.prefix} belongs to deployment ${other} (queue ${queue}), but ${ours}: ` +
          `give each deployment its own DISPATCH_QUEUE_PREFIX (two on one prefix would take each other's events)`,
  );
}

import type { Channel } from 'amqplib';
import type { Topology } from '../bus/connection.js';
import type { Binding } from '../config/index.js';
import { deploymentRoutingKey, type QueueOwner } from '../deployment.js';

/** Routing key of delivery messages on the deliveries exchange. */
export const DELIVERY_KEY = 'delivery';

/**
 * The dispatcher's own exchanges and queues (SPEC §5.2). Every name starts with the prefix
 * (`DISPATCH_QUEUE_PREFIX`, default `hookbus`): replicas that share the work share it.
 */
export interface DispatchNames {
  /** DISPATCH_QUEUE_PREFIX: every name below starts with it. */
  prefix: string;
  /** Durable queue of envelopes, bound per DISPATCH_BINDINGS; consumed by the fan-out stage. */
  fanOutQueue: string;
  /** Direct exchange and queue of delivery messages; consumed by the attempt stage. */
  deliveries: string;
  /** Fanout exchange and queue for messages that are not envelopes. */
  dead: string;
  /** Topic exchange of envelopes published through `POST /api/events` (and by other services). */
  events: string;
  /** Fanout exchange of cache invalidations between the deployment's processes. */
  control: string;
  /** Delay queue for a wait of `ms`: its messages dead-letter back to the deliveries exchange. */
  retryQueue(ms: number): string;
}

export function dispatchNames(prefix: string): DispatchNames {
  return {
    prefix,
    fanOutQueue: `${prefix}.dispatch`,
    deliveries: `${prefix}.deliveries`,
    dead: `${prefix}.dead`,
    events: `${prefix}.events`,
    control: `${prefix}.control`,
    retryQueue: (ms) => `${prefix}.retry.${ms}`,
  };
}

/** The distinct waits of a retry schedule, shortest first: one delay queue each. */
export const retrySteps = (schedule: readonly number[]): number[] => [...new Set(schedule)].sort((a, b) => a - b);

/** Longest a delivery over the in-flight cap waits on the broker before it is tried again. */
const MAX_PARK_MS = 1000;

/** The delay queue a delivery over the in-flight cap waits in: the shortest step, at most 1 s. */
export const parkDelay = (schedule: readonly number[]): number => Math.min(MAX_PARK_MS, retrySteps(schedule)[0]!);

/** Every delay queue: one per step of the schedule, and the one for deliveries over the cap. */
export const delayQueues = (schedule: readonly number[]): number[] => retrySteps([...schedule, parkDelay(schedule)]);

/**
 * Declares the dispatch topology, every queue as the deployment's (src/deployment.ts). The delay
 * is in each retry queue's name, so a new schedule declares new queues instead of failing on a
 * redeclare with another `x-message-ttl`.
 */
export function dispatchTopology(
  names: DispatchNames,
  bindings: readonly Binding[],
  schedule: readonly number[],
  owner: QueueOwner,
): Topology {
  const deliveries = deliveryTopology(names, schedule, owner);
  return async (channel) => {
    await declareFanOutQueue(channel, names, owner);
    // Its own events exchange always (POST /api/events publishes there, whatever the prefix), and
    // whatever DISPATCH_BINDINGS names (by default INBOUND_EXCHANGE's `event.#`).
    for (const { exchange, bindingKey } of [{ exchange: names.events, bindingKey: '#' }, ...bindings]) {
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.bindQueue(names.fanOutQueue, exchange, bindingKey);
    }
    await deliveries(channel);
    await channel.assertExchange(names.dead, 'fanout', { durable: true });
    // A dead letter an operator rejects is dropped, as before, not cycled back.
    await owner.declare(channel, names.dead, { durable: true, deadLetterExchange: '' });
    await channel.bindQueue(names.dead, names.dead, '');
  };
}

/**
 * The fan-out queue, as the deployment's (a benchmark pre-loads it before hookbus starts). What
 * the broker dead-letters from the work queues (a reject, never done today) is kept on `.dead`.
 */
export async function declareFanOutQueue(channel: Channel, names: DispatchNames, owner: QueueOwner) {
  await owner.declare(channel, names.fanOutQueue, { durable: true, deadLetterExchange: names.dead });
}

/**
 * What the API publishes to: the events exchange (`POST /api/events`), and the deliveries
 * exchange with its queue and delay queues (replays go through the durable retry path).
 */
export function apiTopology(names: DispatchNames, schedule: readonly number[], owner: QueueOwner): Topology {
  const deliveries = deliveryTopology(names, schedule, owner);
  return async (channel) => {
    await channel.assertExchange(names.events, 'topic', { durable: true });
    await deliveries(channel);
  };
}

/**
 * The deliveries exchange and queue, and one delay queue per retry step. A delay queue
 * dead-letters with the deployment's routing key, which the deliveries queue is bound by too.
 */
function deliveryTopology(names: DispatchNames, schedule: readonly number[], owner: QueueOwner): Topology {
  return async (channel) => {
    await channel.assertExchange(names.deliveries, 'direct', { durable: true });
    await owner.declare(channel, names.deliveries, { durable: true, deadLetterExchange: names.dead });
    await channel.bindQueue(names.deliveries, names.deliveries, DELIVERY_KEY);
    await channel.bindQueue(names.deliveries, names.deliveries, deploymentRoutingKey(owner.deploymentId));
    for (const ms of delayQueues(schedule)) {
      const delay = { durable: true, messageTtl: ms, deadLetterExchange: names.deliveries };
      await owner.declare(channel, names.retryQueue(ms), delay);
    }
  };
}

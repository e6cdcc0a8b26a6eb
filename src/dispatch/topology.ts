import type { Topology } from '../bus/connection.js';
import type { Binding } from '../config/index.js';

/** Routing key of delivery messages on the deliveries exchange. */
export const DELIVERY_KEY = 'delivery';

/**
 * The dispatcher's own exchanges and queues (SPEC §5.2). Every name starts with the prefix
 * (`DISPATCH_QUEUE_PREFIX`, default `hookbus`): replicas that share the work share it.
 */
export interface DispatchNames {
  /** Durable queue of envelopes, bound per DISPATCH_BINDINGS; consumed by the fan-out stage. */
  fanOutQueue: string;
  /** Direct exchange and queue of delivery messages; consumed by the attempt stage. */
  deliveries: string;
  /** Fanout exchange and queue for messages that are not envelopes. */
  dead: string;
  /** Topic exchange of envelopes published through `POST /api/events` (and by other services). */
  events: string;
  /** Delay queue for a wait of `ms`: its messages dead-letter back to the deliveries exchange. */
  retryQueue(ms: number): string;
}

export function dispatchNames(prefix: string): DispatchNames {
  return {
    fanOutQueue: `${prefix}.dispatch`,
    deliveries: `${prefix}.deliveries`,
    dead: `${prefix}.dead`,
    events: `${prefix}.events`,
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
 * Declares the dispatch topology. The delay is in each retry queue's name, so a new schedule
 * declares new queues instead of failing on a redeclare with another `x-message-ttl`.
 */
export function dispatchTopology(
  names: DispatchNames,
  bindings: readonly Binding[],
  schedule: readonly number[],
): Topology {
  const deliveries = deliveryTopology(names, schedule);
  return async (channel) => {
    await channel.assertQueue(names.fanOutQueue, { durable: true });
    // Its own events exchange always (POST /api/events publishes there, whatever the prefix), and
    // whatever DISPATCH_BINDINGS names (by default INBOUND_EXCHANGE's `event.#`).
    for (const { exchange, bindingKey } of [{ exchange: names.events, bindingKey: '#' }, ...bindings]) {
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.bindQueue(names.fanOutQueue, exchange, bindingKey);
    }
    await deliveries(channel);
    await channel.assertExchange(names.dead, 'fanout', { durable: true });
    await channel.assertQueue(names.dead, { durable: true });
    await channel.bindQueue(names.dead, names.dead, '');
  };
}

/**
 * What the API publishes to: the events exchange (`POST /api/events`), and the deliveries
 * exchange with its queue and delay queues (replays go through the durable retry path).
 */
export function apiTopology(names: DispatchNames, schedule: readonly number[]): Topology {
  const deliveries = deliveryTopology(names, schedule);
  return async (channel) => {
    await channel.assertExchange(names.events, 'topic', { durable: true });
    await deliveries(channel);
  };
}

/** The deliveries exchange and queue, and one delay queue per retry step. */
function deliveryTopology(names: DispatchNames, schedule: readonly number[]): Topology {
  return async (channel) => {
    await channel.assertExchange(names.deliveries, 'direct', { durable: true });
    await channel.assertQueue(names.deliveries, { durable: true });
    await channel.bindQueue(names.deliveries, names.deliveries, DELIVERY_KEY);
    for (const ms of delayQueues(schedule)) {
      await channel.assertQueue(names.retryQueue(ms), {
        durable: true,
        messageTtl: ms,
        deadLetterExchange: names.deliveries,
        deadLetterRoutingKey: DELIVERY_KEY,
      });
    }
  };
}

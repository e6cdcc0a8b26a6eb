import type { Channel, ConsumeMessage } from 'amqplib';
import type { BusChannel } from '../bus/connection.js';
import { within } from '../health.js';
import { DeliveryLog } from '../deliveries/log.js';
import { DeliveryLogRetention } from '../deliveries/retention.js';
import { DeliveryStore } from '../deliveries/store.js';
import { Sender } from '../dispatch/attempt.js';
import { Deliverer } from '../dispatch/deliver.js';
import { FanOut } from '../dispatch/fan-out.js';
import { SubscriptionCache } from '../dispatch/matching.js';
import { delayQueues, dispatchNames, dispatchTopology } from '../dispatch/topology.js';
import { subscriptionModel } from '../webhooks/model.js';
import { InFlight } from '../work.js';
import type { RoleContext, RunningRole } from './context.js';

/** How long a stop waits for fan-outs and attempts already under way. */
const DRAIN_MS = 3000;
/** The retry backlog is read from the broker at most this often. */
const BACKLOG_CACHE_MS = 1000;

/**
 * The dispatcher role: a fan-out consumer and an attempt consumer, each on its own channel with
 * DISPATCH_PREFETCH unacknowledged messages. Both consumers start again after every reconnect.
 */
export async function startDispatcher(ctx: RoleContext): Promise<RunningRole> {
  const { config, logger, metrics, db, bus, publisher, control, deployment } = ctx;
  const names = dispatchNames(config.dispatch.queuePrefix);
  // Stopping: no new message is taken (those that still arrive go back to the queue when the
  // channel closes) while work under way is finished. Aborted, after the drain period: work still
  // running gives up without acking, so its messages are redone after the restart.
  let stopping = false;
  let aborted = false;
  const stopped = () => aborted;
  const inFlight = new InFlight();
  const track = <T>(promise: Promise<T>) => inFlight.track(promise);

  const subscriptions = subscriptionModel(db.connection);
  const cache = new SubscriptionCache(subscriptions, logger);
  control.subscribe(cache);
  void cache.ready();
  const log = DeliveryLog.of(db.connection);
  const store = new DeliveryStore(log, logger, stopped);
  const retention = new DeliveryLogRetention({
    log,
    connection: db.connection,
    ...config.deliveryLog,
    interval: config.deliveryLog.cleanupInterval,
    logger,
    holder: bus.connectionName,
  });
  retention.start();
  const sender = new Sender(config.delivery.allowPrivateTargets);
  const closed = new WeakSet<Channel>();
  const isClosed = (channel: Channel) => closed.has(channel);
  const fanOut = new FanOut({ names, cache, store, publisher, metrics, logger, stopped, isClosed, track });
  const deliverer = new Deliverer({
    config,
    names,
    cache,
    store,
    sender,
    publisher,
    subscriptions,
    control,
    metrics,
    logger,
    stopped,
    isClosed,
    track,
  });

  // Every channel declares what it uses (idempotent): after a reconnect no channel may assume
  // another has already run its setup.
  const declare = deployment.topology((owner) =>
    dispatchTopology(names, config.dispatch.bindings, config.delivery.retrySchedule, owner),
  );
  const consumers: { channel: Channel; tag: string }[] = [];
  const consume = (name: string, queue: string, handle: (channel: Channel, message: ConsumeMessage) => void) =>
    bus.channel(name, async (channel) => {
      channel.once('close', () => closed.add(channel));
      await declare(channel);
      if (stopping) return;
      await channel.prefetch(config.dispatch.prefetch);
      const { consumerTag } = await channel.consume(queue, (message) => {
        // null: the broker cancelled the consumer (its queue was deleted, its node went away).
        // Closing the channel makes the bus reconnect and run this setup again.
        if (message === null) channel.close().catch(() => undefined);
        else if (!stopping) handle(channel, message);
      });
      consumers.push({ channel, tag: consumerTag });
      channel.once('close', () => consumers.splice(consumers.findIndex((c) => c.channel === channel) >>> 0, 1));
    });
  const channels: BusChannel[] = [
    consume('fan-out', names.fanOutQueue, (channel, message) => fanOut.receive(channel, message)),
    consume('deliveries', names.deliveries, (channel, message) => deliverer.receive(channel, message)),
  ];

  const retryQueues = delayQueues(config.delivery.retrySchedule);
  const stats = bus.channel('dispatch-stats', declare);
  let backlog = { at: 0, value: 0 };
  const readBacklog = async () => {
    let value = 0;
    for (const ms of retryQueues) value += (await stats.wrapper.checkQueue(names.retryQueue(ms))).messageCount;
    backlog = { at: Date.now(), value };
    return value;
  };
  // A scrape must not wait for a broker that is away: it gets the last figure read.
  metrics.setRetryBacklog(async () =>
    Date.now() - backlog.at < BACKLOG_CACHE_MS || !stats.isReady()
      ? backlog.value
      : within(readBacklog(), 500, backlog.value),
  );

  return {
    routers: [],
    fastRoutes: [],
    stop: async () => {
      stopping = true;
      deliverer.stopWaiting();
      const retained = retention.stop();
      // Bounded: with the broker unreachable a cancel would wait for the heartbeat timeout.
      await within(
        Promise.all(consumers.splice(0).map(({ channel, tag }) => channel.cancel(tag).catch(() => undefined))),
        1000,
        [],
      );
      if (
        !(await within(
          inFlight.settled().then(() => true),
          DRAIN_MS,
          false,
        ))
      ) {
        logger.warn({ running: inFlight.size }, 'dispatcher stopped with work still running; it will be redone');
      }
      aborted = true;
      cache.stop();
      await within(retained, 1000, undefined);
      // Each channel's close is awaited before the connection's, so its last acks reach the broker.
      await within(Promise.all([...channels, stats].map((c) => c.wrapper.close().catch(() => undefined))), 1000, []);
      sender.close();
    },
  };
}

import type { Channel, ConsumeMessage } from 'amqplib';
import { readDeliveryMessage, type DeliveryMessage } from '../deliveries/message.js';
import type { AttemptRecord } from '../deliveries/model.js';
import { Stopped } from '../work.js';
import { makeAttempt, type AttemptDeps, type AttemptOutcome } from './make-attempt.js';
import { Slots } from './slots.js';
import { ack, publishDead, publishDeliveryMessage, type StageOptions } from './stage.js';
import { parkDelay } from './topology.js';

/** An endpoint whose oldest running attempt is older than this is slow or hanging: not waited for. */
const HEALTHY_MS = 1000;

export type DelivererOptions = StageOptions & AttemptDeps;

/**
 * Stage 2: one HTTP attempt per delivery message. At most DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK
 * attempts run per subscription; a message over the cap waits for a slot in memory while the
 * endpoint answers (see Slots), else goes back to wait on the broker, so a hanging endpoint never
 * holds the consumer's prefetch. A message is acked only after its
 * attempt is recorded and, when another attempt is due, its retry message is confirmed.
 */
export class Deliverer {
  private readonly slots: Slots;

  constructor(private readonly options: DelivererOptions) {
    const { delivery, dispatch } = options.config;
    this.slots = new Slots({
      cap: delivery.maxInFlightPerWebhook,
      maxBusy: Math.floor(dispatch.prefetch / 2),
      maxWaitMs: parkDelay(delivery.retrySchedule),
      healthyMs: HEALTHY_MS,
    });
  }

  /** Stopping: deliveries waiting for a slot go back to the broker now, none starts to wait. */
  stopWaiting(): void {
    this.slots.stopWaiting();
  }

  receive(channel: Channel, message: ConsumeMessage): void {
    void this.options.track(this.handle(channel, message));
  }

  private async handle(channel: Channel, message: ConsumeMessage): Promise<void> {
    const { logger, metrics, stopped } = this.options;
    const received = { channel, message };
    // Once the broker has requeued the message, a retry published for it would start a second chain.
    const abandoned = () => stopped() || this.options.isClosed(channel);
    try {
      await this.deliver(readDeliveryMessage(message.content), abandoned);
      ack(received);
    } catch (error) {
      if (error instanceof Stopped || abandoned()) {
        if (!stopped()) logger.error({ err: (error as Error).message }, 'delivery failed; message left unacknowledged');
        return;
      }
      // Failed on its own (unreadable, or a fault of this one delivery): set aside, never retried in a loop.
      const reason = (error as Error).message;
      await publishDead(this.options, received, reason, abandoned).then(
        () => {
          ack(received);
          metrics.dispatchMessages.inc({ outcome: 'invalid' });
          logger.warn(
            { reason, messageId: message.properties.messageId },
            'delivery message sent to the dead-letter queue',
          );
        },
        () => undefined,
      );
    }
  }

  private async deliver(delivery: DeliveryMessage, abandoned: () => boolean): Promise<void> {
    const { config, cache, store } = this.options;
    const n = (delivery.offset ?? 0) + delivery.attempt;
    if (await this.moot(delivery)) return;
    const subscription = await cache.get(delivery.webhookId);
    if (!subscription || !subscription.record.enabled) {
      const why = subscription ? 'disabled' : 'deleted';
      await store.record({
        deliveryId: delivery.deliveryId,
        webhookId: delivery.webhookId,
        tenantId: delivery.tenantId,
        attempt: notAttempted(n, `not attempted: the subscription was ${why}`),
        status: 'failed',
        nextAttemptAt: null,
      });
      return;
    }
    const { record } = subscription;
    const release = await this.slots.acquire(record._id);
    if (!release) {
      await this.publishAfter(parkDelay(config.delivery.retrySchedule), delivery, abandoned);
      return;
    }
    if (abandoned()) {
      // The channel closed while it waited: the broker has the message back already.
      release(true);
      throw new Stopped('the channel closed while the delivery waited for a slot');
    }

    let outcome: AttemptOutcome;
    try {
      const order = {
        subscription: record,
        deliveryId: delivery.deliveryId,
        eventId: delivery.eventId,
        event: delivery.event,
        body: delivery.payload,
        offset: delivery.offset ?? 0,
        step: delivery.attempt,
        onAnswer: release,
      };
      outcome = await makeAttempt(this.options, order, (made) =>
        store.record({
          deliveryId: delivery.deliveryId,
          webhookId: record._id,
          tenantId: record.tenantId,
          attempt: made.record,
          status: made.status,
          nextAttemptAt: made.nextAttemptAt,
        }),
      );
    } finally {
      // Already released when the HTTP exchange ended; this covers a throw before it.
      release(false);
    }
    if (outcome.delayMs !== null) {
      await this.publishAfter(outcome.delayMs, { ...delivery, attempt: delivery.attempt + 1 }, abandoned);
    }
  }

  /**
   * A scheduled attempt (a retry, or a replay's chain) that no longer has a purpose: an operator's
   * retry succeeded meanwhile (an attempt numbered after the chain began), or the delivery was
   * deleted (by an operator or the purge, which only delete settled deliveries). It is dropped
   * without an attempt or a record. A chain's first attempt is never moot: nothing can have
   * happened to its delivery before it.
   */
  private async moot(delivery: DeliveryMessage): Promise<boolean> {
    const offset = delivery.offset ?? 0;
    if (delivery.attempt === 1 && offset === 0) return false;
    const entries = await this.options.store.attemptsSoFar(delivery.deliveryId);
    const why =
      entries.length === 0
        ? 'the delivery was deleted'
        : entries.some((e) => !e.queued && e.status === 'success' && e.n > offset)
          ? 'the delivery succeeded meanwhile'
          : null;
    if (why) this.options.logger.info({ deliveryId: delivery.deliveryId, why }, 'scheduled attempt dropped');
    return why !== null;
  }

  /** Puts a delivery message on the delay queue for `ms`; it comes back to the deliveries queue after. */
  private publishAfter(ms: number, delivery: DeliveryMessage, abandoned: () => boolean): Promise<void> {
    const to = { exchange: '', routingKey: this.options.names.retryQueue(ms) };
    return publishDeliveryMessage(this.options, to, delivery, abandoned);
  }
}

function notAttempted(n: number, error: string): AttemptRecord {
  return { n, at: new Date(), durationMs: 0, request: { headers: [] }, response: null, error };
}

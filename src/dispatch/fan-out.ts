import type { Channel, ConsumeMessage } from 'amqplib';
import { parseEnvelope } from '../envelope.js';
import { deliveryIdOf } from '../deliveries/ids.js';
import type { DeliveryMessage } from '../deliveries/message.js';
import type { DeliveryDoc } from '../deliveries/model.js';
import { ack, publishDead, publishDeliveryMessage, type Received, type StageOptions } from './stage.js';
import { DELIVERY_KEY } from './topology.js';
import { Batcher } from '../work.js';

/** Matching runs at most this long before other work (health checks, acks) gets a turn. */
const SLICE_MS = 5;

export type FanOutOptions = StageOptions;

type Outcome = { received: Received; outcome: 'dispatched' | 'no_subscribers' | 'invalid'; reason?: string };

/** What one envelope becomes: its deliveries and their messages. */
interface Plan {
  docs: DeliveryDoc[];
  /** With each message its payload encoded as JSON once, shared by the envelope's deliveries. */
  messages: { message: DeliveryMessage; payloadJson: Buffer }[];
}

/**
 * Stage 1: one delivery per matching subscription for each envelope. Envelopes that arrive
 * together are stored together; each is acked only after its deliveries are stored and their
 * delivery messages confirmed by the broker. An envelope that fails on its own (unreadable, too
 * large or deep, or anything thrown while matching it or building its deliveries) goes to
 * `hookbus.dead` on its own: it never holds up the envelopes it arrived with.
 */
export class FanOut {
  private readonly batcher = new Batcher<Received>((batch) => void this.options.track(this.process(batch)));

  private planning: Promise<unknown> = Promise.resolve();
  private sliceStart = 0;

  constructor(private readonly options: FanOutOptions) {}

  receive(channel: Channel, message: ConsumeMessage): void {
    this.batcher.push({ channel, message });
  }

  private async process(batch: Received[]): Promise<void> {
    const { cache, store, metrics, logger, stopped, isClosed } = this.options;
    // Publishing for envelopes the broker has already requeued would only duplicate work.
    const abandoned = () => stopped() || batch.every((r) => isClosed(r.channel));
    try {
      await cache.ready();
      // One batch is planned at a time: slices of concurrent batches would otherwise add up in one turn.
      const planned = this.planning.then(() => this.planAll(batch));
      // Chained without its value: a finished plan (payloads and all) must not outlive its batch.
      this.planning = planned.then(
        () => undefined,
        () => undefined,
      );
      const { docs, messages, outcomes } = await planned;
      const existing = await store.insertIfAbsent(docs);
      // A delivery that already exists came from an earlier copy of this envelope: only one
      // still `pending` may have lost its delivery message (a crash before the confirm).
      // Two copies of one envelope in a batch make one delivery message, not two.
      const unique = [...new Map(messages.map((m) => [m.message.deliveryId, m])).values()];
      const toSend = unique.filter((m) => (existing.get(m.message.deliveryId) ?? 'pending') === 'pending');
      await Promise.all([
        ...toSend.map(({ message, payloadJson }) =>
          publishDeliveryMessage(
            this.options,
            { exchange: this.options.names.deliveries, routingKey: DELIVERY_KEY },
            message,
            abandoned,
            payloadJson,
          ),
        ),
        ...outcomes
          .filter((o) => o.outcome === 'invalid')
          .map((o) => publishDead(this.options, o.received, o.reason!, abandoned)),
      ]);
      for (const { received, outcome, reason } of outcomes) {
        ack(received);
        metrics.dispatchMessages.inc({ outcome });
        if (reason)
          logger.warn(
            { reason, exchange: received.message.fields.exchange },
            'invalid envelope sent to the dead-letter queue',
          );
      }
    } catch (error) {
      // Only a stop ends the retries: the envelopes stay unacked and come back after a restart.
      if (!abandoned())
        logger.error({ err: (error as Error).message }, 'fan-out failed; envelopes left unacknowledged');
    }
  }

  /** Resolves at once within a slice; after SLICE_MS of work, on the next turn of the event loop. */
  private slice(): Promise<void> | void {
    if (performance.now() - this.sliceStart <= SLICE_MS) return;
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.sliceStart = performance.now();
    });
  }

  /** Each envelope planned on its own, one at a time; planning yields to the event loop every SLICE_MS. */
  private async planAll(batch: Received[]): Promise<Plan & { outcomes: Outcome[] }> {
    const now = new Date();
    const all: Plan & { outcomes: Outcome[] } = { docs: [], messages: [], outcomes: [] };
    for (const received of batch) {
      let plan: Plan;
      try {
        plan = await this.plan(received.message.content, now);
      } catch (error) {
        all.outcomes.push({ received, outcome: 'invalid', reason: (error as Error).message });
        continue;
      }
      all.docs.push(...plan.docs);
      all.messages.push(...plan.messages);
      all.outcomes.push({ received, outcome: plan.docs.length > 0 ? 'dispatched' : 'no_subscribers' });
    }
    return all;
  }

  /** The deliveries of one envelope; throws (with the reason it is dead-lettered for) when it has none to give. */
  private async plan(content: Buffer, now: Date): Promise<Plan> {
    await this.slice();
    const parsed = parseEnvelope(content);
    if (!parsed.ok) throw new Error(parsed.reason);
    const { envelope } = parsed;
    const input = { tenantId: envelope.tenantId, event: envelope.event, resourceKey: envelope.resourceKey ?? null };
    const matches = [];
    // One subscription at a time, so that a tenant with many costly patterns cannot hold the event loop either.
    for (const candidate of this.options.cache.candidates(input)) {
      await this.slice();
      if (candidate.matches(input)) matches.push(candidate);
    }
    const plan: Plan = { docs: [], messages: [] };
    // Each body is made once per envelope, however many subscriptions take it: exactly the bytes
    // received, the envelope as published or its `data` member as it stands there.
    const bodies = new Map<'data' | 'envelope', { text: string; json: Buffer }>();
    const bodyOf = (mode: 'data' | 'envelope') => {
      let body = bodies.get(mode);
      if (!body) {
        const text = (mode === 'data' ? parsed.data() : content).toString('utf8');
        body = { text, json: Buffer.from(JSON.stringify(text)) };
        bodies.set(mode, body);
      }
      return body;
    };
    for (const { record } of matches) {
      const deliveryId = deliveryIdOf(envelope.id, record._id);
      const body = bodyOf(record.payload);
      plan.docs.push({
        _id: deliveryId,
        webhookId: record._id,
        tenantId: record.tenantId,
        scope: record.scope,
        eventId: envelope.id,
        event: envelope.event,
        url: record.url,
        status: 'pending',
        payload: body.text,
        createdAt: now,
        updatedAt: now,
        nextAttemptAt: now,
      });
      plan.messages.push({
        message: {
          deliveryId,
          webhookId: record._id,
          tenantId: record.tenantId,
          eventId: envelope.id,
          event: envelope.event,
          attempt: 1,
          payload: body.text,
        },
        payloadJson: body.json,
      });
    }
    return plan;
  }
}

import type { Channel, ConsumeMessage } from 'amqplib';
import { z } from 'zod';
import { deliveryIdOf, type DeliveryDoc } from './deliveries.js';
import { ack, publishDeliveryMessage, type DeliveryMessage, type Received, type StageOptions } from './stage.js';
import { DELIVERY_KEY } from './topology.js';
import { Batcher, untilDone } from './work.js';

const CONFIRM_TIMEOUT_MS = 5000;
/** Well under MongoDB's 16 MiB document limit: a delivery stores the envelope as its payload. */
export const MAX_ENVELOPE_BYTES = 8 * 1024 * 1024;

/** The header that carries why a message went to `hookbus.dead`. */
export const DEAD_REASON_HEADER = 'x-hookbus-dead-reason';

const envelopeSchema = z.looseObject({
  id: z.string().min(1).max(200),
  event: z.string().min(1).max(255),
  tenantId: z.union([z.string().min(1).max(200), z.number()]).transform(String),
  resourceKey: z.string().nullable().optional(),
  data: z.unknown(),
});

type Parsed = { ok: true; envelope: z.infer<typeof envelopeSchema> } | { ok: false; reason: string };

/** Reads a message as an envelope (SPEC §4.2), or says in one line why it is not one. */
export function parseEnvelope(content: Buffer): Parsed {
  let json: unknown;
  try {
    json = JSON.parse(content.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const result = envelopeSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return { ok: false, reason: `not an envelope: ${issue.path.join('.') || 'message'} ${issue.message}` };
  }
  return { ok: true, envelope: result.data };
}

export type FanOutOptions = StageOptions;

/**
 * Stage 1: one delivery per matching subscription for each envelope. Envelopes that arrive
 * together are stored together; each is acked only after its deliveries are stored and their
 * delivery messages confirmed by the broker.
 */
export class FanOut {
  private readonly batcher = new Batcher<Received>((batch) => void this.options.track(this.process(batch)));
  private sequence = 0;

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
      const now = new Date();
      const docs: DeliveryDoc[] = [];
      const messages: DeliveryMessage[] = [];
      const outcomes: { received: Received; outcome: 'dispatched' | 'no_subscribers' | 'invalid'; reason?: string }[] =
        [];
      for (const received of batch) {
        const parsed =
          received.message.content.length > MAX_ENVELOPE_BYTES
            ? ({ ok: false, reason: `larger than ${MAX_ENVELOPE_BYTES} bytes` } as const)
            : parseEnvelope(received.message.content);
        if (!parsed.ok) {
          outcomes.push({ received, outcome: 'invalid', reason: parsed.reason });
          continue;
        }
        const { envelope } = parsed;
        const matches = cache.match({
          tenantId: envelope.tenantId,
          event: envelope.event,
          resourceKey: envelope.resourceKey ?? null,
        });
        outcomes.push({ received, outcome: matches.length > 0 ? 'dispatched' : 'no_subscribers' });
        for (const { record } of matches) {
          const deliveryId = deliveryIdOf(envelope.id, record._id);
          const payload =
            record.payload === 'data'
              ? JSON.stringify(envelope.data ?? null)
              : received.message.content.toString('utf8');
          docs.push({
            _id: deliveryId,
            webhookId: record._id,
            tenantId: record.tenantId,
            scope: record.scope,
            eventId: envelope.id,
            event: envelope.event,
            url: record.url,
            status: 'pending',
            payload,
            createdAt: now,
            updatedAt: now,
            nextAttemptAt: now,
          });
          messages.push({
            deliveryId,
            webhookId: record._id,
            tenantId: record.tenantId,
            eventId: envelope.id,
            event: envelope.event,
            attempt: 1,
            payload,
          });
        }
      }

      const existing = await store.insertIfAbsent(docs);
      // A delivery that already exists came from an earlier copy of this envelope: only one
      // still `pending` may have lost its delivery message (a crash before the confirm).
      // Two copies of one envelope in a batch make one delivery message, not two.
      const unique = [...new Map(messages.map((m) => [m.deliveryId, m])).values()];
      const toSend = unique.filter((m) => (existing.get(m.deliveryId) ?? 'pending') === 'pending');
      await Promise.all([
        ...toSend.map((m) =>
          publishDeliveryMessage(
            this.options,
            { exchange: this.options.names.deliveries, routingKey: DELIVERY_KEY },
            m,
            abandoned,
          ),
        ),
        ...outcomes
          .filter((o) => o.outcome === 'invalid')
          .map((o) => this.publishDead(o.received, o.reason!, abandoned)),
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

  private publishDead({ message }: Received, reason: string, abandoned: () => boolean): Promise<void> {
    const { names, publisher, logger } = this.options;
    // amqplib types message properties as any.
    const properties = message.properties as {
      contentType?: string;
      contentEncoding?: string;
      correlationId?: string;
      type?: string;
      appId?: string;
      timestamp?: number;
      messageId?: string;
      headers?: Record<string, unknown>;
    };
    return untilDone(
      () =>
        publisher.publish(
          names.dead,
          '',
          message.content,
          {
            contentType: properties.contentType,
            contentEncoding: properties.contentEncoding,
            correlationId: properties.correlationId,
            type: properties.type,
            appId: properties.appId,
            timestamp: properties.timestamp,
            messageId: `dead.${++this.sequence}`,
            headers: {
              ...properties.headers,
              'x-hookbus-original-message-id': properties.messageId,
              [DEAD_REASON_HEADER]: reason,
              'x-hookbus-original-exchange': message.fields.exchange,
              'x-hookbus-original-routing-key': message.fields.routingKey,
            },
            persistent: true,
            mandatory: true,
          },
          CONFIRM_TIMEOUT_MS,
        ),
      abandoned,
      (error, retryInMs) =>
        logger.warn({ err: error.message, retryInMs }, 'could not publish to the dead-letter queue'),
    );
  }
}

import type { Channel, ConsumeMessage } from 'amqplib';
import type { ConfirmPublisher } from '../bus/publisher.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { SubscriptionCache } from './matching.js';
import type { DeliveryStore } from '../deliveries/store.js';
import { encodeDeliveryMessage, type DeliveryMessage } from '../deliveries/message.js';
import type { DispatchNames } from './topology.js';
import { untilDone } from '../work.js';

const CONFIRM_TIMEOUT_MS = 5000;

export interface Received {
  channel: Channel;
  message: ConsumeMessage;
}

/** What both dispatch stages are given. */
export interface StageOptions {
  names: DispatchNames;
  cache: SubscriptionCache;
  store: DeliveryStore;
  publisher: ConfirmPublisher;
  metrics: Metrics;
  logger: Logger;
  /** True once a stop has given up waiting for work under way. */
  stopped: () => boolean;
  /** True once the channel a message came from has closed: the broker has requeued the message. */
  isClosed: (channel: Channel) => boolean;
  track: <T>(promise: Promise<T>) => Promise<T>;
}

let sequence = 0;

/**
 * Publishes a delivery message, persistent and mandatory, and waits for the broker's confirm;
 * retried until it is confirmed or `abandoned()` (the message it stands for is back on its queue).
 */
export function publishDeliveryMessage(
  { publisher, logger }: Pick<StageOptions, 'publisher' | 'logger'>,
  to: { exchange: string; routingKey: string },
  delivery: DeliveryMessage,
  abandoned: () => boolean,
  payloadJson?: Buffer,
): Promise<void> {
  const content = encodeDeliveryMessage(delivery, payloadJson);
  return untilDone(
    () =>
      publisher.publish(
        to.exchange,
        to.routingKey,
        content,
        {
          messageId: `${delivery.deliveryId}.${delivery.attempt}.${++sequence}`,
          contentType: 'application/json',
          persistent: true,
          mandatory: true,
        },
        CONFIRM_TIMEOUT_MS,
      ),
    abandoned,
    (error, retryInMs) =>
      logger.warn({ err: error.message, retryInMs, routingKey: to.routingKey }, 'could not publish a delivery message'),
  );
}

/** The header that carries why a message went to `hookbus.dead`. */
export const DEAD_REASON_HEADER = 'x-hookbus-dead-reason';

/**
 * Sets a message that cannot be processed aside on `hookbus.dead`, as it came, with the reason
 * in a header; retried until confirmed or `abandoned()`. The caller then acks it: it is never
 * redelivered in a loop, and never holds up the messages behind it.
 */
export function publishDead(
  { names, publisher, logger }: Pick<StageOptions, 'names' | 'publisher' | 'logger'>,
  { message }: Received,
  reason: string,
  abandoned: () => boolean,
): Promise<void> {
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
  const own = {
    'x-hookbus-original-message-id': properties.messageId,
    [DEAD_REASON_HEADER]: reason,
    'x-hookbus-original-exchange': message.fields.exchange,
    'x-hookbus-original-routing-key': message.fields.routingKey,
  };
  const options = (headers: Record<string, unknown>) => ({
    contentType: properties.contentType,
    contentEncoding: properties.contentEncoding,
    correlationId: properties.correlationId,
    type: properties.type,
    appId: properties.appId,
    timestamp: properties.timestamp,
    messageId: `dead.${++sequence}`,
    headers,
    persistent: true,
    mandatory: true,
  });
  let tries = 0;
  return untilDone(
    // The original headers go along on the first try only: should they be what fails (amqplib
    // cannot encode them, or they overflow its frame), the dead letter still goes, with hookbus's own.
    () =>
      publisher.publish(
        names.dead,
        '',
        message.content,
        options(tries++ === 0 ? { ...copiedHeaders(properties.headers), ...own } : own),
        CONFIRM_TIMEOUT_MS,
      ),
    abandoned,
    (error, retryInMs) => logger.warn({ err: error.message, retryInMs }, 'could not publish to the dead-letter queue'),
  );
}

/** What a dead letter takes of the original headers at most, so that they always fit amqplib's 64 KiB frame. */
const COPIED_HEADERS_BYTES = 16 * 1024;

/**
 * Header values copied onto a dead letter as they are: plain strings, finite numbers and booleans,
 * up to COPIED_HEADERS_BYTES. Anything else (tables, arrays, typed values) is carried as JSON text
 * in one header instead (or its size, when that is too long):
 * amqplib reads a decoded table with a `!` key as a type on re-encoding and throws, which would
 * keep the dead letter from ever being published.
 */
function copiedHeaders(headers: Record<string, unknown> = {}): Record<string, unknown> {
  const copied: Record<string, unknown> = {};
  const other: Record<string, unknown> = {};
  let budget = COPIED_HEADERS_BYTES;
  for (const [name, value] of Object.entries(headers)) {
    const plain =
      typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
    const size = Buffer.byteLength(name) + (typeof value === 'string' ? Buffer.byteLength(value) : 8);
    if (plain && size <= budget) {
      copied[name] = value;
      budget -= size;
    } else other[name] = value;
  }
  if (Object.keys(other).length > 0) {
    let text: string;
    try {
      text = JSON.stringify(other, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
    } catch {
      text = 'unreadable';
    }
    copied['x-hookbus-original-headers'] =
      Buffer.byteLength(text) <= budget ? text : `omitted: ${Buffer.byteLength(text)} bytes of JSON`;
  }
  return copied;
}

/** Acks on the channel the message came from; a closed channel has already returned it to the queue. */
export function ack({ channel, message }: Received): void {
  try {
    channel.ack(message);
  } catch {
    // The broker requeued it when the channel closed; it will be processed again (at-least-once).
  }
}

import { withRawMember } from '../json/raw.js';

/** What an attempt needs, carried in the delivery message so attempts never read MongoDB. */
export interface DeliveryMessage {
  deliveryId: string;
  webhookId: string;
  /** The subscription's tenant (a deleted subscription's attempts still need one). */
  tenantId: string;
  eventId: string;
  event: string;
  /** The attempt of this chain the message is for, from 1: the retry schedule counts these. */
  attempt: number;
  /**
   * Attempts made before this chain began (a replay starts a new chain with a fresh budget): the
   * attempt's number in the delivery log, and in `X-Hookbus-Attempt`, is offset + attempt.
   */
  offset?: number;
  /** The request body, exactly as stored in the delivery record. */
  payload: string;
}

/**
 * A delivery message as JSON. `payloadJson`, the payload already encoded as a JSON string, lets
 * the deliveries of one envelope share one encoding of a payload that may be megabytes long.
 */
export function encodeDeliveryMessage(delivery: DeliveryMessage, payloadJson?: Buffer): Buffer {
  const { payload, ...rest } = delivery;
  return withRawMember(rest, 'payload', payloadJson ?? Buffer.from(JSON.stringify(payload)));
}

/** A delivery message as published by a dispatch stage; throws with the reason it is not one. */
export function readDeliveryMessage(content: Buffer): DeliveryMessage {
  let delivery: Partial<DeliveryMessage> | null;
  try {
    delivery = JSON.parse(content.toString('utf8')) as Partial<DeliveryMessage> | null;
  } catch {
    throw new Error('not a delivery message: not JSON');
  }
  const fields = ['deliveryId', 'webhookId', 'tenantId', 'eventId', 'event', 'payload'] as const;
  const missing = fields.find((field) => typeof delivery?.[field] !== 'string');
  if (missing) throw new Error(`not a delivery message: ${missing} is not a string`);
  if (!Number.isSafeInteger(delivery!.attempt) || delivery!.attempt! < 1) {
    throw new Error('not a delivery message: attempt is not a whole number from 1');
  }
  if (delivery!.offset !== undefined && !Number.isSafeInteger(delivery!.offset)) {
    throw new Error('not a delivery message: offset is not a whole number');
  }
  return delivery as DeliveryMessage;
}

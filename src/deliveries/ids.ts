import { createHash, randomBytes } from 'node:crypto';

/** A delivery id: `msg_` + 26 base32 characters (see deliveryIdOf). */
export const DELIVERY_ID = /^msg_[a-z2-7]{26}$/;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32 (lower case, unpadded). */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * `msg_` + base32 of the first 128 bits of SHA-256(eventId, webhookId): the same envelope and
 * subscription always give the same delivery, so a redelivered envelope cannot duplicate one.
 */
export function deliveryIdOf(eventId: string, webhookId: string): string {
  const digest = createHash('sha256').update(eventId).update('\u0000').update(webhookId).digest();
  return `msg_${base32(digest.subarray(0, 16))}`;
}

/** A delivery id for a test send, which belongs to no envelope: same form, random. */
export const randomDeliveryId = (): string => `msg_${base32(randomBytes(16))}`;

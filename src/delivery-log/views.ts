import type { AttemptRecord, DeliveryRecord, HeaderPair } from '../deliveries/model.js';
import { withRawMember } from '../json/raw.js';

/** Headers as an object; a header sent more than once (set-cookie) becomes a list of its values. */
export function headersObject(pairs: readonly HeaderPair[]): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const { name, value } of pairs) {
    const seen = headers[name];
    headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return headers;
}

const iso = (date: Date | string | null) => (date === null ? null : new Date(date).toISOString());

/** One attempt as the API shows it (secrets were redacted before it was stored). */
export function attemptResponse(attempt: AttemptRecord) {
  return {
    n: attempt.n,
    at: iso(attempt.at),
    durationMs: attempt.durationMs,
    request: { headers: headersObject(attempt.request.headers) },
    response: attempt.response && {
      status: attempt.response.status,
      headers: headersObject(attempt.response.headers),
      body: attempt.response.body,
      bodyTruncated: attempt.response.bodyTruncated,
    },
    error: attempt.error,
  };
}

/**
 * The body as sent, byte for byte: JSON text is spliced into the answer as it is (never parsed
 * and re-encoded, which would turn 2.50 into 2.5); anything else (no delivery hookbus makes) as
 * a string.
 */
function payloadJson(text: string): Buffer {
  try {
    JSON.parse(text);
    return Buffer.from(text);
  } catch {
    return Buffer.from(JSON.stringify(text));
  }
}

const common = (delivery: DeliveryRecord) => ({
  id: delivery._id,
  webhookId: delivery.webhookId,
  eventId: delivery.eventId,
  event: delivery.event,
  url: delivery.url,
  status: delivery.status,
  createdAt: iso(delivery.createdAt),
  updatedAt: iso(delivery.updatedAt),
  nextAttemptAt: iso(delivery.nextAttemptAt),
});

/** A delivery with every attempt (SPEC §5.3), less its payload (see deliveryJson). */
export function deliveryResponse(delivery: DeliveryRecord) {
  return { ...common(delivery), attempts: delivery.attempts.map(attemptResponse) };
}

/** `GET /api/deliveries/:id`: the delivery with its payload exactly as sent, as JSON text. */
export const deliveryJson = (delivery: DeliveryRecord): Buffer =>
  withRawMember(deliveryResponse(delivery), 'payload', payloadJson(delivery.payload));

/** A listing's item: no payload, and of the attempts only their count and the latest one's outcome. */
export function deliverySummary(delivery: DeliveryRecord) {
  const last = delivery.attempts.at(-1);
  return {
    ...common(delivery),
    attemptCount: delivery.attempts.length,
    lastAttempt: last
      ? {
          n: last.n,
          at: iso(last.at),
          durationMs: last.durationMs,
          responseStatus: last.response?.status ?? null,
          error: last.error,
        }
      : null,
  };
}

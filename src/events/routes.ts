import express, { Router } from 'express';
import { z } from 'zod';
import { ConfirmPublisher, PublishError } from '../bus/publisher.js';
import type { Config } from '../config/index.js';
import {
  envelopeWithRawData,
  MAX_DATA_DEPTH,
  MAX_ENVELOPE_BYTES,
  newEventId,
  readPayload,
  type Envelope,
} from '../envelope.js';
import { callerOf, requireCaller } from '../http/auth.js';
import { HttpProblem } from '../http/problem.js';
import { parseOrThrow } from '../http/validation.js';
import { topLevelMembers } from '../json/raw.js';
import { MAX_RESOURCE_KEY_LENGTH } from '../webhooks/resource-key-pattern.js';

/** An exact event name: words joined by dots, no glob (it is also the routing key). */
export const EVENT_NAME = /^([A-Za-z0-9_-]{1,64}\.){0,7}[A-Za-z0-9_-]{1,64}$/;

const eventInput = z.strictObject({
  event: z
    .string()
    .regex(EVENT_NAME, 'must be an event name: words of letters, digits, _ or - joined by dots')
    // It is the routing key, which AMQP caps; a longer one would not be published.
    .max(
      ConfirmPublisher.MAX_ROUTING_KEY_BYTES,
      `must be at most ${ConfirmPublisher.MAX_ROUTING_KEY_BYTES} characters`,
    ),
  data: z.unknown().refine((value) => value !== undefined, 'is required'),
  // Longer keys would match no resource key pattern (matching is bounded).
  resourceKey: z
    .string()
    .min(1)
    .max(MAX_RESOURCE_KEY_LENGTH, `must be at most ${MAX_RESOURCE_KEY_LENGTH} characters`)
    .nullable()
    .optional(),
});

/**
 * `POST /api/events`: any service emits an event for its tenant without speaking AMQP. The envelope
 * goes to the events exchange (routing key = event name) and the answer waits for the broker's
 * confirm, so a 202 means the event is durable.
 */
export function eventRoutes(config: Config, publisher: ConfirmPublisher, exchange: string): Router {
  const router = Router();
  const auth = requireCaller(config.jwt);
  const raw = express.raw({ type: () => true, limit: config.inbound.maxBody });

  router.post('/api/events', auth, raw, async (req, res) => {
    const { input, data } = readInput(req.body as unknown);
    const now = new Date().toISOString();
    const envelope: Omit<Envelope, 'data'> = {
      id: newEventId(),
      event: input.event,
      tenantId: callerOf(req).tenantId,
      source: { kind: 'api' },
      resourceKey: input.resourceKey ?? null,
      occurredAt: now,
      receivedAt: now,
      headers: {},
    };
    const content = envelopeWithRawData(envelope, data);
    if (content.length > MAX_ENVELOPE_BYTES) {
      throw new HttpProblem(413, `The event makes an envelope larger than ${MAX_ENVELOPE_BYTES} bytes.`, {
        type: 'too-large',
      });
    }
    try {
      await publisher.publish(
        exchange,
        input.event,
        content,
        { messageId: envelope.id, mandatory: true, persistent: true, contentType: 'application/json' },
        config.inbound.confirmTimeoutMs,
      );
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      throw new HttpProblem(
        503,
        error.reason === 'returned'
          ? `No queue is bound to ${exchange} for this event (is a dispatcher running?); it was not accepted. Retry later.`
          : 'The message broker did not confirm the event; it was not accepted. Retry later.',
        { type: 'broker-unavailable', headers: { 'Retry-After': '5' } },
      );
    }
    res.status(202).json({ id: envelope.id });
  });

  return router;
}

/**
 * The body read as raw bytes: validated from its parsed value, while `data` is carried as the
 * exact bytes it has in the body (numbers such as 1e400 or 2.50, escapes and spacing unchanged).
 */
function readInput(body: unknown): { input: z.output<typeof eventInput>; data: Buffer } {
  // express.raw leaves the body unset when the request has none.
  const payload = readPayload(Buffer.isBuffer(body) ? body : Buffer.alloc(0), MAX_DATA_DEPTH + 1);
  if (!payload.ok) {
    const problem =
      payload.why === 'too deep'
        ? `The event's data nests arrays and objects more than ${MAX_DATA_DEPTH} levels deep.`
        : payload.problem;
    throw new HttpProblem(400, problem, { type: 'invalid-json' });
  }
  const input = parseOrThrow(eventInput, payload.value);
  return { input, data: topLevelMembers(payload.bytes).get('data')! };
}

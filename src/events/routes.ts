import express, { Router } from 'express';
import { z } from 'zod';
import { ConfirmPublisher, PublishError } from '../bus/publisher.js';
import type { Config } from '../config/index.js';
import { newEventId, type Envelope } from '../envelope.js';
import { callerOf, requireCaller } from '../http/auth.js';
import { HttpProblem } from '../http/problem.js';
import { parseOrThrow } from '../http/validation.js';

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
  resourceKey: z.string().min(1).max(1024, 'must be at most 1024 characters').nullable().optional(),
});

/**
 * `POST /api/events`: any service emits an event for its tenant without speaking AMQP. The envelope
 * goes to the events exchange (routing key = event name) and the answer waits for the broker's
 * confirm, so a 202 means the event is durable.
 */
export function eventRoutes(config: Config, publisher: ConfirmPublisher, exchange: string): Router {
  const router = Router();
  const auth = requireCaller(config.jwt);
  const json = express.json({ type: () => true, limit: config.inbound.maxBody });

  router.post('/api/events', auth, json, async (req, res) => {
    const input = parseOrThrow(eventInput, req.body);
    const now = new Date().toISOString();
    const envelope: Envelope = {
      id: newEventId(),
      event: input.event,
      tenantId: callerOf(req).tenantId,
      source: { kind: 'api' },
      resourceKey: input.resourceKey ?? null,
      occurredAt: now,
      receivedAt: now,
      headers: {},
      data: input.data,
    };
    try {
      await publisher.publish(
        exchange,
        input.event,
        Buffer.from(JSON.stringify(envelope)),
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

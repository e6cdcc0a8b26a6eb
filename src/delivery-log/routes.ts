import express, { Router, type Request } from 'express';
import { z } from 'zod';
import { decodeCursor, DeliveryLog, encodeCursor, type Cursor } from '../deliveries/log.js';
import type { DeliveryRecord, DeliveryStatus } from '../deliveries/model.js';
import { deliveryView, isSettled } from '../deliveries/view.js';
import { callerOf, requireCaller } from '../http/auth.js';
import { HttpProblem, notFound, validationProblem, type FieldError } from '../http/problem.js';
import { parseOrThrow } from '../http/validation.js';
import { findVisible } from '../webhooks/access.js';
import { replay, retryNow, sendTest, TEST_EVENT, type OperatorDeps } from './actions.js';
import { attemptResponse, deliveryJson, deliverySummary } from './views.js';

const STATUSES = ['pending', 'retrying', 'success', 'failed'] as const;
const SETTLED = ['success', 'failed'] as const;
/** A listing filtered by status reads at most this many deliveries per page (a page may come back short). */
const MAX_EXAMINED = 2000;

const unsettledRefused = (path: string): FieldError => ({
  path,
  message: 'must be success or failed: pending and retrying deliveries still have an attempt to come',
});

const replayInput = z.strictObject({
  since: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }),
  until: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }).optional(),
  status: z
    .union([z.enum(SETTLED), z.array(z.enum(SETTLED)).min(1)], {
      message: 'must be success or failed, or a list of them: pending and retrying deliveries are already on their way',
    })
    .optional(),
});

const cursorOf = (d: DeliveryRecord): Cursor => ({ createdAt: new Date(d.createdAt), id: d._id });

/** A query parameter given at most once, as text. */
function single(req: Request, name: string, errors: FieldError[]): string | undefined {
  const value = (req.query as Record<string, unknown>)[name];
  if (value === undefined || typeof value === 'string') return value;
  errors.push({ path: name, message: 'must be given once' });
  return undefined;
}

/** The delivery log and the operator calls on it (SPEC §5.1, §5.3). */
export function deliveryLogRoutes(deps: OperatorDeps): Router {
  const { config, log, subscriptions } = deps;
  const router = Router();
  const auth = requireCaller(config.jwt);
  const json = express.json({ type: () => true, limit: '16kb' });

  const loadSubscription = (req: Request) => findVisible(subscriptions, callerOf(req), req.params.id);
  const loadDelivery = async (req: Request) => {
    const found = await log.find(callerOf(req), req.params.id);
    if (!found) throw notFound('No delivery with that id.');
    return found;
  };

  router.get('/api/webhooks/:id/deliveries', auth, async (req, res) => {
    const errors: FieldError[] = [];
    const limitText = single(req, 'limit', errors) ?? '20';
    const limit = /^\d{1,3}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= 100)) errors.push({ path: 'limit', message: 'must be a whole number from 1 to 100' });
    const status = single(req, 'status', errors);
    if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
      errors.push({ path: 'status', message: `must be one of ${STATUSES.join(', ')}` });
    }
    const cursorText = single(req, 'cursor', errors);
    const after = cursorText === undefined ? null : decodeCursor(cursorText);
    if (cursorText !== undefined && !after)
      errors.push({ path: 'cursor', message: 'is not a cursor this API returned' });
    if (errors.length > 0) throw validationProblem(errors);
    const sub = await loadSubscription(req);

    const items: DeliveryRecord[] = [];
    let resume: Cursor | null = null;
    let more = false;
    let examined = 0;
    walk: for await (const chunk of log.walk(
      {
        webhookId: sub._id,
        visible: DeliveryLog.visibleTo(callerOf(req)),
        withoutPayload: true,
        // Unfiltered, a page and the one after it are all a listing reads.
        chunk: status === undefined ? limit + 1 : undefined,
      },
      after,
    )) {
      for (const delivery of chunk) {
        examined++;
        const full = items.length === limit;
        if (status === undefined || delivery.status === status) {
          if (full) {
            more = true;
            break walk;
          }
          items.push(delivery);
          resume = cursorOf(delivery);
        } else if (!full) resume = cursorOf(delivery);
        if (examined >= MAX_EXAMINED) {
          more = true;
          break walk;
        }
      }
    }
    res.json({ items: items.map(deliverySummary), nextCursor: more && resume ? encodeCursor(resume) : null });
  });

  router.delete('/api/webhooks/:id/deliveries', auth, async (req, res) => {
    const errors: FieldError[] = [];
    const status = single(req, 'status', errors);
    if (status !== undefined && !(SETTLED as readonly string[]).includes(status))
      errors.push(unsettledRefused('status'));
    const beforeText = single(req, 'before', errors);
    const before = beforeText === undefined ? undefined : new Date(beforeText);
    if (before && (!z.iso.datetime({ offset: true }).safeParse(beforeText).success || Number.isNaN(before.getTime()))) {
      errors.push({ path: 'before', message: 'must be an ISO 8601 date-time' });
    }
    if (errors.length > 0) throw validationProblem(errors);
    const sub = await loadSubscription(req);
    const wanted = status === undefined ? SETTLED : [status];
    for await (const chunk of log.walk({
      webhookId: sub._id,
      visible: DeliveryLog.visibleTo(callerOf(req)),
      until: before,
      withoutPayload: true,
    })) {
      // Pending and retrying deliveries are kept: their next attempt would record into a deleted delivery.
      await log.remove(chunk.filter((d) => (wanted as readonly string[]).includes(d.status)).map((d) => d._id));
    }
    res.status(204).end();
  });

  router.post('/api/webhooks/:id/test', auth, async (req, res) => {
    const sub = await loadSubscription(req);
    const sent = await sendTest(deps, sub);
    res.json({
      webhookId: sub._id,
      event: TEST_EVENT,
      eventId: sent.eventId,
      deliveryId: sent.deliveryId,
      success: sent.success,
      attempt: attemptResponse(sent.record),
    });
  });

  router.post('/api/webhooks/:id/replay', auth, json, async (req, res) => {
    const input = parseOrThrow(replayInput, req.body);
    const since = new Date(input.since);
    const until = input.until === undefined ? new Date() : new Date(input.until);
    if (until <= since) throw validationProblem([{ path: 'until', message: 'must be later than since' }]);
    const statuses: DeliveryStatus[] =
      input.status === undefined ? [...SETTLED] : Array.isArray(input.status) ? input.status : [input.status];
    const sub = await loadSubscription(req);
    const queued = await replay(deps, sub, DeliveryLog.visibleTo(callerOf(req)), { since, until, statuses });
    res.status(202).json({ queued });
  });

  router.get('/api/deliveries/:id', auth, async (req, res) => {
    const { doc, attempts } = await loadDelivery(req);
    res.type('json').send(deliveryJson(deliveryView(doc, attempts)));
  });

  router.post('/api/deliveries/:id/retry', auth, async (req, res) => {
    res.type('json').send(deliveryJson(await retryNow(deps, await loadDelivery(req))));
  });

  router.delete('/api/deliveries/:id', auth, async (req, res) => {
    const { doc, attempts } = await loadDelivery(req);
    const { status } = deliveryView(doc, attempts);
    if (!isSettled(status)) {
      throw new HttpProblem(
        409,
        `The delivery is ${status}: it still has an attempt to come. Delete it once it has succeeded or failed ` +
          '(disabling its subscription ends its retries).',
        { type: 'delivery-not-settled', title: 'Delivery not settled' },
      );
    }
    await log.remove([doc._id]);
    res.status(204).end();
  });

  return router;
}

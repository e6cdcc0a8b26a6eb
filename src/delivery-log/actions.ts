import type { Control } from '../bus/control.js';
import type { ConfirmPublisher } from '../bus/publisher.js';
import type { Config } from '../config/index.js';
import type { Sender } from '../dispatch/attempt.js';
import {
  attemptDoc,
  deliveryView,
  isSettled,
  randomDeliveryId,
  type AttemptDoc,
  type DeliveryDoc,
  type DeliveryRecord,
  type DeliveryStatus,
} from '../dispatch/deliveries.js';
import { publishDeliveryMessage, type DeliveryMessage } from '../dispatch/stage.js';
import { DELIVERY_KEY, type DispatchNames } from '../dispatch/topology.js';
import { newEventId, type Envelope } from '../envelope.js';
import { HttpProblem } from '../http/problem.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { disableGone, type SubscriptionModel, type SubscriptionRecord } from '../webhooks/model.js';
import { lastAttemptNumber, type DeliveryLog } from './log.js';

/** What the operator calls work with. */
export interface OperatorDeps {
  config: Config;
  log: DeliveryLog;
  subscriptions: SubscriptionModel;
  sender: Sender;
  publisher: ConfirmPublisher;
  control: Control;
  metrics: Metrics;
  logger: Logger;
  names: DispatchNames;
}

/** The event name of test sends. */
export const TEST_EVENT = 'WEBHOOK_TEST';

const timeoutOf = (config: Config, sub: SubscriptionRecord) =>
  Math.min(config.delivery.timeoutMs, sub.retry?.timeoutMs ?? Infinity);

/** 409 unless the delivery's subscription exists and is enabled. */
async function enabledSubscription(deps: OperatorDeps, id: string, action: string): Promise<SubscriptionRecord> {
  const sub = await deps.subscriptions.findOne({ _id: id }).lean<SubscriptionRecord>();
  if (!sub) {
    throw new HttpProblem(409, `The subscription of this delivery was deleted; there is nothing to ${action} with.`, {
      type: 'subscription-deleted',
      title: 'Subscription deleted',
    });
  }
  if (!sub.enabled) throw disabledProblem(action);
  return sub;
}

const disabledProblem = (action: string) =>
  new HttpProblem(
    409,
    `The subscription is disabled; enable it (PATCH enabled: true) to ${action}. ` +
      'POST /api/webhooks/:id/test sends a test event to a disabled subscription.',
    { type: 'subscription-disabled', title: 'Subscription disabled' },
  );

/**
 * `POST /api/deliveries/:id/retry`: one attempt now, outside the retry schedule, stored as the
 * delivery's next attempt. A delivery that still had attempts to come keeps them: when this one
 * fails it stays `retrying`; when it succeeds it is `success` (receivers dedupe on webhook-id).
 */
export async function retryNow(
  deps: OperatorDeps,
  found: { doc: DeliveryDoc; attempts: AttemptDoc[] },
): Promise<DeliveryRecord> {
  const { doc, attempts } = found;
  const sub = await enabledSubscription(deps, doc.webhookId, 'retry');
  const before = deliveryView(doc, attempts);
  const n = lastAttemptNumber(attempts) + 1;
  const result = await deps.sender.send({
    subscription: sub,
    deliveryId: doc._id,
    eventId: doc.eventId,
    event: doc.event,
    attempt: n,
    body: doc.payload,
    timeoutMs: timeoutOf(deps.config, sub),
  });
  const gone = result.status === 410;
  let status: DeliveryStatus = 'failed';
  if (result.ok) status = 'success';
  else if (!gone && !isSettled(before.status)) status = 'retrying';
  const outcome = status === 'retrying' ? 'retry' : status;
  deps.metrics.deliveryAttempts.inc({ outcome });
  deps.metrics.deliveryAttemptDuration.observe({ outcome }, result.record.durationMs / 1000);
  const stored = await deps.log.insertAttempt(
    attemptDoc(result.record, {
      _id: '',
      deliveryId: doc._id,
      webhookId: doc.webhookId,
      tenantId: doc.tenantId,
      status,
      nextAttemptAt: status === 'retrying' ? before.nextAttemptAt : null,
    }),
  );
  if (gone) {
    await disableGone(deps.subscriptions, sub._id);
    deps.logger.warn({ webhookId: sub._id }, 'subscription disabled: its endpoint answered 410 Gone');
    await deps.control.announce({ kind: 'subscription.changed', id: sub._id });
  }
  return deliveryView(doc, [...attempts, stored]);
}

/**
 * `POST /api/webhooks/:id/test`: a `WEBHOOK_TEST` event, signed and sent like any delivery (also
 * to a disabled subscription, so a fix can be checked before enabling it), and not stored.
 */
export async function sendTest(deps: OperatorDeps, sub: SubscriptionRecord) {
  const now = new Date().toISOString();
  const envelope: Envelope = {
    id: newEventId(),
    event: TEST_EVENT,
    tenantId: sub.tenantId,
    source: { kind: 'api' },
    resourceKey: null,
    occurredAt: now,
    receivedAt: now,
    headers: {},
    data: { message: 'A test event from hookbus.', webhookId: sub._id },
  };
  const deliveryId = randomDeliveryId();
  const result = await deps.sender.send({
    subscription: sub,
    deliveryId,
    eventId: envelope.id,
    event: TEST_EVENT,
    attempt: 1,
    body: JSON.stringify(sub.payload === 'data' ? envelope.data : envelope),
    timeoutMs: timeoutOf(deps.config, sub),
  });
  return { deliveryId, eventId: envelope.id, success: result.ok, record: result.record };
}

export interface ReplayRequest {
  since: Date;
  until: Date;
  statuses: readonly DeliveryStatus[];
}

/**
 * `POST /api/webhooks/:id/replay`: each settled delivery created in [since, until) whose status is
 * asked for starts a new chain of attempts with a fresh budget, through the deliveries queue and its
 * delay queues like any other. Each is marked `retrying` from then on (a replay mark, not an
 * attempt) so the purge keeps it until its attempts are done.
 */
export async function replay(deps: OperatorDeps, sub: SubscriptionRecord, request: ReplayRequest): Promise<number> {
  if (!sub.enabled) throw disabledProblem('replay its deliveries');
  let queued = 0;
  for await (const chunk of deps.log.walk({ webhookId: sub._id, since: request.since, until: request.until })) {
    const chosen = chunk.filter((d) => isSettled(d.status) && request.statuses.includes(d.status));
    if (chosen.length === 0) continue;
    const attempts = await deps.log.attemptsOf(chosen.map((d) => d._id));
    const at = new Date();
    const marks: Omit<AttemptDoc, '_id'>[] = [];
    await Promise.all(
      chosen.map((delivery) => {
        const offset = lastAttemptNumber(attempts.get(delivery._id) ?? []);
        const message: DeliveryMessage = {
          deliveryId: delivery._id,
          webhookId: delivery.webhookId,
          tenantId: delivery.tenantId,
          eventId: delivery.eventId,
          event: delivery.event,
          attempt: 1,
          offset,
          payload: delivery.payload,
        };
        marks.push({
          deliveryId: delivery._id,
          webhookId: delivery.webhookId,
          tenantId: delivery.tenantId,
          n: offset,
          at,
          durationMs: 0,
          request: { headers: '[]' },
          response: null,
          error: null,
          status: 'retrying',
          nextAttemptAt: at,
          queued: true,
        });
        return publishOnce(deps, message);
      }),
    );
    // After the publishes: a mark must not promise an attempt that was never queued. Its time is
    // from before them, so it still sorts before the attempt it announces.
    for (const mark of marks) await deps.log.insertAttempt(mark);
    queued += chosen.length;
  }
  return queued;
}

/** How long a replay keeps trying to publish one delivery message before answering 503. */
const PUBLISH_PATIENCE_MS = 2000;

/** A confirmed publish to the deliveries exchange; a broker that is away is a 503, not a wait. */
async function publishOnce(deps: OperatorDeps, message: DeliveryMessage): Promise<void> {
  const giveUpAt = Date.now() + PUBLISH_PATIENCE_MS;
  await publishDeliveryMessage(
    deps,
    { exchange: deps.names.deliveries, routingKey: DELIVERY_KEY },
    message,
    () => Date.now() > giveUpAt,
  ).catch(() => {
    throw new HttpProblem(503, 'The message broker did not confirm the replay; retry later.', {
      type: 'broker-unavailable',
      headers: { 'Retry-After': '5' },
    });
  });
}

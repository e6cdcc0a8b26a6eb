import type { Control } from '../bus/control.js';
import type { ConfirmPublisher } from '../bus/publisher.js';
import type { Config } from '../config/index.js';
import type { Sender } from '../dispatch/attempt.js';
import { randomDeliveryId } from '../deliveries/ids.js';
import type { DeliveryLog } from '../deliveries/log.js';
import type { DeliveryMessage } from '../deliveries/message.js';
import {
  attemptDoc,
  type AttemptDoc,
  type DeliveryDoc,
  type DeliveryRecord,
  type DeliveryStatus,
} from '../deliveries/model.js';
import { deliveryView, isSettled, lastAttemptNumber, latestEntry } from '../deliveries/view.js';
import { makeAttempt, type AttemptDeps, type AttemptOutcome } from '../dispatch/make-attempt.js';
import { Stopped } from '../work.js';
import { publishDeliveryMessage } from '../dispatch/stage.js';
import { DELIVERY_KEY, type DispatchNames } from '../dispatch/topology.js';
import { envelopeWithRawData, newEventId, type Envelope } from '../envelope.js';
import { HttpProblem } from '../http/problem.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { SubscriptionModel, SubscriptionRecord } from '../webhooks/model.js';

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
 * delivery's next attempt. When it succeeds the delivery is `success`, and an attempt still
 * scheduled for it is dropped when it comes due (see Deliverer.moot). When it fails, the delivery
 * stays `retrying` if an attempt of its chain is still to come, else it is `failed`.
 */
export async function retryNow(
  deps: OperatorDeps,
  found: { doc: DeliveryDoc; attempts: AttemptDoc[] },
): Promise<DeliveryRecord> {
  const { doc, attempts } = found;
  const sub = await enabledSubscription(deps, doc.webhookId, 'retry');
  const current = async () => (await deps.log.attemptsOf([doc._id])).get(doc._id) ?? [];
  const order = {
    subscription: sub,
    deliveryId: doc._id,
    eventId: doc.eventId,
    event: doc.event,
    body: doc.payload,
    offset: lastAttemptNumber(attempts),
    step: null,
    // As recorded now: an attempt of the chain may have finished while this one ran. A delivery
    // with no attempt yet (pending) still has its first one to come.
    chainStillRunning: async () => {
      const latest = latestEntry(await current());
      return isSettled(latest?.status ?? 'pending') ? null : { nextAttemptAt: latest?.nextAttemptAt ?? null };
    },
  };
  const stored: AttemptDoc[] = [];
  const record = async (made: AttemptOutcome) => {
    const entry = attemptDoc(made.record, {
      _id: '',
      deliveryId: doc._id,
      webhookId: doc.webhookId,
      tenantId: doc.tenantId,
      status: made.status,
      nextAttemptAt: made.nextAttemptAt,
    });
    stored.push(...(await deps.log.insertEntries([entry])));
  };
  await attemptOrAnswer503(makeAttempt(attemptDeps(deps), order, record));
  const now = await current();
  return deliveryView(doc, now.length > 0 ? now : stored);
}

/**
 * `POST /api/webhooks/:id/test`: a `WEBHOOK_TEST` event, signed and sent like any delivery (also
 * to a disabled subscription, so a fix can be checked before enabling it), and not stored.
 */
export async function sendTest(deps: OperatorDeps, sub: SubscriptionRecord) {
  const now = new Date().toISOString();
  const data = Buffer.from(JSON.stringify({ message: 'A test event from hookbus.', webhookId: sub._id }));
  const envelope: Omit<Envelope, 'data'> = {
    id: newEventId(),
    event: TEST_EVENT,
    tenantId: sub.tenantId,
    source: { kind: 'api' },
    resourceKey: null,
    occurredAt: now,
    receivedAt: now,
    headers: {},
  };
  const deliveryId = randomDeliveryId();
  const outcome = await attemptOrAnswer503(
    makeAttempt(attemptDeps(deps), {
      subscription: sub,
      deliveryId,
      eventId: envelope.id,
      event: TEST_EVENT,
      // The same bytes of `data` in both payload modes, as for any delivery.
      body: (sub.payload === 'data' ? data : envelopeWithRawData(envelope, data)).toString('utf8'),
      offset: 0,
      step: null,
    }),
  );
  return { deliveryId, eventId: envelope.id, success: outcome.ok, record: outcome.record };
}

/** How long a request waits for a 410's disabling of a subscription while MongoDB does not answer. */
const DISABLE_PATIENCE_MS = 5000;

/**
 * An operator's attempt is made like the dispatcher's. `stopped` is asked only by the 410's
 * disabling, which a request keeps trying for DISABLE_PATIENCE_MS from its first try.
 */
function attemptDeps(deps: OperatorDeps): AttemptDeps {
  let giveUpAt: number | undefined;
  return {
    ...deps,
    stopped: () => Date.now() > (giveUpAt ??= Date.now() + DISABLE_PATIENCE_MS),
  };
}

/** The attempt, or a 503 when its endpoint answered 410 and the database did not take the disabling. */
async function attemptOrAnswer503(attempt: Promise<AttemptOutcome>): Promise<AttemptOutcome> {
  try {
    return await attempt;
  } catch (error) {
    if (!(error instanceof Stopped)) throw error;
    throw new HttpProblem(
      503,
      'The endpoint answered 410 Gone, but the database did not answer to disable the subscription; retry later.',
      { type: 'database-unavailable', headers: { 'Retry-After': '5' } },
    );
  }
}

export interface ReplayRequest {
  since: Date;
  until: Date;
  statuses: readonly DeliveryStatus[];
}

/**
 * `POST /api/webhooks/:id/replay`: each settled delivery created in [since, until) whose status is
 * asked for starts a new chain of attempts with a fresh budget, through the deliveries queue and its
 * delay queues like any other. Each first gets a replay mark (not an attempt) that makes it
 * `retrying`, so neither the purge nor a second replay takes it while the chain runs; a delivery
 * whose message the broker did not confirm gets its previous status back and the answer is a 503.
 */
export async function replay(
  deps: OperatorDeps,
  sub: SubscriptionRecord,
  visible: Record<string, unknown>,
  request: ReplayRequest,
): Promise<number> {
  if (!sub.enabled) throw disabledProblem('replay its deliveries');
  let queued = 0;
  const walk = deps.log.walk({ webhookId: sub._id, visible, since: request.since, until: request.until });
  for await (const chunk of walk) {
    const chosen = chunk.filter((d) => isSettled(d.status) && request.statuses.includes(d.status));
    if (chosen.length === 0) continue;
    const attempts = await deps.log.attemptsOf(chosen.map((d) => d._id));
    const at = new Date();
    const plans = chosen.map((delivery) => {
      const offset = lastAttemptNumber(attempts.get(delivery._id) ?? []);
      const mark = {
        deliveryId: delivery._id,
        webhookId: delivery.webhookId,
        tenantId: delivery.tenantId,
        n: offset,
        at,
        durationMs: 0,
        request: { headers: '[]' },
        response: null,
        error: null,
        status: 'retrying' as DeliveryStatus,
        nextAttemptAt: at,
        queued: true as const,
      };
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
      return { mark, message, previous: delivery.status };
    });
    await deps.log.insertEntries(plans.map((p) => p.mark));
    const published = await Promise.allSettled(plans.map((p) => publishOnce(deps, p.message)));
    const unsent = plans.filter((_, i) => published[i]!.status === 'rejected');
    queued += plans.length - unsent.length;
    if (unsent.length > 0) {
      const undoneAt = new Date();
      await deps.log.insertEntries(
        unsent.map((p) => ({ ...p.mark, at: undoneAt, status: p.previous, nextAttemptAt: null })),
      );
      throw new HttpProblem(
        503,
        `The message broker stopped confirming: ${queued} deliveries were queued for replay, ${unsent.length} ` +
          'were not (they keep their status). Replaying the same window again queues only those.',
        { type: 'broker-unavailable', headers: { 'Retry-After': '5' } },
      );
    }
  }
  return queued;
}

/** How long a replay keeps trying to publish one delivery message before answering 503. */
const PUBLISH_PATIENCE_MS = 2000;

/** A confirmed publish to the deliveries exchange, tried for a while: a broker that is away is a 503, not a wait. */
async function publishOnce(deps: OperatorDeps, message: DeliveryMessage): Promise<void> {
  const giveUpAt = Date.now() + PUBLISH_PATIENCE_MS;
  await publishDeliveryMessage(
    deps,
    { exchange: deps.names.deliveries, routingKey: DELIVERY_KEY },
    message,
    () => Date.now() > giveUpAt,
  );
}

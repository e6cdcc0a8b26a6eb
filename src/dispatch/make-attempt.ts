import type { Control } from '../bus/control.js';
import type { Config } from '../config/index.js';
import type { AttemptRecord, DeliveryStatus } from '../deliveries/model.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { disableGone, type SubscriptionModel, type SubscriptionRecord } from '../webhooks/model.js';
import { untilDone } from '../work.js';
import type { Sender } from './attempt.js';
import { retrySteps } from './topology.js';

/** What making an attempt needs; the same for the dispatcher and the API. */
export interface AttemptDeps {
  config: Config;
  sender: Sender;
  metrics: Metrics;
  subscriptions: SubscriptionModel;
  control: Control;
  logger: Logger;
  /** True once the process gives up on work under way (a 410's disabling is then left undone). */
  stopped: () => boolean;
}

/** One attempt to make: which delivery, to which subscription, and where it stands in its chain. */
export interface AttemptOrder {
  subscription: SubscriptionRecord;
  deliveryId: string;
  eventId: string;
  event: string;
  /** The request body, exactly as stored in the delivery record. */
  body: string;
  /** Attempts the delivery had before this chain began: the log numbers this one offset + step. */
  offset: number;
  /**
   * The attempt's step in its chain of scheduled attempts, from 1 (the retry schedule counts
   * these), or null for a single attempt outside the schedule: an operator's retry, a test send.
   */
  step: number | null;
  /**
   * For a single attempt that fails: whether the delivery's own chain still has an attempt to
   * come (then the delivery stays `retrying`, with that attempt's time), read after the attempt.
   */
  chainStillRunning?: () => Promise<{ nextAttemptAt: Date | null } | null>;
  /** Called as soon as the HTTP exchange is over, with whether it was a 2xx (the deliverer frees its slot). */
  onAnswer?: (ok: boolean) => void;
}

export interface AttemptOutcome {
  record: AttemptRecord;
  /** 2xx within the timeout. */
  ok: boolean;
  /** The delivery's status after this attempt. */
  status: DeliveryStatus;
  /** Wait before the chain's next attempt, when this attempt scheduled one. */
  delayMs: number | null;
  nextAttemptAt: Date | null;
}

/**
 * The wait before the next attempt: the schedule's step for this attempt, or, when a 429/503 asked
 * for longer, the first step at least that long (the longest step at most).
 */
export function nextDelay(schedule: readonly number[], attempt: number, retryAfterMs: number | null): number {
  const step = schedule[attempt - 1]!;
  if (retryAfterMs === null || retryAfterMs <= step) return step;
  const steps = retrySteps(schedule);
  return steps.find((s) => s >= retryAfterMs) ?? steps.at(-1)!;
}

/**
 * Makes one attempt and decides what it means, for every kind of attempt (scheduled ones,
 * replays' chains, an operator's retry, test sends): its number, its timeout (DELIVERY_TIMEOUT_MS
 * or the subscription's shorter one), the delivery's status after it, the wait before the next
 * one (the schedule, or a longer Retry-After on 429/503), the metrics, and a 410's disabling of
 * the subscription. `record` stores the attempt (a test send has none); it runs before the
 * disabling, so an attempt made is recorded even when the database then fails.
 */
export async function makeAttempt(
  deps: AttemptDeps,
  order: AttemptOrder,
  record?: (outcome: AttemptOutcome) => Promise<void>,
): Promise<AttemptOutcome> {
  const { config, sender, metrics } = deps;
  const { subscription, step } = order;
  metrics.deliveriesInFlight.inc();
  let result: Awaited<ReturnType<Sender['send']>> | undefined;
  try {
    result = await sender.send({
      subscription,
      deliveryId: order.deliveryId,
      eventId: order.eventId,
      event: order.event,
      attempt: order.offset + (step ?? 1),
      body: order.body,
      timeoutMs: Math.min(config.delivery.timeoutMs, subscription.retry?.timeoutMs ?? Infinity),
    });
  } finally {
    metrics.deliveriesInFlight.dec();
    order.onAnswer?.(result?.ok === true);
  }
  const { record: attempt, ok } = result;
  const gone = result.status === 410;
  const schedule = config.delivery.retrySchedule;
  const maxAttempts = Math.min(schedule.length + 1, subscription.retry?.maxAttempts ?? Infinity);
  let outcome: AttemptOutcome = { record: attempt, ok, status: 'failed', delayMs: null, nextAttemptAt: null };
  if (ok) outcome.status = 'success';
  else if (!gone && step !== null && step < maxAttempts) {
    const delayMs = nextDelay(schedule, step, result.retryAfterMs);
    const nextAttemptAt = new Date(attempt.at.getTime() + attempt.durationMs + delayMs);
    outcome = { ...outcome, status: 'retrying', delayMs, nextAttemptAt };
  } else if (!gone && step === null) {
    const chain = await order.chainStillRunning?.();
    if (chain) outcome = { ...outcome, status: 'retrying', nextAttemptAt: chain.nextAttemptAt };
  }
  const label = outcome.status === 'retrying' ? 'retry' : outcome.status;
  metrics.deliveryAttempts.inc({ outcome: label });
  metrics.deliveryAttemptDuration.observe({ outcome: label }, attempt.durationMs / 1000);
  await record?.(outcome);
  if (gone) await disable(deps, subscription._id);
  return outcome;
}

/** `410 Gone`: the subscription is disabled, and every process is told (SPEC §5.2). */
async function disable(deps: AttemptDeps, id: string): Promise<void> {
  const { subscriptions, control, logger, stopped } = deps;
  await untilDone(
    () => disableGone(subscriptions, id),
    stopped,
    (error, retryInMs) => logger.warn({ err: error.message, retryInMs }, 'could not disable a subscription'),
  );
  logger.warn({ webhookId: id }, 'subscription disabled: its endpoint answered 410 Gone');
  await control.announce({ kind: 'subscription.changed', id });
}

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { checkAll, type Dependency } from './health.js';

/** Every hookbus metric, defined in one place (SPEC §6: the names are a public contract). */
/**
 * `dependencies` are the ones this process's roles need; each is checked at every scrape.
 * `attemptTimeoutMs` (DELIVERY_TIMEOUT_MS) is the attempt histogram's last finite bucket.
 */
export function createMetrics(dependencies: readonly Dependency[], attemptTimeoutMs = 10_000) {
  const registry = new Registry();
  let retryBacklog: (() => Promise<number>) | undefined;
  collectDefaultMetrics({ register: registry });
  // Gauges that prom-client names like counters (promtool check metrics flags them); each is the
  // sum of its per-type gauge (nodejs_active_handles{type} and the like), which stays.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }

  const metrics = {
    registry,
    httpRequests: new Counter({
      name: 'hookbus_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status_code'] as const,
      registers: [registry],
    }),
    httpRequestDuration: new Histogram({
      name: 'hookbus_http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to finishing its response.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    inboundRequests: new Counter({
      name: 'hookbus_inbound_requests_total',
      help: 'Inbound webhook requests, by outcome.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    inboundPublishDuration: new Histogram({
      name: 'hookbus_inbound_publish_duration_seconds',
      help: "Time from publishing an inbound webhook to the broker's confirm.",
      // A confirm on a healthy broker takes well under a millisecond; a struggling one, seconds.
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    dispatchMessages: new Counter({
      name: 'hookbus_dispatch_messages_total',
      help: 'Messages taken by the fan-out stage, by outcome.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    deliveryAttempts: new Counter({
      name: 'hookbus_delivery_attempts_total',
      help: 'HTTP delivery attempts, by outcome: success, retry (another attempt is scheduled), failed (the last one).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    deliveryAttemptDuration: new Histogram({
      name: 'hookbus_delivery_attempt_duration_seconds',
      help: 'Time from starting a delivery attempt to its response (or its error), by outcome.',
      labelNames: ['outcome'] as const,
      buckets: attemptBuckets(attemptTimeoutMs),
      registers: [registry],
    }),
    deliveriesInFlight: new Gauge({
      name: 'hookbus_deliveries_in_flight',
      help: 'Delivery attempts this process is making right now.',
      registers: [registry],
    }),
    deliveriesRetrying: new Gauge({
      name: 'hookbus_deliveries_retrying',
      help: "Deliveries waiting on the broker for their next attempt (the dispatcher's delay queues; the same figure on every dispatcher).",
      registers: [registry],
      async collect() {
        if (retryBacklog) this.set(await retryBacklog().catch(() => 0));
      },
    }),
    /** Where hookbus_deliveries_retrying reads its value (the dispatcher role sets it). */
    setRetryBacklog(read: () => Promise<number>) {
      retryBacklog = read;
    },
    dependencyUp: new Gauge({
      name: 'hookbus_dependency_up',
      help: '1 while the dependency answers, 0 while it is down; checked at every scrape.',
      labelNames: ['dependency'] as const,
      registers: [registry],
      async collect() {
        for (const [dependency, up] of Object.entries(await checkAll(dependencies))) {
          this.set({ dependency }, up ? 1 : 0);
        }
      },
    }),
  };
  // Every outcome is exported from the start, at 0, so rates and ratios exist before the first event.
  for (const outcome of INBOUND_OUTCOMES) metrics.inboundRequests.inc({ outcome }, 0);
  for (const outcome of DISPATCH_OUTCOMES) metrics.dispatchMessages.inc({ outcome }, 0);
  for (const outcome of ATTEMPT_OUTCOMES) metrics.deliveryAttempts.inc({ outcome }, 0);
  return metrics;
}

/** Attempt durations: from a fast local receiver up to the timeout, which ends every attempt. */
export function attemptBuckets(timeoutMs: number): number[] {
  const timeout = timeoutMs / 1000;
  const steps = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
  return [...steps.filter((b) => b < timeout), timeout];
}

export const INBOUND_OUTCOMES = [
  'published',
  'unknown_hook',
  'unsupported_media_type',
  'invalid_json',
  'too_large',
  'bad_signature',
  'broker_unavailable',
] as const;
export type InboundOutcome = (typeof INBOUND_OUTCOMES)[number];

export const DISPATCH_OUTCOMES = ['dispatched', 'no_subscribers', 'invalid'] as const;
export const ATTEMPT_OUTCOMES = ['success', 'retry', 'failed'] as const;

export type Metrics = ReturnType<typeof createMetrics>;

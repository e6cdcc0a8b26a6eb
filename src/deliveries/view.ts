import type { AttemptDoc, DeliveryDoc, DeliveryRecord, DeliveryStatus, HeaderPair } from './model.js';

const pairs = (text: string) => JSON.parse(text) as HeaderPair[];

/** Attempts in the order they started (how the log lists them). */
export const chronologically = (a: Pick<AttemptDoc, 'at' | 'n'>, b: Pick<AttemptDoc, 'at' | 'n'>) =>
  new Date(a.at).getTime() - new Date(b.at).getTime() || a.n - b.n;

type Entry = Pick<AttemptDoc, 'at' | 'n' | 'status' | 'durationMs' | 'queued'>;

const finishedAt = (e: Entry) => new Date(e.at).getTime() + e.durationMs;

/**
 * The entry that decides a delivery's state: of the attempts, the one that finished last (a
 * retry made by an operator or a replay can overlap a chain whose attempt started earlier and is
 * still running, and its record is what happened last). A replay mark counts until an attempt of
 * the chain it announced (numbered above it) is recorded, whatever the clocks of the processes
 * that wrote them say.
 */
export function latestEntry<T extends Entry>(entries: readonly T[]): T | undefined {
  const topAttempt = Math.max(0, ...entries.filter((e) => !e.queued).map((e) => e.n));
  let latest: T | undefined;
  for (const entry of entries) {
    if (entry.queued && topAttempt > entry.n) continue;
    if (!latest || (finishedAt(entry) - finishedAt(latest) || entry.n - latest.n) >= 0) latest = entry;
  }
  return latest;
}

/** The status a delivery has now: its latest entry's, else `pending` (no attempt yet). */
export const currentStatus = (entries: readonly Entry[]): DeliveryStatus => latestEntry(entries)?.status ?? 'pending';

/** Pending and retrying deliveries still have an attempt to come: the purge keeps them. */
export const isSettled = (status: DeliveryStatus) => status === 'success' || status === 'failed';

/** The delivery as the API and the tests see it: the stored document with its attempts folded in. */
export function deliveryView(delivery: DeliveryDoc, attempts: readonly AttemptDoc[]): DeliveryRecord {
  const ordered = [...attempts].sort(chronologically);
  const latest = latestEntry(attempts);
  return {
    ...delivery,
    status: latest?.status ?? delivery.status,
    nextAttemptAt: latest ? latest.nextAttemptAt : delivery.nextAttemptAt,
    updatedAt: latest ? new Date(new Date(latest.at).getTime() + latest.durationMs) : delivery.updatedAt,
    attempts: ordered
      .filter((a) => !a.queued)
      .map(({ n, at, durationMs, request, response, error }) => ({
        n,
        at,
        durationMs,
        request: { headers: pairs(request.headers) },
        response: response && { ...response, headers: pairs(response.headers) },
        error,
      })),
  };
}

/** The highest attempt number so far (replay marks included), 0 for none. */
export const lastAttemptNumber = (attempts: readonly Pick<AttemptDoc, 'n'>[]): number =>
  attempts.reduce((max, a) => Math.max(max, a.n), 0);

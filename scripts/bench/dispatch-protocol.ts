/**
 * What the dispatch benchmark (scripts/bench-dispatch.ts) and its receiver
 * (scripts/bench/dispatch-receiver.ts) say to each other over the child's IPC channel, and the
 * event envelopes both sides agree on.
 */

/** Starts a phase: only bodies whose envelope id starts with `prefix` count, until `count` distinct ids arrived. */
export interface Expect {
  type: 'expect';
  prefix: string;
  count: number;
}

export interface StatusRequest {
  type: 'status';
}

export type ToReceiver = Expect | StatusRequest;

/** Latency percentiles in milliseconds, over the bodies that carried a `sentAt`. */
export interface Latency {
  p50: number;
  p99: number;
  max: number;
}

export interface PhaseStats {
  /** Distinct envelope ids of the phase that arrived. */
  distinct: number;
  /** Requests of the phase, duplicates included. */
  requests: number;
  /** Epoch milliseconds (sub-millisecond precision) of the first and the last arrival. */
  firstAt: number;
  lastAt: number;
  latency: Latency | null;
}

export type FromReceiver =
  | { type: 'first'; prefix: string }
  | { type: 'done'; prefix: string; stats: PhaseStats }
  | { type: 'status'; prefix: string; stats: PhaseStats };

/**
 * Epoch milliseconds with sub-millisecond precision. Every process of the benchmark reads the same
 * system clock, so a time taken in one process can be subtracted from one taken in another.
 */
export const now = (): number => performance.timeOrigin + performance.now();

/** The envelope id is the body's first `"id"` (the envelope starts with it); `sentAt` is the first key of `data`. */
export const ID_PATTERN = /^\{"id":"([^"]+)"/;
export const SENT_AT_PATTERN = /"data":\{"sentAt":([\d.]+)/;

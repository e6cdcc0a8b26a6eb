/**
 * Gives the slot back, saying whether the attempt showed an endpoint that answers: a 2xx within
 * `healthyMs`. The next delivery waiting for that subscription takes the slot at once.
 */
export type Release = (answered: boolean) => void;

export interface SlotsOptions {
  /** DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK: attempts running at once per subscription. */
  cap: number;
  /**
   * Deliveries may wait only while fewer than this many attempts run and wait in all (half the
   * prefetch): the rest of the prefetch keeps turning over for other subscriptions.
   */
  maxBusy: number;
  /** How long a delivery waits for a slot before it goes back to the broker. */
  maxWaitMs: number;
  /** An attempt slower than this, or a subscription's oldest running one older, is not waited for. */
  healthyMs: number;
}

interface Subscription {
  /** Start times of the running attempts, oldest first. */
  started: number[];
  waiting: ((release: Release | null) => void)[];
  /** Whether its last attempt answered 2xx within healthyMs (true until one did not). */
  answered: boolean;
}

/**
 * Attempt slots, at most `cap` per subscription. A delivery over the cap waits here for a slot
 * only while its subscription's endpoint answers (its last attempt was a 2xx within `healthyMs`
 * and its oldest running one is younger than that), for at most `maxWaitMs`, and while fewer than
 * `maxBusy` attempts run and wait in all; otherwise it is refused (null) and goes back to wait on
 * the broker, as before. So a fast endpoint is not sent through the delay queue for being busy,
 * while slow or hanging ones never hold more than `cap` slots each beyond half the prefetch.
 */
export class Slots {
  private readonly subscriptions = new Map<string, Subscription>();
  private running = 0;
  private waiting = 0;
  private closed = false;

  constructor(private readonly options: SlotsOptions) {}

  /** A slot for the subscription now or after a short wait, or null: park the delivery instead. */
  acquire(id: string): Promise<Release | null> {
    const sub = this.subscription(id);
    if (sub.started.length < this.options.cap) return Promise.resolve(this.take(id, sub));
    if (!this.mayWait(sub)) return Promise.resolve(null);
    this.waiting++;
    return new Promise((resolve) => {
      const done = (release: Release | null) => {
        clearTimeout(timer);
        this.waiting--;
        resolve(release);
      };
      const timer = setTimeout(() => {
        const at = sub.waiting.indexOf(done);
        if (at >= 0) sub.waiting.splice(at, 1);
        done(null);
      }, this.options.maxWaitMs);
      sub.waiting.push(done);
    });
  }

  /** Stopping: every waiting delivery is refused now, and none waits from here on. */
  stopWaiting(): void {
    this.closed = true;
    for (const sub of this.subscriptions.values()) for (const done of sub.waiting.splice(0)) done(null);
  }

  /** Attempts running for the subscription. */
  runningFor(id: string): number {
    return this.subscriptions.get(id)?.started.length ?? 0;
  }

  private mayWait(sub: Subscription): boolean {
    const { maxBusy, healthyMs } = this.options;
    const oldest = sub.started[0] ?? performance.now();
    return (
      !this.closed && sub.answered && performance.now() - oldest < healthyMs && this.running + this.waiting < maxBusy
    );
  }

  private subscription(id: string): Subscription {
    let sub = this.subscriptions.get(id);
    if (!sub) this.subscriptions.set(id, (sub = { started: [], waiting: [], answered: true }));
    return sub;
  }

  private take(id: string, sub: Subscription): Release {
    const at = performance.now();
    sub.started.push(at);
    this.running++;
    let released = false;
    return (answered) => {
      if (released) return;
      released = true;
      this.running--;
      sub.started.splice(sub.started.indexOf(at), 1);
      sub.answered = answered && performance.now() - at < this.options.healthyMs;
      const next = sub.waiting.shift();
      if (next) next(this.take(id, sub));
      else if (sub.started.length === 0) this.subscriptions.delete(id);
    };
  }
}

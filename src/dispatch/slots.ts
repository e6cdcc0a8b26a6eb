/** Gives the slot back; the next delivery waiting for that subscription takes it at once. */
export type Release = () => void;

export interface SlotsOptions {
  /** DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK: attempts running at once per subscription. */
  cap: number;
  /** Deliveries waiting in all, across subscriptions: the rest of the prefetch stays free for others. */
  maxWaiting: number;
  /** How long a delivery waits for a slot before it goes back to the broker. */
  maxWaitMs: number;
  /** A subscription whose oldest running attempt is older than this is not waited for. */
  healthyMs: number;
}

interface Subscription {
  /** Start times of the running attempts. */
  started: number[];
  waiting: ((release: Release | null) => void)[];
}

/**
 * Attempt slots, at most `cap` per subscription. A delivery over the cap waits here for a slot
 * only while that subscription's endpoint answers (its oldest running attempt is younger than
 * `healthyMs`), for at most `maxWaitMs`, and while fewer than `maxWaiting` deliveries wait in all;
 * otherwise it is refused (null) and goes back to wait on the broker, as before. So a fast
 * endpoint is not sent through the delay queue for being busy, and a hanging one holds at most
 * `cap` attempts plus, for `healthyMs`, some of the `maxWaiting` places: never the whole prefetch.
 */
export class Slots {
  private readonly subscriptions = new Map<string, Subscription>();
  private waiting = 0;

  constructor(private readonly options: SlotsOptions) {}

  /** A slot for the subscription now or after a short wait, or null: park the delivery instead. */
  acquire(id: string): Promise<Release | null> {
    const { cap, maxWaiting, maxWaitMs, healthyMs } = this.options;
    const sub = this.subscription(id);
    if (sub.started.length < cap) return Promise.resolve(this.take(id, sub));
    if (this.waiting >= maxWaiting || Date.now() - Math.min(...sub.started) > healthyMs) return Promise.resolve(null);
    this.waiting++;
    return new Promise((resolve) => {
      const done = (release: Release | null) => {
        clearTimeout(timer);
        this.waiting--;
        resolve(release);
      };
      const timer = setTimeout(() => {
        sub.waiting.splice(sub.waiting.indexOf(done) >>> 0, 1);
        done(null);
      }, maxWaitMs);
      sub.waiting.push(done);
    });
  }

  /** Attempts running for the subscription. */
  running(id: string): number {
    return this.subscriptions.get(id)?.started.length ?? 0;
  }

  private subscription(id: string): Subscription {
    let sub = this.subscriptions.get(id);
    if (!sub) this.subscriptions.set(id, (sub = { started: [], waiting: [] }));
    return sub;
  }

  private take(id: string, sub: Subscription): Release {
    const at = Date.now();
    sub.started.push(at);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      sub.started.splice(sub.started.indexOf(at), 1);
      const next = sub.waiting.shift();
      if (next) next(this.take(id, sub));
      else if (sub.started.length === 0) this.subscriptions.delete(id);
    };
  }
}

/** Waits used while a dependency is down: work is retried, never dropped. */
const BACKOFF_MS = [100, 250, 500, 1000, 2000, 5000];

export class Stopped extends Error {
  override name = 'Stopped';
}

/**
 * Runs `task` until it succeeds, waiting longer after each failure; rejects with Stopped once
 * `stopped()` says so (the caller then leaves its messages unacknowledged, so the broker gives
 * them to another consumer or to this one after a restart).
 */
export async function untilDone<T>(
  task: () => Promise<T>,
  stopped: () => boolean,
  onFailure: (error: Error, retryInMs: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    if (stopped()) throw new Stopped('stopping');
    try {
      return await task();
    } catch (error) {
      if (stopped()) throw new Stopped('stopping');
      const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]!;
      onFailure(error as Error, wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** Collects items pushed in one turn of the event loop and hands them over as one batch. */
export class Batcher<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(
    private readonly run: (batch: T[]) => void,
    private readonly maxSize = 256,
  ) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length >= this.maxSize) return this.flush();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.items.length === 0) return;
    const batch = this.items;
    this.items = [];
    this.run(batch);
  }
}

/** Tracks promises still running, so a shutdown can wait for them. */
export class InFlight {
  private readonly running = new Set<Promise<unknown>>();

  track<T>(promise: Promise<T>): Promise<T> {
    this.running.add(promise);
    const forget = () => this.running.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  get size(): number {
    return this.running.size;
  }

  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

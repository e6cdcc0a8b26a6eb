import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `probe` until it returns a truthy value, or throws after `timeoutMs` with the last failure. */
export async function eventually<T>(
  probe: () => Promise<T> | T,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${String(last)}`);
    }
    await sleep(100);
  }
}

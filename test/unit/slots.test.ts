import { describe, expect, it } from 'vitest';
import { Slots } from '../../src/dispatch/slots.js';

const options = { cap: 2, maxWaiting: 3, maxWaitMs: 200, healthyMs: 100 };

describe('attempt slots per subscription', () => {
  it('When the cap is reached, then the next delivery waits and takes the first slot given back', async () => {
    const slots = new Slots(options);
    const first = (await slots.acquire('a'))!;
    await slots.acquire('a');
    let third: (() => void) | null | undefined;
    const waiting = slots.acquire('a').then((r) => (third = r));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(third).toBeUndefined();
    first();
    await waiting;
    expect(third).toBeTypeOf('function');
    expect(slots.running('a')).toBe(2);
    // Another subscription is not held up by this one.
    expect(await slots.acquire('b')).toBeTypeOf('function');
  });

  it('When no slot comes back within maxWaitMs, then the waiting delivery is refused (parked)', async () => {
    const slots = new Slots(options);
    await slots.acquire('a');
    await slots.acquire('a');
    const started = Date.now();
    expect(await slots.acquire('a')).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(options.maxWaitMs - 5);
  });

  it('When the oldest running attempt is older than healthyMs (a hanging endpoint), then a delivery over the cap is refused at once', async () => {
    const slots = new Slots(options);
    await slots.acquire('a');
    await slots.acquire('a');
    await new Promise((resolve) => setTimeout(resolve, options.healthyMs + 20));
    const started = Date.now();
    expect(await slots.acquire('a')).toBeNull();
    expect(Date.now() - started).toBeLessThan(20);
  });

  it('When maxWaiting deliveries wait already, then the next one over its cap is refused at once, whatever its subscription', async () => {
    const slots = new Slots(options);
    for (const id of ['a', 'b']) for (let i = 0; i < options.cap; i++) await slots.acquire(id);
    const waits = [slots.acquire('a'), slots.acquire('a'), slots.acquire('b')];
    expect(await slots.acquire('b')).toBeNull();
    expect(await Promise.all(waits)).toEqual([null, null, null]); // each timed out
  });

  it('When a release is called twice, then it gives back one slot', async () => {
    const slots = new Slots(options);
    const release = (await slots.acquire('a'))!;
    await slots.acquire('a');
    release();
    release();
    expect(slots.running('a')).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { Slots, type Release } from '../../src/dispatch/slots.js';

const options = { cap: 2, maxBusy: 6, maxWaitMs: 200, healthyMs: 100 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fills the subscription's cap; the releases, in order. */
async function fill(slots: Slots, id: string, n = options.cap): Promise<Release[]> {
  const releases: Release[] = [];
  for (let i = 0; i < n; i++) releases.push((await slots.acquire(id))!);
  return releases;
}

describe('attempt slots per subscription', () => {
  it('When the cap is reached, then the next delivery waits and takes the first slot given back', async () => {
    const slots = new Slots(options);
    const [first] = await fill(slots, 'a');
    let third: Release | null | undefined;
    const waiting = slots.acquire('a').then((r) => (third = r));
    await sleep(10);
    expect(third).toBeUndefined();
    first!(true);
    await waiting;
    expect(third).toBeTypeOf('function');
    expect(slots.runningFor('a')).toBe(2);
    // Another subscription is not held up by this one.
    expect(await slots.acquire('b')).toBeTypeOf('function');
  });

  it('When no slot comes back within maxWaitMs, then the waiting delivery is refused (parked)', async () => {
    const slots = new Slots(options);
    await fill(slots, 'a');
    const started = Date.now();
    expect(await slots.acquire('a')).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(options.maxWaitMs - 5);
  });

  it('When the oldest running attempt is older than healthyMs (a hanging endpoint), then a delivery over the cap is refused at once', async () => {
    const slots = new Slots(options);
    await fill(slots, 'a');
    await sleep(options.healthyMs + 20);
    const started = Date.now();
    expect(await slots.acquire('a')).toBeNull();
    expect(Date.now() - started).toBeLessThan(20);
  });

  it('When the last attempt did not answer 2xx (a timeout, an error, a 500), then a delivery over the cap is refused at once, however young the running ones', async () => {
    const slots = new Slots(options);
    const [first] = await fill(slots, 'a');
    first!(false);
    await fill(slots, 'a', 1);
    const started = Date.now();
    expect(await slots.acquire('a')).toBeNull();
    expect(Date.now() - started).toBeLessThan(20);
  });

  it('When half the prefetch (maxBusy) is running or waiting in all, then no delivery waits, whatever its subscription', async () => {
    const slots = new Slots(options);
    for (const id of ['a', 'b', 'c']) await fill(slots, id); // 6 running = maxBusy
    const started = Date.now();
    expect(await slots.acquire('a')).toBeNull();
    expect(Date.now() - started).toBeLessThan(20);
  });

  it('When waiting stops (the dispatcher stops), then every waiting delivery is refused at once', async () => {
    const slots = new Slots(options);
    await fill(slots, 'a');
    const waiting = slots.acquire('a');
    slots.stopWaiting();
    expect(await waiting).toBeNull();
    expect(await slots.acquire('a')).toBeNull();
  });

  it('When a release is called twice, then it gives back one slot', async () => {
    const slots = new Slots(options);
    const [release] = await fill(slots, 'a');
    release!(true);
    release!(true);
    expect(slots.runningFor('a')).toBe(1);
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { metricValue } from '../support/app.js';
import { type BusClient, dispatchSuite, envelope, subscribe } from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { bearer } from '../support/jwt.js';
import { eventually } from '../support/wait.js';

/** The slowest shape the limits accept (scripts/bench-patterns.ts), and the finding's pattern. */
const WORST_ACCEPTED = '(?:[\\p{L}\\p{N}]*){31}';
const FINDING = '(?:a?){999}'.repeat(10);
/** Scanned to its end, then refused at the last character: the most work a key can cause. */
const WORST_KEY = `${'ж'.repeat(255)}-`;

async function healthzMs(app: App): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${app.url}/healthz`);
  await res.text();
  return performance.now() - started;
}

describe('patterns cannot stall the process', () => {
  const suite = dispatchSuite({});
  let app: App;
  let bus: BusClient;
  beforeAll(() => {
    ({ app, bus } = suite);
  });

  it('When envelopes with the worst key meet the worst accepted patterns and a stored pre-limit pattern, then /healthz keeps answering within 100 ms', async () => {
    const tenant = uniqueName('t');
    // Many costly subscriptions for one tenant: one envelope's matching alone outlasts a slice.
    for (let i = 0; i < 40; i++) {
      await subscribe(app, tenant, {
        url: 'http://127.0.0.1:9/never',
        events: ['slow.*'],
        filter: { resourceKeyPattern: WORST_ACCEPTED },
      });
    }
    // A pattern stored before the limits existed: written to MongoDB directly, then announced by an update.
    const legacy = await subscribe(app, tenant, { url: 'http://127.0.0.1:9/never', events: ['slow.*'] });
    await app
      .db!.connection.collection('webhooks')
      .updateOne({ _id: legacy.id as never }, { $set: { 'filter.resourceKeyPattern': FINDING } });
    const patch = await fetch(`${app.url}/api/webhooks/${legacy.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body: JSON.stringify({ name: 'legacy' }),
    });
    expect(patch.status).toBe(200);

    const EVENTS = 300;
    const before = (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="no_subscribers"}')) ?? 0;
    for (let i = 0; i < EVENTS; i++) {
      const resourceKey = i % 2 === 0 ? WORST_KEY : 'a'.repeat(1024);
      const message = envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'slow.match', resourceKey });
      bus.channel.publish(app.config.inbound.exchange, 'x', Buffer.from(JSON.stringify(message)));
    }
    await bus.channel.waitForConfirms();

    // Health checks every 10 ms while the dispatcher matches.
    const latencies: number[] = [];
    let matching = true;
    const probe = (async () => {
      while (matching) {
        latencies.push(await healthzMs(app));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await eventually(
      async () =>
        (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="no_subscribers"}')) === before + EVENTS,
      60_000,
      'every envelope matched',
    );
    matching = false;
    await probe;
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      `healthz during matching: ${latencies.length} calls, p50 ${sorted[sorted.length >> 1]!.toFixed(1)} ms, ` +
        `max ${sorted.at(-1)!.toFixed(1)} ms`,
    );
    expect(latencies.length).toBeGreaterThan(10);
    // Most answer well within 100 ms; a margin for a GC pause or another test file on the same cores.
    expect(sorted[Math.floor(sorted.length * 0.95)]!).toBeLessThan(100);
    expect(sorted.at(-1)!).toBeLessThan(250);
  });
});

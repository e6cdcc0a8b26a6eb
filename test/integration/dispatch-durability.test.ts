import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { deliveryIdOf } from '../../src/deliveries/ids.js';
import { startTestApp, waitReady } from '../support/app.js';
import { BusClient, deliveries, envelope, subscribe } from '../support/dispatch.js';
import { testEnv, uniqueName } from '../support/env.js';
import { listeningPort, spawnHookbus, type HookbusProcess } from '../support/process.js';
import { Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

/** Counts requests per webhook-id: what a receiver that dedupes would keep. */
const byDeliveryId = (receiver: Receiver) => {
  const counts = new Map<string, number>();
  for (const r of receiver.requests) {
    const id = r.headers['webhook-id'] as string;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
};

describe('durable dispatch across dispatcher processes', () => {
  let api: App;
  let bus: BusClient;
  let env: NodeJS.ProcessEnv;
  const procs: HookbusProcess[] = [];
  const receivers: Receiver[] = [];

  async function startDispatcher(): Promise<HookbusProcess> {
    const proc = spawnHookbus({ ...env, HOOKBUS_ROLES: 'dispatcher', LOG_LEVEL: 'info' });
    procs.push(proc);
    const port = await listeningPort(proc);
    await waitReady({ url: `http://127.0.0.1:${port}` });
    return proc;
  }

  async function publishEvents(tenant: string, event: string, count: number): Promise<string[]> {
    const ids = Array.from({ length: count }, () => uniqueName('evt'));
    for (const id of ids) {
      bus.channel.publish(
        env.INBOUND_EXCHANGE!,
        'x',
        Buffer.from(JSON.stringify(envelope({ id, tenantId: tenant, event }))),
        { persistent: true },
      );
    }
    await bus.channel.waitForConfirms();
    return ids;
  }

  beforeAll(async () => {
    env = testEnv({
      DELIVERY_RETRY_SCHEDULE: '2s',
      DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK: '32',
      // Every record is checked: the purge a dispatcher runs at start keeps only the newest
      // DELIVERY_LOG_LIMIT (100 by default) of a subscription, and 400 are made here.
      DELIVERY_LOG_LIMIT: '1000',
    });
    api = await startTestApp({ ...(env as Record<string, string>), HOOKBUS_ROLES: 'api' });
    await waitReady(api);
    bus = await BusClient.open();
  });
  afterEach(async () => {
    for (const proc of procs.splice(0)) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
    for (const receiver of receivers.splice(0)) await receiver.close();
  });
  afterAll(async () => {
    await api?.stop();
    await bus?.close();
  });

  it('When the dispatcher stops while retries are pending, then a new dispatcher makes every pending retry', async () => {
    const tenant = uniqueName('t');
    // The first attempt of every delivery fails; the retry succeeds.
    const receiver = await Receiver.start((req) =>
      byDeliveryId(receiver).get(req.headers['webhook-id'] as string)! > 1 ? { status: 200 } : { status: 500 },
    );
    receivers.push(receiver);
    const sub = await subscribe(api, tenant, { url: receiver.url, events: ['durable.*'] });
    const first = await startDispatcher();
    const ids = await publishEvents(tenant, 'durable.retry', 20);
    await eventually(() => byDeliveryId(receiver).size === 20, 20_000, '20 first attempts');
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    expect(receiver.requests.length).toBe(20);

    await startDispatcher();
    await eventually(() => [...byDeliveryId(receiver).values()].every((n) => n >= 2), 20_000, 'every retry');
    expect(byDeliveryId(receiver).size).toBe(20);
    expect(new Set(byDeliveryId(receiver).keys())).toEqual(new Set(ids.map((id) => deliveryIdOf(id, sub.id))));
    await eventually(async () => (await deliveries(api, { webhookId: sub.id })).every((d) => d.status === 'success'));
  });

  it('When the dispatcher is stopped during an attempt, then the attempt is finished, recorded and not made again', async () => {
    const tenant = uniqueName('t');
    const receiver = await Receiver.start(() => ({ status: 200, delayMs: 800 }));
    receivers.push(receiver);
    const sub = await subscribe(api, tenant, { url: receiver.url, events: ['drain.*'] });
    const first = await startDispatcher();
    await publishEvents(tenant, 'drain.test', 1);
    await receiver.waitFor(1);
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    const [delivery] = await deliveries(api, { webhookId: sub.id });
    expect(delivery!.status).toBe('success');

    await startDispatcher();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(receiver.requests).toHaveLength(1);
  });

  it('When the dispatcher is killed with SIGKILL mid-batch, then after a restart every delivery arrives at least once', async () => {
    const tenant = uniqueName('t');
    const receiver = await Receiver.start(() => ({ status: 200 }));
    receivers.push(receiver);
    const sub = await subscribe(api, tenant, { url: receiver.url, events: ['crash.*'] });
    const first = await startDispatcher();
    const ids = await publishEvents(tenant, 'crash.test', 400);
    await eventually(() => byDeliveryId(receiver).size >= 50, 20_000, '50 deliveries');
    first.child.kill('SIGKILL');
    await first.exited;
    const atKill = byDeliveryId(receiver).size;
    expect(atKill).toBeLessThan(400);

    await startDispatcher();
    await eventually(() => byDeliveryId(receiver).size === 400, 30_000, 'all 400 deliveries');
    const expected = new Set(ids.map((id) => deliveryIdOf(id, sub.id)));
    expect(new Set(byDeliveryId(receiver).keys())).toEqual(expected);
    const stored = await eventually(async () => {
      const found = await deliveries(api, { webhookId: sub.id });
      return found.length === 400 && found.every((d) => d.status === 'success') ? found : undefined;
    });
    expect(new Set(stored.map((d) => d._id))).toEqual(expected);
  });
});

describe('a hanging endpoint does not starve the others (DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK=4)', () => {
  let app: App;
  let bus: BusClient;
  let hanging: Receiver;
  let healthy: Receiver;

  beforeAll(async () => {
    app = await startTestApp({
      DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK: '4',
      DELIVERY_TIMEOUT_MS: '20000',
      DELIVERY_RETRY_SCHEDULE: '5s',
    });
    await waitReady(app);
    bus = await BusClient.open();
    hanging = await Receiver.start(() => 'hang');
    healthy = await Receiver.start(() => ({ status: 200 }));
  });
  afterAll(async () => {
    await hanging?.close();
    await healthy?.close();
    await app?.stop();
    await bus?.close();
  });

  it('When hundreds of deliveries flood a hanging endpoint, then at most 4 attempts hang and a healthy endpoint still gets its deliveries promptly', async () => {
    const tenant = uniqueName('t');
    await subscribe(app, tenant, { url: hanging.url, events: ['flood.hang'] });
    await subscribe(app, tenant, { url: healthy.url, events: ['flood.ok'] });
    for (let i = 0; i < 300; i++) {
      bus.channel.publish(
        app.config.inbound.exchange,
        'x',
        Buffer.from(JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'flood.hang' }))),
      );
    }
    await bus.channel.waitForConfirms();
    await hanging.waitFor(4);
    // Give the flood time to fill the prefetch window, as it would in production.
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      bus.channel.publish(
        app.config.inbound.exchange,
        'x',
        Buffer.from(JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'flood.ok' }))),
      );
    }
    await bus.channel.waitForConfirms();
    await healthy.waitFor(20, 10_000);
    const tookMs = Date.now() - started;
    // The hanging attempts time out after 20 s: the healthy deliveries did not wait for them.
    // (Half that, not less: this machine's two cores also run the broker and the database.)
    expect(tookMs).toBeLessThan(10_000);
    expect(hanging.requests).toHaveLength(4);
  });
});

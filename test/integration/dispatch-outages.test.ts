import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { BusClient, deliveries, envelope, subscribe, type Subscription } from '../support/dispatch.js';
import { AMQP_URL, mongoUri, uniqueName } from '../support/env.js';
import { Receiver } from '../support/receiver.js';
import { relayed, TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/wait.js';

describe('dispatch through dependency outages (both relayed through a TCP proxy the test cuts)', () => {
  let app: App;
  let bus: BusClient;
  let receiver: Receiver;
  let mongoProxy: TcpProxy;
  let rabbitProxy: TcpProxy;
  let sub: Subscription;
  const tenant = uniqueName('t');
  const distinct = () => new Set(receiver.requests.map((r) => r.headers['webhook-id'])).size;

  async function publish(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const body = JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'outage.test' }));
      bus.channel.publish(app.config.inbound.exchange, 'x', Buffer.from(body), { persistent: true });
    }
    await bus.channel.waitForConfirms();
  }

  beforeAll(async () => {
    const mongo = mongoUri();
    mongoProxy = await TcpProxy.before(mongo);
    rabbitProxy = await TcpProxy.before(AMQP_URL);
    app = await startTestApp({
      MONGODB_URI: relayed(mongo, mongoProxy),
      AMQP_URL: relayed(AMQP_URL, rabbitProxy),
      DELIVERY_RETRY_SCHEDULE: '200ms',
    });
    await waitReady(app);
    bus = await BusClient.open();
    // Slow enough (8 attempts at a time, 20 ms each) that the cut lands mid-flow.
    receiver = await Receiver.start(() => ({ status: 200, delayMs: 20 }));
    sub = await subscribe(app, tenant, { url: receiver.url, events: ['outage.*'] });
  });
  afterAll(async () => {
    await app?.stop();
    await bus?.close();
    await receiver?.close();
    await mongoProxy?.stop();
    await rabbitProxy?.stop();
  });

  it('When MongoDB is unreachable, then nothing is delivered unrecorded and every event is delivered once it is back', async () => {
    await mongoProxy.cut();
    const before = receiver.requests.length;
    await publish(50);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // Fan-out cannot store the deliveries, so it has sent none and acked no envelope.
    expect(receiver.requests.length).toBe(before);
    await mongoProxy.restore();
    await eventually(() => distinct() === 50, 30_000, '50 deliveries after MongoDB returned');
    await eventually(async () => {
      const found = await deliveries(app, { webhookId: sub.id });
      return found.length === 50 && found.every((d) => d.status === 'success');
    }, 15_000);
  });

  it('When the RabbitMQ connection is cut mid-flow, then after the reconnect every delivery still arrives', async () => {
    await publish(300);
    await eventually(() => distinct() >= 80, 20_000, 'some deliveries before the cut');
    await rabbitProxy.cut();
    const atCut = distinct();
    expect(atCut).toBeLessThan(350);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await rabbitProxy.restore();
    await eventually(() => distinct() === 350, 40_000, 'all 350 deliveries after the reconnect');
    await eventually(async () => {
      const found = await deliveries(app, { webhookId: sub.id });
      return found.length === 350 && found.every((d) => d.status === 'success');
    }, 15_000);
    expect(receiver.requests.length).toBeGreaterThanOrEqual(350);
  });
});

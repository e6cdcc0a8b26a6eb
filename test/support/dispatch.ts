import amqp from 'amqplib';
import { afterAll, beforeAll, expect } from 'vitest';
import type { App } from '../../src/app.js';
import { DeliveryLog } from '../../src/deliveries/log.js';
import type { DeliveryRecord } from '../../src/deliveries/model.js';
import { startTestApp, waitReady } from './app.js';
import { AMQP_URL } from './env.js';
import { bearer } from './jwt.js';
import { Receiver, type Responder } from './receiver.js';
import { eventually } from './wait.js';

export type Subscription = Record<string, unknown> & { id: string; secret: string };

/** Creates a subscription through the API of `app`, as `tenant`. */
export async function subscribe(
  app: { url: string },
  tenant: string,
  body: Record<string, unknown>,
  claims: Record<string, unknown> = {},
): Promise<Subscription> {
  const res = await fetch(`${app.url}/api/webhooks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(tenant, claims) },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as Subscription;
}

/** Every delivery in the app's database with its attempts, oldest first (filter on stored fields). */
export const deliveries = (app: App, filter: Record<string, unknown> = {}): Promise<DeliveryRecord[]> =>
  DeliveryLog.of(app.db!.connection).records(filter);

/** Publishes raw messages on the broker (confirmed), as another service on the bus would. */
export class BusClient {
  private constructor(
    private readonly connection: amqp.ChannelModel,
    readonly channel: amqp.ConfirmChannel,
  ) {}

  static async open(): Promise<BusClient> {
    const connection = await amqp.connect(AMQP_URL);
    return new BusClient(connection, await connection.createConfirmChannel());
  }

  async publish(exchange: string, routingKey: string, content: string | Buffer, options: amqp.Options.Publish = {}) {
    this.channel.publish(exchange, routingKey, Buffer.from(content), { persistent: true, ...options });
    await this.channel.waitForConfirms();
  }

  async close(): Promise<void> {
    await this.channel.close().catch(() => undefined);
    await this.connection.close().catch(() => undefined);
  }
}

/** An envelope as the ingest role would publish it (SPEC §4.2). */
export function envelope(fields: {
  id: string;
  tenantId: string;
  event: string;
  resourceKey?: string | null;
  data?: unknown;
}) {
  return {
    id: fields.id,
    event: fields.event,
    tenantId: fields.tenantId,
    source: { kind: 'api' },
    resourceKey: fields.resourceKey ?? null,
    occurredAt: new Date().toISOString(),
    receivedAt: new Date().toISOString(),
    headers: {},
    data: fields.data ?? { hello: 'world' },
  };
}

/**
 * An in-process hookbus (all roles; `overrides` on the test environment), a bus client, and the
 * receivers the tests start: up before the enclosing describe's tests, all stopped after them.
 */
export function dispatchSuite(overrides: Record<string, string>) {
  const receivers: Receiver[] = [];
  const suite = {
    app: undefined as unknown as App,
    bus: undefined as unknown as BusClient,
    /** A receiver answering as told (over TLS with `tls`); closed after the suite. */
    async receiver(respond?: Responder, tls?: { key: string; cert: string }): Promise<Receiver> {
      const receiver = await Receiver.start(respond, tls);
      receivers.push(receiver);
      return receiver;
    },
    /**
     * Publishes one envelope per event for `tenant` on the inbound exchange, then waits until
     * `sub` has `total` deliveries, all settled; answers them oldest first.
     */
    async settle(
      tenant: string,
      sub: Subscription,
      events: { id: string; event: string; data?: unknown }[],
      total = events.length,
    ): Promise<DeliveryRecord[]> {
      for (const e of events) {
        const message = JSON.stringify(envelope({ tenantId: tenant, ...e }));
        await suite.bus.publish(suite.app.config.inbound.exchange, 'x', message);
      }
      return eventually(
        async () => {
          const found = await deliveries(suite.app, { webhookId: sub.id });
          return found.length === total && found.every((d) => d.status === 'success' || d.status === 'failed')
            ? found
            : undefined;
        },
        20_000,
        `${total} settled deliveries`,
      );
    },
  };
  beforeAll(async () => {
    suite.app = await startTestApp(overrides);
    await waitReady(suite.app);
    suite.bus = await BusClient.open();
  });
  afterAll(async () => {
    await suite.app?.stop();
    await suite.bus?.close();
    for (const receiver of receivers) await receiver.close();
  });
  return suite;
}

import amqp from 'amqplib';
import { expect } from 'vitest';
import type { App } from '../../src/app.js';
import { deliveryView, type AttemptDoc, type DeliveryDoc, type DeliveryRecord } from '../../src/dispatch/deliveries.js';
import { AMQP_URL } from './env.js';
import { bearer } from './jwt.js';

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
export async function deliveries(app: App, filter: Record<string, unknown> = {}): Promise<DeliveryRecord[]> {
  const db = app.db!.connection;
  const found = (await db
    .collection('deliveries')
    .find(filter)
    .sort({ createdAt: 1 })
    .toArray()) as unknown as DeliveryDoc[];
  const ids = found.map((d) => d._id);
  const attempts = (await db
    .collection('delivery_attempts')
    .find({ deliveryId: { $in: ids } })
    .toArray()) as unknown as AttemptDoc[];
  return found.map((d) =>
    deliveryView(
      d,
      attempts.filter((a) => a.deliveryId === d._id),
    ),
  );
}

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

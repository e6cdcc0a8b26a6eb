import amqplib from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { readiness, startTestApp, waitReady } from '../support/app.js';
import { AMQP_URL, uniqueName } from '../support/env.js';
import { closeConnection, connectionsOf } from '../support/rabbitmq.js';
import { eventually } from '../support/wait.js';

describe('RabbitMQ connection', () => {
  let app: App;
  let admin: amqplib.ChannelModel;

  beforeAll(async () => {
    app = await startTestApp({ HOOKBUS_ROLES: 'ingest' });
    await waitReady(app);
    admin = await amqplib.connect(AMQP_URL);
  });

  afterAll(async () => {
    const channel = await admin?.createChannel();
    await channel?.deleteExchange(app.config.inbound.exchange);
    await admin?.close();
    await app?.stop();
  });

  it('When started, then the inbound exchange is declared as a durable topic exchange', async () => {
    const channel = await admin.createChannel();
    // Redeclaring with the same arguments succeeds only if type and durability match.
    await expect(
      channel.assertExchange(app.config.inbound.exchange, 'topic', { durable: true }),
    ).resolves.toBeDefined();
    await channel.close();
  });

  it('When the broker closes the connection, then hookbus reconnects by itself and declares its topology again', async () => {
    const exchange = app.config.inbound.exchange;
    const channel = await admin.createChannel();
    await channel.deleteExchange(exchange);
    await channel.close();

    const before = await connectionsOf(app.connectionName);
    expect(before).toHaveLength(1);
    expect(await closeConnection(app.connectionName)).toBe(1);
    const after = await eventually(
      async () => {
        const now = await connectionsOf(app.connectionName);
        return now.length === 1 && now[0] !== before[0] ? now : undefined;
      },
      30_000,
      'a new connection from hookbus',
    );
    expect(after[0]).not.toBe(before[0]);
    await waitReady(app);

    const check = await admin.createChannel();
    await expect(check.checkExchange(exchange)).resolves.toBeDefined();
    await check.close();
  });

  it('When the inbound exchange exists with another type, then hookbus stays up and says 503, and heals once it is fixed', async () => {
    const exchange = uniqueName('test.mismatch');
    const channel = await admin.createChannel();
    await channel.assertExchange(exchange, 'direct', { durable: true });
    const broken = await startTestApp({ HOOKBUS_ROLES: 'ingest', INBOUND_EXCHANGE: exchange });
    try {
      // Connected, and its declaration refused: deleting the exchange while that first declaration
      // is still on its way made the outcome depend on which reached the broker first.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await eventually(async () => (await readiness(broken)).status === 503, 10_000, 'readyz 503');
      expect((await readiness(broken)).body).toMatchObject({ checks: { rabbitmq: 'down', mongodb: 'up' } });

      await channel.deleteExchange(exchange);
      await waitReady(broken, 45_000);
      // checkExchange closes its channel when the exchange is missing: one fresh channel a try.
      // (Rarely /readyz has been seen 200 a moment before the redeclared exchange is visible.)
      const exists = async () => {
        const check = await admin.createChannel();
        check.on('error', () => undefined);
        try {
          await check.checkExchange(exchange);
          await check.deleteExchange(exchange);
          await check.close();
          return true;
        } catch {
          return false;
        }
      };
      await eventually(exists, 5_000, 'the inbound exchange declared again');
    } finally {
      await channel.close();
      await broken.stop();
    }
  });
});

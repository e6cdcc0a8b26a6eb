import amqplib, { type ConsumeMessage } from 'amqplib';
import { AMQP_URL } from './env.js';
import { eventually } from './wait.js';

/** A queue of the test's own, bound to an exchange, recording every message that reaches it. */
export class QueueTap {
  readonly messages: ConsumeMessage[] = [];

  private constructor(
    private readonly connection: amqplib.ChannelModel,
    readonly exchange: string,
    readonly queue: string,
  ) {}

  static async open(exchange: string, bindingKey = '#', type = 'topic'): Promise<QueueTap> {
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createChannel();
    await channel.assertExchange(exchange, type, { durable: true });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, bindingKey);
    const tap = new QueueTap(connection, exchange, queue);
    await channel.consume(queue, (msg) => msg && tap.messages.push(msg), { noAck: true });
    return tap;
  }

  bodies(): Record<string, unknown>[] {
    return this.messages.map((m) => JSON.parse(m.content.toString()) as Record<string, unknown>);
  }

  async waitFor(count: number, timeoutMs = 10_000): Promise<ConsumeMessage[]> {
    await eventually(() => this.messages.length >= count, timeoutMs, `${count} messages on the tap`);
    return this.messages;
  }

  /** Waits a little and returns what arrived: for asserting that nothing was published. */
  async settle(ms = 300): Promise<ConsumeMessage[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.messages;
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

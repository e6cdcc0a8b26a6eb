import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { Bus, BusChannel, Topology } from './connection.js';
import type { ConfirmPublisher } from './publisher.js';

export type ControlMessage = { kind: 'hook.changed'; token: string } | { kind: 'subscription.changed'; id: string };

export interface ControlHandler {
  onMessage(message: ControlMessage): void;
  /** Called after every (re)connect: messages sent while disconnected were missed. */
  onResync(): void;
}

/**
 * The fanout exchange (`<DISPATCH_QUEUE_PREFIX>.control`) for cache invalidations between one
 * deployment's processes; never carries envelopes, and never reaches another deployment.
 */
export const controlTopology =
  (exchange: string): Topology =>
  async (channel) => {
    await channel.assertExchange(exchange, 'fanout', { durable: true });
  };

const CONFIRM_TIMEOUT_MS = 2000;
const ANNOUNCE_ATTEMPTS = 3;
const SETTLE_MS = 100;

/**
 * Announces changes to every hookbus process (this one included, directly and at once) and
 * delivers the announcements of others to the handlers registered here.
 */
export class Control {
  private readonly handlers: ControlHandler[] = [];
  private consumer: BusChannel | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly publisher: ConfirmPublisher,
    private readonly logger: Logger,
    private readonly exchange: string,
    /** Wraps the consumer's setup: it consumes only once the deployment's prefix is verified. */
    private readonly guarded: (setup: Topology) => Topology = (setup) => setup,
  ) {}

  /**
   * Resolves once the broker has the announcement for every other process (tried 3 times). Never
   * rejects: should the broker stay unreachable, the others miss it, but each clears its caches
   * when it reconnects (onResync), and cached hooks expire within 10 s in any case.
   */
  async announce(message: ControlMessage): Promise<void> {
    this.deliver(message);
    const content = Buffer.from(JSON.stringify(message));
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publisher.publish(
          this.exchange,
          '',
          content,
          { messageId: `ctl_${randomUUID()}`, contentType: 'application/json', persistent: false },
          CONFIRM_TIMEOUT_MS,
        );
        // The broker's confirm means the announcement is queued for every process, not yet
        // consumed. Changes are rare: waiting a moment lets the others apply it before the caller
        // gets its answer (measured: under CI load, not always within the next HTTP round trip).
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        return;
      } catch (error) {
        if (attempt >= ANNOUNCE_ATTEMPTS) {
          this.logger.warn({ err: (error as Error).message, kind: message.kind }, 'control announcement not delivered');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
      }
    }
  }

  /** Starts the process's own exclusive queue on the fanout the first time a handler registers. */
  subscribe(handler: ControlHandler): void {
    this.handlers.push(handler);
    this.consumer ??= this.bus.channel(
      'control-consumer',
      this.guarded(async (channel) => {
        await controlTopology(this.exchange)(channel);
        const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
        await channel.bindQueue(queue, this.exchange, '');
        await channel.consume(queue, (msg) => msg && this.receive(msg.content), { noAck: true });
        for (const h of this.handlers) h.onResync();
      }),
    );
  }

  private receive(content: Buffer): void {
    try {
      this.deliver(JSON.parse(content.toString()) as ControlMessage);
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'ignored an unreadable control message');
    }
  }

  private deliver(message: ControlMessage): void {
    for (const h of this.handlers) h.onMessage(message);
  }

  async close(): Promise<void> {
    await this.consumer?.wrapper.close();
  }
}

import type { ConfirmChannel, Options } from 'amqplib';
import type { Bus, BusChannel, Topology } from './connection.js';

export type PublishFailure = 'unavailable' | 'returned' | 'nacked' | 'timeout';

export class PublishError extends Error {
  constructor(readonly reason: PublishFailure) {
    super(`publish failed: ${reason}`);
    this.name = 'PublishError';
  }
}

interface Pending {
  returned: boolean;
}

/**
 * Publishes on one confirm channel with any number of publishes awaiting their confirms at once.
 * `publish()` resolves only on the broker's ack; it rejects at once while there is no channel
 * (no in-memory queue that could answer late), when the broker nacks, when a `mandatory`
 * message comes back unroutable, when the channel dies first, or after `timeoutMs`.
 */
export class ConfirmPublisher {
  private channel: ConfirmChannel | undefined;
  private readonly busChannel: BusChannel;
  private readonly pending = new Map<string, Pending>();

  constructor(bus: Bus, name: string, topology?: Topology) {
    this.busChannel = bus.channel(name, async (channel) => {
      if (topology) await topology(channel);
      channel.on('return', (message: { properties: { messageId?: string } }) => {
        const pending = this.pending.get(message.properties.messageId ?? '');
        if (pending) pending.returned = true;
      });
      channel.once('close', () => {
        if (this.channel === channel) this.channel = undefined;
      });
      this.channel = channel;
    });
  }

  isReady(): boolean {
    return this.channel !== undefined && this.busChannel.isReady();
  }

  /** AMQP short strings (routing keys among them) hold at most 255 bytes. */
  static readonly MAX_ROUTING_KEY_BYTES = 255;

  /** `options.messageId` is required: it ties a basic.return to its publish. */
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish & { messageId: string },
    timeoutMs: number,
  ): Promise<void> {
    const channel = this.channel;
    if (!channel) return Promise.reject(new PublishError('unavailable'));
    const pending: Pending = { returned: false };
    this.pending.set(options.messageId, pending);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => settle(new PublishError('timeout')), timeoutMs);
      const settle = (error?: PublishError) => {
        clearTimeout(timer);
        // A retry may reuse the id while this publish's late ack is still due.
        if (this.pending.get(options.messageId) === pending) this.pending.delete(options.messageId);
        if (error) reject(error);
        else resolve();
      };
      try {
        channel.publish(exchange, routingKey, content, options, (err) => {
          if (err) settle(new PublishError(String(err).includes('nacked') ? 'nacked' : 'unavailable'));
          else settle(pending.returned ? new PublishError('returned') : undefined);
        });
      } catch {
        // amqplib registers the confirm callback before encoding: a publish that throws (a closed
        // channel, an over-long field) leaves a callback behind, and every later ack would settle
        // the publish before it. The channel's confirm accounting is unusable: rebuild it.
        settle(new PublishError('unavailable'));
        this.discard(channel);
      }
    });
  }

  private discard(channel: ConfirmChannel): void {
    if (this.channel === channel) this.channel = undefined;
    channel.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.busChannel.wrapper.close();
  }
}

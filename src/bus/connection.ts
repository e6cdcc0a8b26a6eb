import amqp, { type AmqpConnectionManager, type ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { redactUrl, type Logger } from '../logger.js';

/** Declares exchanges, queues and bindings; re-run on every (re)connect. */
export type Topology = (channel: ConfirmChannel) => Promise<void>;

export interface BusOptions {
  url: string;
  /** The client's `connection_name`, shown by `rabbitmqctl list_connections client_properties`. */
  connectionName: string;
  logger: Logger;
  heartbeatSeconds?: number;
  /** First wait before reconnecting; doubles after each failed attempt up to maxReconnectSeconds. */
  reconnectSeconds?: number;
  maxReconnectSeconds?: number;
}

export interface BusChannel {
  wrapper: ChannelWrapper;
  /** True once the channel is open and its setup (topology, consumers) has succeeded. */
  isReady(): boolean;
}

/**
 * The RabbitMQ connection of one process: reconnects by itself with exponential backoff, and
 * re-runs every channel's setup on each new connection. A channel that breaks while the
 * connection stays up (a failed declaration, a channel-level error) would otherwise stay down
 * until the next reconnect, so the bus then forces one, with its own backoff.
 */
export class Bus {
  readonly manager: AmqpConnectionManager;
  /** The client's `connection_name`: names this process in the broker and in lease documents. */
  readonly connectionName: string;
  private blocked = false;
  private closing = false;
  private failedConnects = 0;
  private readonly base: number;
  private readonly max: number;
  private healDelaySeconds: number;
  private healTimer: NodeJS.Timeout | undefined;
  private readonly channels: { name: string; ready: () => boolean }[] = [];

  constructor(private readonly options: BusOptions) {
    const { logger } = options;
    this.connectionName = options.connectionName;
    this.base = options.reconnectSeconds ?? 0.5;
    this.max = options.maxReconnectSeconds ?? 30;
    this.healDelaySeconds = this.base;
    this.manager = amqp.connect([options.url], {
      heartbeatIntervalInSeconds: options.heartbeatSeconds ?? 5,
      reconnectTimeInSeconds: this.base,
      connectionOptions: { clientProperties: { connection_name: options.connectionName } },
    });
    this.manager.on('connect', () => {
      this.failedConnects = 0;
      this.manager.reconnectTimeInSeconds = this.base;
      this.blocked = false;
      logger.info({ url: redactUrl(options.url) }, 'rabbitmq connected');
    });
    this.manager.on('disconnect', ({ err }) => {
      if (!this.closing) logger.warn({ err: err?.message }, 'rabbitmq connection lost; reconnecting');
    });
    // amqp-connection-manager swallows connect errors unless someone listens for them. It reads
    // reconnectTimeInSeconds right after this event, so the wait set here is the one it uses.
    this.manager.on('connectFailed', ({ err }) => {
      const wait = Math.min(this.max, this.base * 2 ** this.failedConnects++);
      this.manager.reconnectTimeInSeconds = wait;
      logger.warn({ err: err?.message, retryInSeconds: wait }, 'rabbitmq connect failed');
    });
    this.manager.on('blocked', ({ reason }) => {
      this.blocked = true;
      logger.warn({ reason }, 'rabbitmq blocked the connection');
    });
    this.manager.on('unblocked', () => {
      this.blocked = false;
    });
  }

  /** A confirm channel whose setup (topology, consumers, prefetch) re-runs after every reconnect. */
  channel(name: string, setup: Topology): BusChannel {
    let ready = false;
    const wrapper = this.manager.createChannel({
      name,
      confirm: true,
      setup: async (channel: ConfirmChannel) => {
        // A refused declaration is a channel error, reported by the failed call itself. Unheard,
        // amqplib would throw it in its frame loop and take the whole connection down with it.
        channel.on('error', (err: Error) =>
          this.options.logger.debug({ err: err.message, channel: name }, 'channel error'),
        );
        channel.once('close', () => {
          ready = false;
          this.heal(name);
        });
        await setup(channel);
        ready = true;
        this.healDelaySeconds = this.base;
      },
    });
    // Without a listener, a failed setup would be an unhandled error and end the process.
    wrapper.on('error', (err: Error) => {
      ready = false;
      this.options.logger.error({ err: err.message, channel: name }, 'rabbitmq channel setup failed');
      this.heal(name);
    });
    const isReady = () => ready;
    this.channels.push({ name, ready: isReady });
    return { wrapper, isReady };
  }

  /** Reconnects (re-running every setup) if a channel is still broken after a backoff delay. */
  private heal(name: string): void {
    if (this.closing || this.healTimer) return;
    const delay = this.healDelaySeconds;
    this.healDelaySeconds = Math.min(this.max, delay * 2);
    this.healTimer = setTimeout(() => {
      this.healTimer = undefined;
      const broken = this.channels.filter((c) => !c.ready()).map((c) => c.name);
      if (this.closing || broken.length === 0 || !this.manager.isConnected()) return;
      this.options.logger.warn({ channels: broken, channel: name }, 'rabbitmq channel broken; reconnecting');
      this.manager.reconnect();
    }, delay * 1000);
    this.healTimer.unref();
  }

  isConnected(): boolean {
    return this.manager.isConnected() && !this.blocked;
  }

  /** Connected, not blocked, and every channel open with its setup done. */
  isReady(): boolean {
    return this.isConnected() && this.channels.every((c) => c.ready());
  }

  /** Close every channel first (their owners do), so their last acks and confirms are not lost. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.healTimer);
    await this.manager.close();
  }
}

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

/**
 * The RabbitMQ connection of one process: reconnects by itself with exponential backoff and
 * re-declares every registered topology on each new connection. Channels are confirm channels.
 */
export class Bus {
  readonly manager: AmqpConnectionManager;
  private blocked = false;

  constructor(private readonly options: BusOptions) {
    const { logger } = options;
    const base = options.reconnectSeconds ?? 0.5;
    const max = options.maxReconnectSeconds ?? 30;
    this.manager = amqp.connect([options.url], {
      heartbeatIntervalInSeconds: options.heartbeatSeconds ?? 5,
      reconnectTimeInSeconds: base,
      connectionOptions: { clientProperties: { connection_name: options.connectionName } },
    });
    this.manager.on('connect', () => {
      this.manager.reconnectTimeInSeconds = base;
      this.blocked = false;
      logger.info({ url: redactUrl(options.url) }, 'rabbitmq connected');
    });
    this.manager.on('disconnect', ({ err }) => {
      logger.warn({ err: err?.message }, 'rabbitmq connection lost; reconnecting');
    });
    // amqp-connection-manager swallows connect errors unless someone listens for them.
    this.manager.on('connectFailed', ({ err }) => {
      const wait = this.manager.reconnectTimeInSeconds;
      logger.warn({ err: err?.message, retryInSeconds: wait }, 'rabbitmq connect failed');
      this.manager.reconnectTimeInSeconds = Math.min(max, wait * 2);
    });
    this.manager.on('blocked', ({ reason }) => {
      this.blocked = true;
      logger.warn({ reason }, 'rabbitmq blocked the connection');
    });
    this.manager.on('unblocked', () => {
      this.blocked = false;
    });
  }

  /** A new confirm channel whose setup (consumers, prefetch) re-runs after every reconnect. */
  channel(name: string, setup?: Topology): ChannelWrapper {
    return this.manager.createChannel({ name, confirm: true, ...(setup ? { setup } : {}) });
  }

  isConnected(): boolean {
    return this.manager.isConnected() && !this.blocked;
  }

  /** Close every channel first (their owners do), so their last acks and confirms are not lost. */
  async close(): Promise<void> {
    await this.manager.close();
  }
}

import type { Topology } from './connection.js';

/** The inbound exchange every webhook is published to (SPEC §4.2). */
export function inboundTopology(exchange: string): Topology {
  return async (channel) => {
    await channel.assertExchange(exchange, 'topic', { durable: true });
  };
}

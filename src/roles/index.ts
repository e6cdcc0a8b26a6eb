import type { Router } from 'express';
import type { Bus } from '../bus/connection.js';
import { inboundTopology } from '../bus/topology.js';
import type { Config, Role } from '../config/index.js';
import type { Database } from '../db/connection.js';
import type { DependencyName } from '../health.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

export interface RoleContext {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  db: Database;
  bus: Bus;
}

export interface RunningRole {
  routers: Router[];
  /** Stops taking new work and finishes what is in flight (bounded by the caller). */
  stop(): Promise<void>;
}

interface RoleDefinition {
  /** What the role cannot work without; /readyz checks exactly these. */
  needs: readonly DependencyName[];
  start(ctx: RoleContext): Promise<RunningRole>;
}

const nothingToStop = async () => undefined;

/**
 * Every role needs both dependencies: the API stores hooks and subscriptions in MongoDB and
 * announces changes on the bus; ingest looks hooks up in MongoDB and publishes to RabbitMQ; the
 * dispatcher consumes from RabbitMQ and records deliveries in MongoDB.
 */
export const ROLE_DEFINITIONS: Record<Role, RoleDefinition> = {
  api: {
    needs: ['mongodb', 'rabbitmq'],
    start: async () => ({ routers: [], stop: nothingToStop }),
  },
  ingest: {
    needs: ['mongodb', 'rabbitmq'],
    start: async ({ bus, config }) => {
      await bus.declare(inboundTopology(config.inbound.exchange));
      return { routers: [], stop: nothingToStop };
    },
  },
  dispatcher: {
    needs: ['mongodb', 'rabbitmq'],
    start: async () => ({ routers: [], stop: nothingToStop }),
  },
};

export function dependenciesOf(roles: readonly Role[]): Set<DependencyName> {
  return new Set(roles.flatMap((role) => ROLE_DEFINITIONS[role].needs));
}

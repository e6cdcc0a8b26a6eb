import type { Topology } from '../bus/connection.js';
import { inboundTopology } from '../bus/topology.js';
import { startDispatcher } from './dispatcher.js';
import { apiTopology, dispatchNames, dispatchTopology } from '../dispatch/topology.js';
import { Sender } from '../dispatch/attempt.js';
import { DeliveryLog } from '../deliveries/log.js';
import { deliveryLogRoutes } from '../delivery-log/routes.js';
import { eventRoutes } from '../events/routes.js';
import type { Config, Role } from '../config/index.js';
import type { QueueOwner } from '../deployment.js';
import type { DependencyName } from '../health.js';
import { HookCache } from '../hooks/cache.js';
import { hookConfigRoutes } from '../hooks/config-routes.js';
import { hookModel } from '../hooks/model.js';
import { inboundRoute } from '../hooks/receive.js';
import { subscriptionModel } from '../webhooks/model.js';
import { subscriptionRoutes } from '../webhooks/routes.js';
import type { RoleContext, RunningRole } from './context.js';

export type { RoleContext, RunningRole };

interface RoleDefinition {
  /** What the role cannot work without; /readyz checks exactly these. */
  needs: readonly DependencyName[];
  /** Exchanges and queues the role publishes to, as the deployment's; declared on every (re)connect. */
  topology?: (config: Config, owner: QueueOwner) => Topology;
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
    topology: (config, owner) =>
      apiTopology(dispatchNames(config.dispatch.queuePrefix), config.delivery.retrySchedule, owner),
    start: async ({ config, db, control, publisher, metrics, logger }) => {
      const names = dispatchNames(config.dispatch.queuePrefix);
      const subscriptions = subscriptionModel(db.connection);
      // Test sends and retries made by an operator are attempts like the dispatcher's.
      const sender = new Sender(config.delivery.allowPrivateTargets);
      const log = DeliveryLog.of(db.connection);
      return {
        routers: [
          hookConfigRoutes(config, hookModel(db.connection), control),
          subscriptionRoutes(config, subscriptions, control),
          deliveryLogRoutes({ config, log, subscriptions, sender, publisher, control, metrics, logger, names }),
          eventRoutes(config, publisher, names.events),
        ],
        fastRoutes: [],
        stop: async () => sender.close(),
      };
    },
  },
  ingest: {
    needs: ['mongodb', 'rabbitmq'],
    topology: (config) => inboundTopology(config.inbound.exchange),
    start: async ({ config, db, control, publisher, metrics }) => {
      const cache = new HookCache(hookModel(db.connection));
      control.subscribe(cache);
      return {
        routers: [],
        fastRoutes: [inboundRoute({ config, cache, publisher, metrics })],
        stop: nothingToStop,
      };
    },
  },
  dispatcher: {
    needs: ['mongodb', 'rabbitmq'],
    topology: (config, owner) =>
      dispatchTopology(
        dispatchNames(config.dispatch.queuePrefix),
        config.dispatch.bindings,
        config.delivery.retrySchedule,
        owner,
      ),
    start: startDispatcher,
  },
};

export function dependenciesOf(roles: readonly Role[]): Set<DependencyName> {
  return new Set(roles.flatMap((role) => ROLE_DEFINITIONS[role].needs));
}

/** The topology of the selected roles, in role order. */
export function topologyOf(config: Config, owner: QueueOwner): Topology[] {
  return config.roles.flatMap((role) => ROLE_DEFINITIONS[role].topology?.(config, owner) ?? []);
}

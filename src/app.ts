import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Bus } from './bus/connection.js';
import { Control, controlTopology } from './bus/control.js';
import { ConfirmPublisher } from './bus/publisher.js';
import { effectiveConfig, type Config } from './config/index.js';
import { Database } from './db/connection.js';
import { Deployment, type DeploymentConflict } from './deployment.js';
import { dispatchNames } from './dispatch/topology.js';
import { within, type Dependency } from './health.js';
import { createHttpApp } from './http/app.js';
import { fastRouter } from './http/fast-route.js';
import { healthRoutes } from './http/health-routes.js';
import { createHttpServer } from './http/server.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { dependenciesOf, ROLE_DEFINITIONS, topologyOf, type RoleContext, type RunningRole } from './roles/index.js';

/** Each connection gets this long to close during shutdown. */
const CLOSE_TIMEOUT_MS = 2000;

export interface StartOptions {
  logger?: Logger;
  /** How long stop() lets in-flight HTTP requests finish before cutting connections. */
  httpDrainMs?: number;
  /**
   * Called when the broker refuses a queue as another deployment's (the process cannot go on);
   * main exits 1. By default it is logged, and the process stays not ready.
   */
  onDeploymentConflict?: (conflict: DeploymentConflict) => void;
}

export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly db: Database | undefined;
  readonly bus: Bus | undefined;
  /** The client's `connection_name`, shown by `rabbitmqctl list_connections client_properties`. */
  readonly connectionName: string;
  readonly server: Server;
  /** http://host:port the server listens on (the real port when PORT=0). */
  readonly url: string;
  /** Stops accepting, drains, stops the roles in reverse order, closes connections. */
  stop(): Promise<void>;
}

/** Builds {config, logger, metrics, db, bus} once, starts the selected roles, then listens. */
export async function startApp(config: Config, options: StartOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.logLevel);
  // What this process runs with, every key by its variable (secrets masked): one line to check it by.
  logger.info({ config: effectiveConfig(config) }, 'configuration in effect');
  const needs = dependenciesOf(config.roles);
  const connectionName = `hookbus ${config.roles.join('+')} ${process.pid} ${randomBytes(4).toString('hex')}`;

  const db = needs.has('mongodb') ? new Database({ uri: config.mongodb.uri, logger }) : undefined;
  const bus = needs.has('rabbitmq') ? new Bus({ url: config.amqp.url, connectionName, logger }) : undefined;
  db?.connect();
  const names = dispatchNames(config.dispatch.queuePrefix);
  const onConflict =
    options.onDeploymentConflict ??
    ((conflict: DeploymentConflict) => logger.fatal({ err: conflict.message }, 'deployment conflict'));
  const deployment = db && bus && new Deployment({ db, bus, logger, prefix: names.prefix, onConflict });
  const topology = deployment?.topology((owner) => async (channel) => {
    for (const declare of [controlTopology(names.control), ...topologyOf(config, owner)]) await declare(channel);
  });
  const publisher = bus && topology ? new ConfirmPublisher(bus, 'publisher', topology) : undefined;
  const control =
    bus && publisher && deployment
      ? new Control(bus, publisher, logger, names.control, (setup) => deployment.topology(() => setup))
      : undefined;
  const rabbitmq: Dependency | undefined = bus && {
    name: 'rabbitmq',
    // Connected, and every channel open with its topology declared and its consumers started. Until
    // MongoDB has given the deployment id no channel can declare anything: that is MongoDB's fault.
    check: async () =>
      deployment?.isKnown() === false ? bus.isConnected() : bus.isReady() && (publisher?.isReady() ?? false),
  };
  const mongodb: Dependency | undefined = db && {
    name: 'mongodb',
    // Reachable, and the deployment id read: until then nothing can be declared or consumed. Read
    // before the ping, as the rabbitmq check reads it: one answer, not two taken apart by a ping.
    check: async () => {
      const known = deployment?.isKnown() ?? true;
      return known && (await db.check());
    },
  };
  const dependencies = [mongodb, rabbitmq].filter((d): d is Dependency => d !== undefined);
  const metrics = createMetrics(dependencies, config.delivery.timeoutMs);

  const ctx = { config, logger, metrics, db, bus, publisher, control, deployment } as RoleContext;
  const running: RunningRole[] = [];
  for (const role of config.roles) running.push(await ROLE_DEFINITIONS[role].start(ctx));
  // The roles have compiled their models: build their indexes if connected already (else on connect).
  void db?.ensureIndexes();

  let shuttingDown = false;
  const isShuttingDown = () => shuttingDown;
  const http = createHttpApp({
    logger,
    metrics,
    routers: [healthRoutes(dependencies, metrics), ...running.flatMap((r) => r.routers)],
    isShuttingDown,
  });
  const fast = fastRouter(
    running.flatMap((r) => r.fastRoutes),
    { logger, metrics, isShuttingDown },
  );
  const server = createHttpServer(
    (req, res) => {
      if (!fast.serve(req, res)) http(req, res);
    },
    logger,
    { maxBody: config.inbound.maxBody },
  );
  server.listen(config.http.port, config.http.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  logger.info({ port, roles: config.roles }, 'hookbus listening');

  const stop = async () => {
    shuttingDown = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const drained = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(resolve, options.httpDrainMs ?? 5000, false).unref()),
    ]);
    if (!drained) {
      logger.warn('http requests still open after the drain period; closing their connections');
      server.closeAllConnections();
      await closed;
    }
    for (const role of running.reverse()) await role.stop();
    // A hung broker or database must not hold the process past its shutdown bound.
    const closeWithin = async (what: string, close: (() => Promise<void>) | undefined) => {
      if (
        close &&
        !(await within(
          close().then(() => true),
          CLOSE_TIMEOUT_MS,
          false,
        ))
      ) {
        logger.warn({ what, timeoutMs: CLOSE_TIMEOUT_MS }, 'close did not finish in time; going on');
      }
    };
    await closeWithin('control', control && (() => control.close()));
    await closeWithin('publisher', publisher && (() => publisher.close()));
    await closeWithin('rabbitmq', bus && (() => bus.close()));
    await closeWithin('mongodb', db && (() => db.close()));
    logger.info('hookbus stopped');
  };

  return { config, logger, metrics, db, bus, connectionName, server, url: `http://${host}:${port}`, stop };
}

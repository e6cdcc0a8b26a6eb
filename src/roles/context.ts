import type { Router } from 'express';
import type { Bus } from '../bus/connection.js';
import type { Control } from '../bus/control.js';
import type { ConfirmPublisher } from '../bus/publisher.js';
import type { Config } from '../config/index.js';
import type { Database } from '../db/connection.js';
import type { Deployment } from '../deployment.js';
import type { FastRoute } from '../http/fast-route.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

/** What every role is started with. */
export interface RoleContext {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  db: Database;
  bus: Bus;
  /** The process's one confirm channel for publishing; declares every role's topology. */
  publisher: ConfirmPublisher;
  control: Control;
  /** The deployment's id (from MongoDB): every queue is declared as its. */
  deployment: Deployment;
}

export interface RunningRole {
  routers: Router[];
  fastRoutes: FastRoute[];
  /** Stops taking new work and finishes what is in flight (bounded by the caller). */
  stop(): Promise<void>;
}

import { randomBytes } from 'node:crypto';

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

/** Prefix of everything a test run creates: its vhost, its databases, its dispatcher queues. */
export const TEST_QUEUE_PREFIX = 'hbtest';

/**
 * This run's id. The integration project's global setup makes one (or takes HOOKBUS_TEST_RUN
 * from scripts/test.sh) and every worker inherits it; a process without one (a unit test) makes
 * its own, which it only ever uses for names.
 */
export const TEST_RUN = (process.env.HOOKBUS_TEST_RUN ??= randomBytes(4).toString('hex'));

/** The throwaway vhost this run's broker state lives in; the global teardown deletes it whole. */
export const TEST_VHOST = `${TEST_QUEUE_PREFIX}_${TEST_RUN}`;

/** The broker the tests use: AMQP_URL when set, else the local one; always in this run's vhost. */
export const AMQP_URL = inVhost(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', TEST_VHOST);

function inVhost(base: string, vhost: string): string {
  const url = new URL(base);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.toString();
}

/** The MongoDB-wire server the tests use: MONGODB_URI when set, else the one scripts/services.sh starts. */
export const MONGODB_BASE = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/hookbus';

/** Every database of this run starts with this; the global teardown drops them. */
export const TEST_DATABASE_PREFIX = `${TEST_VHOST}_`;

/** A connection string to a database of its own, so test files never see each other's data. */
export function mongoUri(database = uniqueName(TEST_VHOST)): string {
  const url = new URL(MONGODB_BASE);
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * Environment for a hookbus under test: its own database, inbound exchange and dispatcher queues
 * (bound to that exchange only), port 0, all in this run's vhost.
 */
export function testEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const inbound = overrides.INBOUND_EXCHANGE ?? uniqueName('test.inbound');
  const prefix = overrides.DISPATCH_QUEUE_PREFIX ?? uniqueName(TEST_QUEUE_PREFIX);
  return {
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    MONGODB_URI: mongoUri(),
    AMQP_URL,
    INBOUND_EXCHANGE: inbound,
    // The dispatcher also binds its own `<prefix>.events` exchange (POST /api/events) by itself.
    DISPATCH_BINDINGS: `${inbound}:#`,
    DISPATCH_QUEUE_PREFIX: prefix,
    ...overrides,
  };
}

import { randomBytes } from 'node:crypto';

/** The MongoDB-wire server the tests use: MONGODB_URI when set, else the one scripts/services.sh starts. */
const MONGODB_BASE = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/hookbus';
export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

/** A connection string to a database of its own, so test files never see each other's data. */
export function mongoUri(database = uniqueName('hookbus_test')): string {
  const url = new URL(MONGODB_BASE);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Prefix of every queue a test declares; the global teardown deletes them all. */
export const TEST_QUEUE_PREFIX = 'hbtest';

/**
 * Environment for a hookbus under test: its own database, inbound exchange and dispatcher queues
 * (bound to that exchange only), port 0.
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

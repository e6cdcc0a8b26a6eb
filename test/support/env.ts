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

/** Environment for a hookbus under test: its own database and exchange names, port 0. */
export function testEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    MONGODB_URI: mongoUri(),
    AMQP_URL,
    INBOUND_EXCHANGE: uniqueName('test.inbound'),
    ...overrides,
  };
}

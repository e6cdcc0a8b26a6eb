import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mongoose, { type Connection } from 'mongoose';
import { AMQP_URL, MONGODB_BASE, TEST_DATABASE_PREFIX, TEST_QUEUE_PREFIX, TEST_VHOST } from './env.js';

const run = promisify(execFile);

/** Runs rabbitmqctl; a list command's rows come back one a line, without headers. */
async function rabbitmqctl(...args: string[]): Promise<string[]> {
  const listing = args[0]!.startsWith('list_') ? ['--no-table-headers'] : [];
  const { stdout } = await run('rabbitmqctl', [...args, '--quiet', ...listing]);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

async function withMongo<T>(use: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await mongoose.createConnection(MONGODB_BASE, { serverSelectionTimeoutMS: 10_000 }).asPromise();
  try {
    return await use(connection);
  } finally {
    await connection.close();
  }
}

/** This run's throwaway vhost, which the broker user of AMQP_URL may use fully. */
export async function createRunVhost(): Promise<void> {
  const user = decodeURIComponent(new URL(AMQP_URL).username || 'guest');
  await rabbitmqctl('add_vhost', TEST_VHOST);
  await rabbitmqctl('set_permissions', '-p', TEST_VHOST, user, '.*', '.*', '.*');
}

/** Deletes the vhost (every queue and exchange the run declared) and the run's databases. */
export async function removeRunState(): Promise<void> {
  if ((await rabbitmqctl('list_vhosts', 'name')).includes(TEST_VHOST)) {
    await rabbitmqctl('delete_vhost', TEST_VHOST);
  }
  await withMongo(async (connection) => {
    for (const name of await databaseNames(connection)) {
      if (name.startsWith(TEST_DATABASE_PREFIX)) await connection.useDb(name).dropDatabase();
    }
  });
}

async function databaseNames(connection: Connection): Promise<string[]> {
  const { databases } = await connection.listDatabases();
  return databases.map((d) => d.name);
}

/**
 * What tests name their state by: vhosts and databases `hbtest_…`, queues `hbtest_…`, exchanges
 * `hbtest_…` and `test.…`. Anything else on a shared broker or server belongs to someone else, and
 * so does the vhost and the databases of another run (`hbtest_<8 hex>`) going on beside this one.
 */
const TEST_NAME = new RegExp(`^(${TEST_QUEUE_PREFIX}_|test\\.)`);
const RUN_NAME = new RegExp(`^${TEST_QUEUE_PREFIX}_[0-9a-f]{8}(_|$)`);
const ours = (name: string) => TEST_NAME.test(name) && (!RUN_NAME.test(name) || name.startsWith(TEST_VHOST));

/** Every test-named vhost, queue, exchange and database on the broker and the server, but other runs'. */
export async function testState(): Promise<string[]> {
  const vhosts = (await rabbitmqctl('list_vhosts', 'name')).filter((v) => !RUN_NAME.test(v) || v === TEST_VHOST);
  const found = vhosts.filter(ours).map((v) => `vhost ${v}`);
  for (const vhost of vhosts) {
    for (const what of ['queues', 'exchanges'] as const) {
      // A vhost deleted since it was listed (another tool's throwaway one) has nothing left.
      const names = await rabbitmqctl(`list_${what}`, '-p', vhost, 'name').catch(() => []);
      found.push(...names.filter(ours).map((n) => `${what.slice(0, -1)} ${n} (vhost ${vhost})`));
    }
  }
  const databases = await withMongo(databaseNames);
  found.push(...databases.filter(ours).map((d) => `database ${d}`));
  return found.sort();
}

import amqplib from 'amqplib';
import mongoose from 'mongoose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { deploymentModel } from '../../src/deployment.js';
import { delayQueues } from '../../src/dispatch/topology.js';
import { subscribe } from '../support/dispatch.js';
import { AMQP_URL, mongoUri, TEST_QUEUE_PREFIX, testEnv, uniqueName } from '../support/env.js';
import { bearer } from '../support/jwt.js';
import { listeningPort, spawnHookbus, type HookbusProcess } from '../support/process.js';
import { Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

/** The deployment id hookbus stored in a database. */
async function deploymentIdIn(uri: string): Promise<string | undefined> {
  const connection = await mongoose.createConnection(uri).asPromise();
  try {
    return (await deploymentModel(connection).findById('deployment').lean())?.deploymentId;
  } finally {
    await connection.close();
  }
}

describe('a deployment identity on a shared broker', () => {
  const prefix = uniqueName(TEST_QUEUE_PREFIX);
  const inbound = uniqueName('test.inbound');
  const [databaseA, databaseB] = [mongoUri(), mongoUri()];
  const env = (database: string) =>
    testEnv({ LOG_LEVEL: 'info', DISPATCH_QUEUE_PREFIX: prefix, INBOUND_EXCHANGE: inbound, MONGODB_URI: database });
  const running: HookbusProcess[] = [];
  let receiver: Receiver;

  async function start(database: string, overrides: Record<string, string> = {}): Promise<string> {
    const proc = spawnHookbus({ ...env(database), ...overrides });
    running.push(proc);
    const url = `http://127.0.0.1:${await listeningPort(proc)}`;
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 'readyz 200');
    return url;
  }

  beforeAll(async () => {
    receiver = await Receiver.start();
  });
  afterEach(async () => {
    for (const proc of running.splice(0)) {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });
  afterAll(async () => {
    await receiver?.close();
  });

  /** Starts a process expected to be refused: it must exit 1 with one line naming both deployments. */
  async function refused(database: string, overrides: Record<string, string> = {}): Promise<string> {
    const proc = spawnHookbus({ ...env(database), ...overrides });
    running.push(proc);
    expect((await proc.exited).code).toBe(1);
    const refusals = proc
      .output()
      .split('\n')
      .filter((line) => line.startsWith('hookbus: '));
    expect(refusals).toHaveLength(1);
    return refusals[0]!;
  }

  /** Posts `count` events as `tenant` through POST /api/events, all at once; each must be a 202. */
  async function postEvents(url: string, tenant: string, count: number, from = 0): Promise<void> {
    const answers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        fetch(`${url}/api/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...bearer(tenant) },
          body: JSON.stringify({ event: 'guard.test', data: { i: from + i } }),
        }).then((res) => res.status),
      ),
    );
    expect(answers).toEqual(Array(count).fill(202));
  }

  /** Waits until the receiver has had every event numbered `from` to `to` - 1. */
  const deliveredAll = (from: number, to: number) =>
    eventually(
      () => {
        const seen = new Set(receiver.requests.map((r) => (JSON.parse(r.body) as { data: { i: number } }).data.i));
        return Array.from({ length: to - from }, (_, k) => from + k).every((i) => seen.has(i));
      },
      20_000,
      `events ${from} to ${to - 1} delivered`,
    );

  it('When a second deployment (its own database) starts on the same DISPATCH_QUEUE_PREFIX, then it exits 1 with one line naming the prefix and both deployments, and the first delivers every event', async () => {
    const first = await start(databaseA);
    const idA = await deploymentIdIn(databaseA);
    expect(idA).toMatch(/^dep_[0-9A-Z]{26}$/);
    const tenant = uniqueName('t');
    await subscribe({ url: first }, tenant, { url: receiver.url, events: ['guard.test'] });

    // Events keep arriving while the second deployment starts: it must not take any of them.
    const [line] = await Promise.all([refused(databaseB), postEvents(first, tenant, 20)]);
    const idB = await deploymentIdIn(databaseB);
    expect(idB).toMatch(/^dep_/);
    expect(idB).not.toBe(idA);
    expect(line).toContain(prefix);
    expect(line).toContain(idA);
    expect(line).toContain(idB);

    await postEvents(first, tenant, 20, 20);
    await deliveredAll(0, 40);
  });

  it('When a process of another deployment runs only the ingest role (it declares no work queue), then it is refused too', async () => {
    await start(databaseA);
    const line = await refused(databaseB, { HOOKBUS_ROLES: 'ingest' });
    expect(line).toContain(`${prefix}.deployment`);
    expect(line).toContain((await deploymentIdIn(databaseA))!);
  });

  it('When a replica of the first deployment (the same database) starts on that prefix, then it shares the queues', async () => {
    await start(databaseA);
    const replica = await start(databaseA);
    expect(await deploymentIdIn(databaseA)).toMatch(/^dep_/);
    expect((await fetch(`${replica}/readyz`)).status).toBe(200);
  });

  it('When the prefix has queues an older hookbus declared (no deployment id), then they are used as they are, with a warning, and the prefix is still guarded', async () => {
    const old = uniqueName(TEST_QUEUE_PREFIX);
    const legacy = { DISPATCH_QUEUE_PREFIX: old };
    const schedule = loadConfig(env(mongoUri())).delivery.retrySchedule;
    // What an older hookbus declared: plain queues, and delay queues keyed `delivery`.
    await onAdminChannel(async (channel) => {
      for (const queue of ['dispatch', 'deliveries', 'dead']) {
        await channel.assertQueue(`${old}.${queue}`, { durable: true });
      }
      for (const ms of delayQueues(schedule)) {
        await channel.assertQueue(`${old}.retry.${ms}`, {
          durable: true,
          messageTtl: ms,
          deadLetterExchange: `${old}.deliveries`,
          deadLetterRoutingKey: 'delivery',
        });
      }
    });

    const url = await start(mongoUri(), legacy);
    const proc = running.at(-1)!;
    // Log lines reach this process on their own schedule, not with the HTTP answers.
    const warned = (queue: string) =>
      proc.output().includes(`"queue":"${old}.${queue}"`) &&
      proc.output().includes('queue declared before deployment ids');
    await eventually(() => ['dispatch', 'deliveries', 'dead'].every(warned), 5_000, 'a warning for each old queue');
    // All of them are learnt on throwaway channels first: no reconnect, not one per old queue.
    expect(proc.output()).not.toContain('rabbitmq connection lost');
    const tenant = uniqueName('t');
    await subscribe({ url }, tenant, { url: receiver.url, events: ['guard.test'] });
    await postEvents(url, tenant, 5, 100);
    await deliveredAll(100, 105);

    // An old queue deleted while it runs is declared again, with the id.
    await onAdminChannel((channel) => channel.deleteQueue(`${old}.dispatch`));
    await eventually(
      async () => (await fetch(`${url}/readyz`)).status === 200 && (await postEvents(url, tenant, 1, 200), true),
      20_000,
      'ready again',
    );
    await deliveredAll(200, 201);

    const line = await refused(mongoUri(), legacy);
    expect(line).toContain(`${old}.deployment`);
  });

  it('When the marker queue was deleted and another deployment starts, then that one is refused and gives the marker back', async () => {
    await start(databaseA);
    await onAdminChannel((channel) => channel.deleteQueue(`${prefix}.deployment`));
    const line = await refused(databaseB);
    expect(line).toContain(`${prefix}.dispatch`);
    await expect(onAdminChannel((channel) => channel.checkQueue(`${prefix}.deployment`))).rejects.toThrow(/NOT_FOUND/);
    // The deployment that holds the queues goes on: a replica of it starts and claims the marker.
    await start(databaseA);
    await onAdminChannel((channel) => channel.checkQueue(`${prefix}.deployment`));
  });
});

/** Runs `use` on a channel of a connection of its own, closed afterwards. */
async function onAdminChannel<T>(use: (channel: amqplib.Channel) => Promise<T>): Promise<T> {
  const connection = await amqplib.connect(AMQP_URL);
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return await use(channel);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

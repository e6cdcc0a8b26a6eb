import amqplib from 'amqplib';
import mongoose from 'mongoose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deploymentModel } from '../../src/deployment.js';
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

  async function start(database: string): Promise<string> {
    const proc = spawnHookbus(env(database));
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

  it('When a second deployment (its own database) starts on the same DISPATCH_QUEUE_PREFIX, then it exits 1 with one line naming the prefix and both deployments, and the first delivers every event', async () => {
    const first = await start(databaseA);
    const idA = await deploymentIdIn(databaseA);
    expect(idA).toMatch(/^dep_[0-9A-Z]{26}$/);

    const second = spawnHookbus(env(databaseB));
    const { code } = await second.exited;
    expect(code).toBe(1);
    const idB = await deploymentIdIn(databaseB);
    expect(idB).toMatch(/^dep_/);
    expect(idB).not.toBe(idA);
    const refusals = second
      .output()
      .split('\n')
      .filter((line) => line.startsWith('hookbus: '));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toContain(prefix);
    expect(refusals[0]).toContain(idA);
    expect(refusals[0]).toContain(idB);

    // The refused process took nothing: every event the first deployment accepted is delivered.
    const tenant = uniqueName('t');
    await subscribe({ url: first }, tenant, { url: receiver.url, events: ['guard.test'] });
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${first}/api/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(tenant) },
        body: JSON.stringify({ event: 'guard.test', data: { i } }),
      });
      expect(res.status).toBe(202);
    }
    const got = await receiver.waitFor(20);
    expect(new Set(got.map((r) => (JSON.parse(r.body) as { data: { i: number } }).data.i)).size).toBe(20);
  });

  it('When a replica of the first deployment (the same database) starts on that prefix, then it shares the queues', async () => {
    await start(databaseA);
    const replica = await start(databaseA);
    expect(await deploymentIdIn(databaseA)).toMatch(/^dep_/);
    expect((await fetch(`${replica}/readyz`)).status).toBe(200);
  });

  it('When the prefix has a queue declared without a deployment id (an older hookbus), then it exits 1 saying so', async () => {
    const old = uniqueName(TEST_QUEUE_PREFIX);
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createChannel();
    await channel.assertQueue(`${old}.dispatch`, { durable: true });
    await channel.close();
    await connection.close();

    const proc = spawnHookbus({ ...env(mongoUri()), DISPATCH_QUEUE_PREFIX: old });
    expect((await proc.exited).code).toBe(1);
    const refusals = proc
      .output()
      .split('\n')
      .filter((line) => line.startsWith('hookbus: '));
    expect(refusals).toEqual([expect.stringContaining(`queue ${old}.dispatch`)]);
    expect(refusals[0]).toContain('without a deployment id');
  });
});

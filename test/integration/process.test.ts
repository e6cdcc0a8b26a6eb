import amqplib from 'amqplib';
import { request, Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMQP_URL, mongoUri, testEnv, uniqueName } from '../support/env.js';
import { listeningPort, spawnHookbus, type HookbusProcess } from '../support/process.js';
import { relayed, TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/wait.js';

const SHUTDOWN_BOUND_MS = 10_000;

async function startProcess(env: Record<string, string> = {}): Promise<{ proc: HookbusProcess; url: string }> {
  const proc = spawnHookbus(testEnv({ LOG_LEVEL: 'info', ...env }));
  const port = await listeningPort(proc);
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 'readyz 200');
  return { proc, url };
}

describe('the hookbus process', () => {
  let admin: amqplib.ChannelModel;
  beforeAll(async () => {
    admin = await amqplib.connect(AMQP_URL);
  });
  afterAll(async () => {
    await admin?.close();
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ HOOKBUS_ROLES: 'foo' }, 'HOOKBUS_ROLES'],
    [{ DELIVERY_LOG_MAX_AGE: 'soon' }, 'DELIVERY_LOG_MAX_AGE'],
    [{ NODE_ENV: 'production' }, 'JWT_SECRET'],
  ])('When started with %o, then it exits 1 with one line naming %s', async (env, key) => {
    const proc = spawnHookbus({ ...testEnv(), ...env });
    const { code } = await proc.exited;
    expect(code).toBe(1);
    const lines = proc.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^hookbus: invalid configuration: ${key}: `));
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'When sent %s with a keep-alive connection open, then it stops accepting and exits 0 within the bound',
    async (signal) => {
      const { proc, url } = await startProcess();
      const agent = new Agent({ keepAlive: true });
      await new Promise<void>((resolve, reject) =>
        request(`${url}/healthz`, { agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
          .on('error', reject)
          .end(),
      );

      const started = Date.now();
      proc.child.kill(signal);
      const { code } = await proc.exited;
      agent.destroy();

      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(SHUTDOWN_BOUND_MS);
      expect(proc.output()).toContain('"msg":"hookbus stopped"');
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    },
  );

  it('When SIGTERM arrives while a request is in flight, then that request is answered before it exits 0', async () => {
    // /readyz waits up to 1 s for MongoDB's ping; a frozen relay makes that wait real.
    const mongo = mongoUri();
    const proxy = await TcpProxy.before(mongo);
    const { proc, url } = await startProcess({ MONGODB_URI: relayed(mongo, proxy) });

    proxy.freeze();
    const inFlight = fetch(`${url}/readyz`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    proc.child.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(503);
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.json()).toMatchObject({ checks: { mongodb: 'down' } });
    proxy.thaw();

    expect((await proc.exited).code).toBe(0);
    await proxy.stop();
  });

  it('When SIGTERM arrives while MongoDB is unreachable, then it still exits 0 within the bound', async () => {
    const proxy = await TcpProxy.before(mongoUri());
    await proxy.cut();
    const proc = spawnHookbus(testEnv({ LOG_LEVEL: 'info', MONGODB_URI: relayed(mongoUri(), proxy) }));
    await listeningPort(proc);
    await eventually(() => proc.output().includes('mongodb connect failed'), 20_000, 'a failed connect');
    const started = Date.now();
    proc.child.kill('SIGTERM');
    expect((await proc.exited).code).toBe(0);
    expect(Date.now() - started).toBeLessThan(SHUTDOWN_BOUND_MS);
  });

  it('When the roles are ingest and dispatcher, then no JWT key is needed and it becomes ready', async () => {
    const { proc, url } = await startProcess({ NODE_ENV: 'production', HOOKBUS_ROLES: 'ingest,dispatcher' });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    proc.child.kill('SIGTERM');
    expect((await proc.exited).code).toBe(0);
  });

  it('When only the api role runs, then the ingest topology is not declared; with ingest it is', async () => {
    const exchange = uniqueName('test.roles');
    const apiOnly = await startProcess({ HOOKBUS_ROLES: 'api', INBOUND_EXCHANGE: exchange });
    const channel = await admin.createChannel();
    channel.on('error', () => undefined);
    await expect(channel.checkExchange(exchange)).rejects.toThrow(/NOT_FOUND/);
    apiOnly.proc.child.kill('SIGTERM');
    await apiOnly.proc.exited;

    const ingest = await startProcess({ HOOKBUS_ROLES: 'ingest', INBOUND_EXCHANGE: exchange });
    const check = await admin.createChannel();
    await expect(check.checkExchange(exchange)).resolves.toBeDefined();
    await check.deleteExchange(exchange);
    await check.close();
    ingest.proc.child.kill('SIGTERM');
    expect((await ingest.proc.exited).code).toBe(0);
  });
});

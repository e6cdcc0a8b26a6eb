import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { AMQP_URL, mongoUri, TEST_QUEUE_PREFIX, uniqueName } from '../support/env.js';
import { createHook, postInbound } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { QueueTap } from '../support/queue-tap.js';
import { relayed, TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/wait.js';

const TENANT = 't-res';

describe('two processes sharing one database', () => {
  let api: App;
  let ingest: App;
  let tap: QueueTap;
  const exchange = uniqueName('test.inbound');

  beforeAll(async () => {
    tap = await QueueTap.open(exchange, 'event.#');
    // One deployment: one database and one prefix (its processes announce changes on <prefix>.control).
    const shared = {
      INBOUND_EXCHANGE: exchange,
      MONGODB_URI: mongoUri(),
      DISPATCH_QUEUE_PREFIX: uniqueName(TEST_QUEUE_PREFIX),
    };
    api = await startTestApp({ ...shared, HOOKBUS_ROLES: 'api,ingest' });
    ingest = await startTestApp({ ...shared, HOOKBUS_ROLES: 'ingest' });
    await waitReady(api);
    await waitReady(ingest);
  });
  afterAll(async () => {
    await api?.stop();
    await ingest?.stop();
    await tap?.close();
  });

  it('When a hook is deleted through one process, then the other refuses its URL at once, though it had it cached', async () => {
    for (let round = 0; round < 5; round++) {
      const hook = await createHook(api, TENANT, { datasource: `ds${round}`, event: 'ping' });
      // Twice, so the second answer surely came from the other process's cache.
      expect((await postInbound(ingest, hook, '{}')).status).toBe(202);
      expect((await postInbound(ingest, hook, '{}')).status).toBe(202);
      const del = await fetch(`${api.url}/wh/config/${hook.token}`, { method: 'DELETE', headers: bearer(TENANT) });
      expect(del.status).toBe(204);
      expect((await postInbound(ingest, hook, '{}')).status).toBe(404);
    }
  });

  it('When a hook is changed through one process, then the other uses the change at once', async () => {
    const hook = await createHook(api, TENANT, { datasource: 'changing', event: 'ping', tsField: 'a' });
    const body = JSON.stringify({ a: 1577934245, b: 1600000000 });
    const first = (await (await postInbound(ingest, hook, body)).json()) as { id: string };
    await createHook(api, TENANT, { datasource: 'changing', event: 'ping', tsField: 'b' });
    const second = (await (await postInbound(ingest, hook, body)).json()) as { id: string };
    await tap.waitFor(2);
    const occurred = (id: string) =>
      eventually(() => tap.bodies().find((e) => e.id === id)?.occurredAt as string | undefined);
    expect(await occurred(first.id)).toBe('2020-01-02T03:04:05.000Z');
    expect(await occurred(second.id)).toBe('2020-09-13T12:26:40.000Z');
  });
});

describe('when the broker is unreachable or does not answer', () => {
  let app: App;
  let proxy: TcpProxy;
  let tap: QueueTap;
  const exchange = uniqueName('test.inbound');
  const CONFIRM_TIMEOUT_MS = 800;

  beforeAll(async () => {
    tap = await QueueTap.open(exchange, 'event.#');
    proxy = await TcpProxy.before(AMQP_URL);
    app = await startTestApp({
      HOOKBUS_ROLES: 'api,ingest',
      INBOUND_EXCHANGE: exchange,
      AMQP_URL: relayed(AMQP_URL, proxy),
      INBOUND_CONFIRM_TIMEOUT_MS: String(CONFIRM_TIMEOUT_MS),
    });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
    await proxy?.stop();
    await tap?.close();
  });

  it('When the connection is down, then 503 with Retry-After at once, and 202 again after the reconnect', async () => {
    const hook = await createHook(app, TENANT, { datasource: 'down', event: 'ping' });
    expect((await postInbound(app, hook, '{}')).status).toBe(202);
    await proxy.cut();
    await eventually(async () => (await fetch(`${app.url}/readyz`)).status === 503, 10_000, 'readyz 503');

    const started = Date.now();
    const res = await postInbound(app, hook, '{}');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ type: 'urn:hookbus:problem:broker-unavailable', status: 503 });
    expect(Date.now() - started).toBeLessThan(CONFIRM_TIMEOUT_MS);

    await proxy.restore();
    await waitReady(app);
    expect((await postInbound(app, hook, '{}')).status).toBe(202);
  });

  it('When the broker takes no confirm back, then 503 after INBOUND_CONFIRM_TIMEOUT_MS, never a hang', async () => {
    const hook = await createHook(app, TENANT, { datasource: 'hung', event: 'ping' });
    expect((await postInbound(app, hook, '{}')).status).toBe(202);
    proxy.freeze();
    const started = Date.now();
    const res = await postInbound(app, hook, '{}');
    const elapsed = Date.now() - started;
    proxy.thaw();
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(elapsed).toBeGreaterThanOrEqual(CONFIRM_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(CONFIRM_TIMEOUT_MS + 2000);
    await waitReady(app);
    expect((await postInbound(app, hook, '{}')).status).toBe(202);
  });
});

describe('when MongoDB is unreachable', () => {
  it('When a token is not cached and MongoDB is down, then 503 at once; a cached hook is still accepted', async () => {
    const tap = await QueueTap.open(uniqueName('test.inbound'), 'event.#');
    const mongo = mongoUri();
    const proxy = await TcpProxy.before(mongo);
    const app = await startTestApp({
      HOOKBUS_ROLES: 'api,ingest',
      INBOUND_EXCHANGE: tap.exchange,
      MONGODB_URI: relayed(mongo, proxy),
    });
    try {
      await waitReady(app);
      const cached = await createHook(app, TENANT, { datasource: 'cached', event: 'ping' });
      expect((await postInbound(app, cached, '{}')).status).toBe(202);
      await proxy.cut();
      await eventually(async () => (await fetch(`${app.url}/readyz`)).status === 503, 10_000, 'readyz 503');

      const started = Date.now();
      const res = await fetch(`${app.url}/wh/${cached.apiToken}/${'2'.repeat(40)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(Date.now() - started).toBeLessThan(2000);
      expect((await postInbound(app, cached, '{}')).status).toBe(202);

      const list = await fetch(`${app.url}/wh/config`, { headers: bearer(TENANT) });
      expect(list.status).toBe(503);
      expect(await list.json()).toMatchObject({ type: 'urn:hookbus:problem:database-unavailable', status: 503 });
    } finally {
      await app.stop();
      await proxy.stop();
      await tap.close();
    }
  });
});

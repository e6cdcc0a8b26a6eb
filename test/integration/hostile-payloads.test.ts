import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { DELIVERY_KEY } from '../../src/dispatch/topology.js';
import { metricValue } from '../support/app.js';
import { type BusClient, deliveries, dispatchSuite, envelope, subscribe } from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { createHook, postInbound, type IssuedHook } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { type Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

/** JSON that any parse-and-stringify would change: number spellings, escapes, spacing, key order. */
const TRICKY =
  '{"run":"x",  "feature": true, "n": 2.50, "big": 1234567890123456789, "huge": 1e400, ' +
  '"e":"\\u00e9", "s":"a\\/b", "z":{ "b":1,"a":[ 1 ,2 ] }}';

const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('payload bytes are exact end to end', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '100ms' });
  let app: App;
  let receiver: Receiver;
  let tenant: string;
  let hook: IssuedHook;
  let asData: { id: string };
  let asEnvelope: { id: string };
  beforeAll(async () => {
    app = suite.app;
    receiver = await suite.receiver();
    tenant = uniqueName('t');
    hook = await createHook(app, tenant, { datasource: 'exact', event: 'bytes' });
    asData = await subscribe(app, tenant, { url: `${receiver.url}/data`, events: ['exact.*'], payload: 'data' });
    asEnvelope = await subscribe(app, tenant, { url: `${receiver.url}/envelope`, events: ['exact.*'] });
  });

  /** The bodies each subscription got for the event with this id, and their delivery log texts. */
  async function received(eventId: string) {
    const requests = await eventually(() => {
      const found = receiver.requests.filter((r) => r.headers['x-hookbus-event-id'] === eventId);
      return found.length === 2 ? found : undefined;
    });
    const byPath = Object.fromEntries(requests.map((r) => [r.path, r]));
    const logText = async (deliveryId: string) =>
      (await fetch(`${app.url}/api/deliveries/${deliveryId}`, { headers: bearer(tenant) })).text();
    return {
      data: byPath['/hook/data']!.body,
      envelope: byPath['/hook/envelope']!.body,
      dataLog: await logText(byPath['/hook/data']!.headers['webhook-id'] as string),
      envelopeLog: await logText(byPath['/hook/envelope']!.headers['webhook-id'] as string),
    };
  }

  it('When a webhook body has big integers, 2.50, 1e400, escapes and odd spacing, then subscribers and the delivery log get those bytes unchanged', async () => {
    const res = await postInbound(app, hook, TRICKY);
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const got = await received(id);

    expect(got.data).toBe(TRICKY);
    expect(got.envelope).toContain(`"data":${TRICKY}}`);
    expect(got.dataLog).toContain(`"payload":${TRICKY}`);
    // The envelope mode's payload is the envelope exactly as delivered.
    expect(got.envelopeLog).toContain(`"payload":${got.envelope}`);
  });

  it('When a webhook body starts with a UTF-8 byte-order mark, then it is accepted and delivered without it', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"bom":true}')]);
    const res = await postInbound(app, hook, body);
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const got = await received(id);

    expect(got.data).toBe('{"bom":true}');
    expect(JSON.parse(got.envelope)).toMatchObject({ id, data: { bom: true } });
  });

  it('When a webhook body has whitespace around its value, then both payload modes carry the value alone', async () => {
    const res = await postInbound(app, hook, '\r\n  {"a": 1 }\t\r\n');
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const got = await received(id);

    expect(got.data).toBe('{"a": 1 }');
    expect(got.envelope).toContain('"data":{"a": 1 }}');
  });

  it('When POST /api/events carries tricky data, then both payload modes deliver its exact bytes', async () => {
    const res = await fetch(`${app.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body: `{ "event": "exact.api", "data" :${TRICKY} , "resourceKey": null }`,
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const got = await received(id);

    expect(got.data).toBe(TRICKY);
    expect(got.envelope).toContain(`"data":${TRICKY}}`);
    expect(got.dataLog).toContain(`"payload":${TRICKY}`);
  });

  it('When a test event is sent, then the data mode gets exactly the data member the envelope mode gets', async () => {
    const bodies: Record<string, string> = {};
    for (const sub of [asData, asEnvelope]) {
      const before = receiver.requests.length;
      const res = await fetch(`${app.url}/api/webhooks/${sub.id}/test`, { method: 'POST', headers: bearer(tenant) });
      expect(res.status).toBe(200);
      bodies[sub.id] = (await receiver.waitFor(before + 1))[before]!.body;
    }
    const data = (id: string) => `{"message":"A test event from hookbus.","webhookId":"${id}"}`;
    expect(bodies[asData.id]).toBe(data(asData.id));
    expect(bodies[asEnvelope.id]).toContain(`"data":${data(asEnvelope.id)}}`);
  });
});

describe('bodies hookbus could not carry are refused before the 2xx', () => {
  const suite = dispatchSuite({});
  let app: App;
  let tenant: string;
  let hook: IssuedHook;
  beforeAll(async () => {
    app = suite.app;
    tenant = uniqueName('t');
    hook = await createHook(app, tenant, { datasource: 'deep', event: 'nest' });
  });

  const events = (body: string) =>
    fetch(`${app.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body,
    });

  it('When a webhook body nests deeper than 512 levels, then it is a 400 problem naming the limit; 512 levels pass', async () => {
    const refused = await postInbound(app, hook, deep(20_000));
    expect(refused.status).toBe(400);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/more than 512 levels deep/);
    expect((await postInbound(app, hook, deep(513))).status).toBe(400);
    expect((await postInbound(app, hook, deep(512))).status).toBe(202);
  });

  it('When POST /api/events has a resourceKey over 256 characters, then it is a 400 naming the limit', async () => {
    const res = await events(JSON.stringify({ event: 'long.key', data: 1, resourceKey: 'k'.repeat(257) }));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      errors: [{ path: 'resourceKey', message: 'must be at most 256 characters' }],
    });
    expect((await events(JSON.stringify({ event: 'long.key', data: 1, resourceKey: 'k'.repeat(256) }))).status).toBe(
      202,
    );
  });

  it('When POST /api/events has data nested 4,115 levels deep, then it is a 400 problem, not a 500', async () => {
    const res = await events(`{"event":"deep.api","data":${deep(4115)}}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/data nests .* more than 512 levels deep/);
    expect((await events(`{"event":"deep.api","data":${deep(512)}}`)).status).toBe(202);
  });

  it('When POST /api/events has a BOM or invalid UTF-8, then a BOM is dropped and invalid UTF-8 is a 400', async () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"event":"x","data":1}')]);
    const withBom = await fetch(`${app.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body: bom,
    });
    expect(withBom.status).toBe(202);
    // A second mark is not JSON: 400, not a 500 from bytes and text that disagree.
    const twoMarks = await fetch(`${app.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bom]),
    });
    expect(twoMarks.status).toBe(400);
    const inbound = await postInbound(app, hook, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bom]));
    expect(inbound.status).toBe(400);
    const bad = Buffer.concat([Buffer.from('{"event":"x","data":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const res = await fetch(`${app.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body: bad,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/UTF-8/);
  });
});

describe('poison is isolated', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '100ms' });
  let app: App;
  let bus: BusClient;
  let receiver: Receiver;
  beforeAll(async () => {
    ({ app, bus } = suite);
    receiver = await suite.receiver();
  });

  it("When one tenant floods the bus with poison, then it goes to hookbus.dead once each, counted, and another tenant's events keep arriving", async () => {
    const hostile = uniqueName('t');
    const victim = uniqueName('t');
    await subscribe(app, hostile, { url: `${receiver.url}/hostile`, events: ['*'], payload: 'data' });
    await subscribe(app, victim, { url: `${receiver.url}/victim`, events: ['*'], payload: 'data' });
    const victimHook = await createHook(app, victim, { datasource: 'calm', event: 'tick' });
    const inbound = app.config.inbound.exchange;
    const dead = `${app.config.dispatch.queuePrefix}.dead`;
    await bus.channel.purgeQueue(dead);
    const invalidBefore = (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="invalid"}')) ?? 0;

    const poison = (i: number): Buffer => {
      const valid = envelope({ id: `evt_poison_${i}`, tenantId: hostile, event: 'evil.deep' });
      switch (i % 5) {
        case 4: // headers amqplib cannot write back as they were read (a table with a `!` key)
          return Buffer.from('{"not":"an envelope"');
        case 0: // what the ingest of the finding published: an envelope whose data nests 20,000 deep
          return Buffer.from(JSON.stringify({ ...valid, data: null }).replace('"data":null', `"data":${deep(20_000)}`));
        case 1:
          return Buffer.from('{"not":"closed"');
        case 2:
          return Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
        default:
          return Buffer.from(JSON.stringify({ ...valid, tenantId: null }));
      }
    };
    // The victim's hook is looked up once before the flood, as on any busy gateway.
    expect((await postInbound(app, victimHook, '{"warm":true}')).status).toBe(202);
    await eventually(() => receiver.requests.some((r) => r.path === '/hook/victim'));
    const POISON = 200;
    const flood = (async () => {
      for (let i = 0; i < POISON; i++) {
        const headers = i % 5 === 4 ? { h: { '!': 'object', value: { '!': 'zzz' } } } : undefined;
        await bus.publish(inbound, 'x', poison(i), { messageId: `poison-${i}`, headers });
      }
    })();

    // Meanwhile the victim's webhooks arrive one by one; each must be delivered promptly.
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = receiver.requests.filter((r) => r.path === '/hook/victim').length;
      const sent = Date.now();
      expect((await postInbound(app, victimHook, JSON.stringify({ i }))).status).toBe(202);
      await eventually(
        () => receiver.requests.filter((r) => r.path === '/hook/victim').length > before,
        5_000,
        `victim event ${i}`,
      );
      latencies.push(Date.now() - sent);
    }
    await flood;
    // Generous for two busy cores; before poison was isolated they never arrived at all.
    expect(Math.max(...latencies)).toBeLessThan(2_000);

    await eventually(
      async () =>
        (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="invalid"}')) === invalidBefore + POISON,
      20_000,
      'every poison message counted as invalid',
    );
    const reasons = new Map<string, string>();
    for (;;) {
      const message = await bus.channel.get(dead, { noAck: true });
      if (!message) break;
      const headers = message.properties.headers as Record<string, string>;
      reasons.set(headers['x-hookbus-original-message-id']!, headers['x-hookbus-dead-reason']!);
    }
    expect(reasons.size).toBe(POISON);
    expect(reasons.get('poison-0')).toBe('data nested more than 512 levels deep');
    expect(reasons.get('poison-1')).toBe('not JSON');
    expect(reasons.get('poison-2')).toBe('not UTF-8');
    expect(reasons.get('poison-3')).toMatch(/^not an envelope: tenantId /);
    expect(reasons.get('poison-4')).toBe('not JSON');
    // None was delivered, and none comes back: the count stays put.
    expect(receiver.requests.filter((r) => r.path === '/hook/hostile')).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await metricValue(app, 'hookbus_dispatch_messages_total{outcome="invalid"}')).toBe(invalidBefore + POISON);
    expect(await deliveries(app, { tenantId: hostile })).toHaveLength(0);
  });

  it('When poison carries headers that cannot be copied as they are, then it still reaches hookbus.dead', async () => {
    const dead = `${app.config.dispatch.queuePrefix}.dead`;
    await bus.channel.purgeQueue(dead);
    // 20 KB of bytes would be ~70 KB as JSON, past amqplib's 64 KiB frame; 30 KB of text besides.
    const headers = { bytes: randomBytes(20_000), text: 'x'.repeat(30_000), small: 'kept' };
    await bus.publish(app.config.inbound.exchange, 'x', 'not json', { messageId: 'big-headers', headers });
    const message = await eventually(async () => (await bus.channel.get(dead, { noAck: true })) || undefined);
    const got = message.properties.headers as Record<string, unknown>;
    expect(got['x-hookbus-original-message-id']).toBe('big-headers');
    expect(got['x-hookbus-dead-reason']).toBe('not JSON');
    expect(got.small).toBe('kept');
    expect(got['x-hookbus-original-headers']).toMatch(/^omitted: \d+ bytes of JSON$/);
  });

  it('When a delivery message is unreadable, then it goes to hookbus.dead with the reason instead of being dropped or retried', async () => {
    const dead = `${app.config.dispatch.queuePrefix}.dead`;
    await bus.channel.purgeQueue(dead);
    const invalidBefore = (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="invalid"}')) ?? 0;
    const deliveriesExchange = `${app.config.dispatch.queuePrefix}.deliveries`;
    await bus.publish(deliveriesExchange, DELIVERY_KEY, 'garbage', { messageId: 'bad-1' });
    await bus.publish(deliveriesExchange, DELIVERY_KEY, JSON.stringify({ deliveryId: 'msg_x' }), {
      messageId: 'bad-2',
    });
    await eventually(
      async () => (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="invalid"}')) === invalidBefore + 2,
    );
    const reasons: Record<string, string> = {};
    for (let i = 0; i < 2; i++) {
      const message = await eventually(async () => (await bus.channel.get(dead, { noAck: true })) || undefined);
      const headers = message.properties.headers as Record<string, string>;
      reasons[headers['x-hookbus-original-message-id']!] = headers['x-hookbus-dead-reason']!;
    }
    expect(reasons).toEqual({
      'bad-1': 'not a delivery message: not JSON',
      'bad-2': 'not a delivery message: webhookId is not a string',
    });
  });
});

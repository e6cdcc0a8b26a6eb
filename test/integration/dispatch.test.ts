import { Webhook } from 'standardwebhooks';
import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { metricValue } from '../support/app.js';
import { type BusClient, deliveries, dispatchSuite, envelope, subscribe } from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { createHook, postInbound } from '../support/hooks.js';
import { type Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

describe('dispatch: an inbound webhook comes out at the subscriber, signed', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '100ms,200ms' });
  let app: App;
  let receiver: Receiver;
  let bus: BusClient;
  beforeAll(async () => {
    ({ app, bus } = suite);
    receiver = await suite.receiver();
  });

  it('When a hook receives a webhook, then each matching subscription gets a Standard Webhooks-signed POST with the exact headers', async () => {
    const tenant = uniqueName('t');
    const hook = await createHook(app, tenant, { datasource: 'github', event: 'push' });
    const sub = await subscribe(app, tenant, {
      url: receiver.url,
      events: ['github.*'],
      headers: { 'X-Team': 'platform' },
      auth: { bearer: 'tok-123' },
    });
    const before = receiver.requests.length;
    const res = await postInbound(app, hook, JSON.stringify({ ref: 'main', 'a.b': 1, $x: 2 }));
    expect(res.status).toBe(202);
    const [request] = (await receiver.waitFor(before + 1)).slice(before);

    const headers = request!.headers;
    expect(Object.keys(headers).sort()).toEqual(
      [
        'authorization',
        'connection',
        'content-length',
        'content-type',
        'host',
        'user-agent',
        'webhook-id',
        'webhook-signature',
        'webhook-timestamp',
        'x-hookbus-attempt',
        'x-hookbus-event',
        'x-hookbus-event-id',
        'x-team',
      ].sort(),
    );
    expect(headers['content-type']).toBe('application/json');
    expect(headers['user-agent']).toMatch(/^hookbus\/\d+\.\d+\.\d+/);
    expect(headers.authorization).toBe('Bearer tok-123');
    expect(headers['x-team']).toBe('platform');
    expect(headers['x-hookbus-event']).toBe('github.push');
    expect(headers['x-hookbus-attempt']).toBe('1');
    expect(headers['webhook-id']).toMatch(/^msg_[a-z2-7]{26}$/);

    // The receiver's side, with the official library: throws unless the signature verifies.
    const verified = new Webhook(sub.secret).verify(request!.body, {
      'webhook-id': headers['webhook-id'] as string,
      'webhook-timestamp': headers['webhook-timestamp'] as string,
      'webhook-signature': headers['webhook-signature'] as string,
    }) as Record<string, unknown>;
    expect(verified).toMatchObject({
      id: headers['x-hookbus-event-id'],
      event: 'github.push',
      tenantId: tenant,
      data: { ref: 'main', 'a.b': 1, $x: 2 },
    });
    expect(() =>
      new Webhook(sub.secret).verify(`${request!.body} `, {
        'webhook-id': headers['webhook-id'] as string,
        'webhook-timestamp': headers['webhook-timestamp'] as string,
        'webhook-signature': headers['webhook-signature'] as string,
      }),
    ).toThrow();

    const stored = await eventually(async () => {
      const found = await deliveries(app, { webhookId: sub.id });
      return found.length === 1 && found[0]!.status === 'success' ? found[0] : undefined;
    });
    expect(stored).toMatchObject({
      _id: headers['webhook-id'],
      webhookId: sub.id,
      eventId: headers['x-hookbus-event-id'],
      event: 'github.push',
      url: receiver.url,
      status: 'success',
      payload: request!.body,
      nextAttemptAt: null,
    });
    const attempt = stored.attempts[0]!;
    expect(attempt).toMatchObject({ n: 1, error: null, response: { status: 200, body: '' } });
    const logged = Object.fromEntries(attempt.request.headers.map((h) => [h.name, h.value]));
    expect(logged.authorization).toBe('[redacted]');
    expect(logged['webhook-signature']).toBe('[redacted]');
    expect(logged['webhook-id']).toBe(headers['webhook-id']);
    expect(JSON.stringify(stored)).not.toContain('tok-123');
  });

  it('When payload is data, then the original body alone is delivered; envelope delivers the whole envelope', async () => {
    const tenant = uniqueName('t');
    const hook = await createHook(app, tenant, { datasource: 'shop', event: 'order' });
    const dataSub = await subscribe(app, tenant, {
      url: `${receiver.url}?kind=data`,
      events: ['shop.order'],
      payload: 'data',
    });
    await subscribe(app, tenant, {
      url: `${receiver.url}?kind=envelope`,
      events: ['shop.order'],
      auth: { basic: { username: 'u', password: 'p w' } },
    });
    const before = receiver.requests.length;
    expect((await postInbound(app, hook, '{"order":42,"items":[1,2]}')).status).toBe(202);
    const got = (await receiver.waitFor(before + 2)).slice(before);
    const data = got.find((r) => r.path.endsWith('kind=data'))!;
    const whole = got.find((r) => r.path.endsWith('kind=envelope'))!;
    expect(JSON.parse(data.body)).toEqual({ order: 42, items: [1, 2] });
    new Webhook(dataSub.secret).verify(data.body, data.headers as Record<string, string>);
    expect(JSON.parse(whole.body)).toMatchObject({
      event: 'shop.order',
      tenantId: tenant,
      data: { order: 42, items: [1, 2] },
    });
    expect(whole.headers.authorization).toBe(`Basic ${Buffer.from('u:p w').toString('base64')}`);
    expect(data.headers['webhook-id']).not.toBe(whole.headers['webhook-id']);
  });

  it('When envelopes arrive, then subscriptions match by tenant or site scope, event glob and whole resourceKey', async () => {
    const tenant = uniqueName('t');
    const other = uniqueName('t');
    const url = (name: string) => `${receiver.url}?sub=${name}`;
    await subscribe(app, tenant, { url: url('exact'), events: ['billing.paid'] });
    await subscribe(app, tenant, { url: url('glob'), events: ['billing.*'] });
    await subscribe(app, tenant, { url: url('other-event'), events: ['crm.*'] });
    await subscribe(app, other, { url: url('other-tenant'), events: ['*'] });
    await subscribe(app, other, { url: url('site'), events: ['billing.paid'], scope: 'site' }, { admin: true });
    await subscribe(app, tenant, { url: url('key'), events: ['*'], filter: { resourceKeyPattern: 'acct-[0-9]+' } });
    await subscribe(app, tenant, { url: url('disabled'), events: ['*'], enabled: false });
    const inbound = app.config.inbound.exchange;
    const noSubscribersBefore =
      (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="no_subscribers"}')) ?? 0;

    const id = uniqueName('evt');
    const before = receiver.requests.length;
    await bus.publish(
      inbound,
      'x',
      JSON.stringify(envelope({ id, tenantId: tenant, event: 'billing.paid', resourceKey: 'acct-12' })),
    );
    await bus.publish(
      inbound,
      'x',
      JSON.stringify(envelope({ id: `${id}-b`, tenantId: tenant, event: 'billing.paid', resourceKey: 'acct-12x' })),
    );
    await bus.publish(
      inbound,
      'x',
      JSON.stringify(envelope({ id: `${id}-c`, tenantId: uniqueName('nobody'), event: 'nothing.here' })),
    );

    await eventually(
      async () =>
        (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="no_subscribers"}')) ===
        noSubscribersBefore + 1,
    );
    await receiver.waitFor(before + 7);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const got = receiver.requests
      .slice(before)
      .map(
        (r) => `${new URL(r.path, 'http://x').searchParams.get('sub')} ${(JSON.parse(r.body) as { id: string }).id}`,
      );
    expect(got.sort()).toEqual(
      [`exact ${id}`, `glob ${id}`, `site ${id}`, `key ${id}`, `exact ${id}-b`, `glob ${id}-b`, `site ${id}-b`].sort(),
    );
  });

  it('When a message is not an envelope, then it goes to the dead-letter queue with the reason and is counted', async () => {
    const inbound = app.config.inbound.exchange;
    const dead = `${app.config.dispatch.queuePrefix}.dead`;
    const invalidBefore = (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="invalid"}')) ?? 0;
    await bus.channel.purgeQueue(dead);
    await bus.publish(inbound, 'x', 'not json at all', { messageId: 'm-1' });
    await bus.publish(inbound, 'x', JSON.stringify({ id: 'evt_1', event: 'a.b' }), { messageId: 'm-2' });
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
      'm-1': 'not JSON',
      'm-2': expect.stringMatching(/^not an envelope: tenantId /) as string,
    });
  });

  it('When the same envelope arrives twice, then one delivery exists and its id is the same', async () => {
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['dup.*'] });
    const body = JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'dup.once' }));
    const before = receiver.requests.length;
    await bus.publish(app.config.inbound.exchange, 'x', body);
    await receiver.waitFor(before + 1);
    await eventually(async () => (await deliveries(app, { webhookId: sub.id }))[0]?.status === 'success');
    await bus.publish(app.config.inbound.exchange, 'x', body);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await deliveries(app, { webhookId: sub.id })).toHaveLength(1);
    expect(receiver.requests.length).toBe(before + 1);
  });
});

import { Webhook } from 'standardwebhooks';
import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { deliveryIdOf } from '../../src/deliveries/ids.js';
import { DeliveryLog } from '../../src/deliveries/log.js';
import { metricValue } from '../support/app.js';
import {
  type BusClient,
  deliveries,
  dispatchSuite,
  envelope,
  subscribe,
  type Subscription,
} from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { callApi, errorPaths, type DeliveryBody, type ProblemBody, type TestSendBody } from '../support/api.js';
import { type Receiver, type Responder } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

describe('operator calls: retry, test send, replay, emit (DELIVERY_RETRY_SCHEDULE=100ms)', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '100ms', DELIVERY_TIMEOUT_MS: '2000' });
  let app: App;
  beforeAll(() => ({ app } = suite));
  const receiverWith = (respond: Responder) => suite.receiver(respond);
  /** Publishes one envelope per id and waits until each of `sub`'s deliveries is settled. */
  const settle = (tenant: string, sub: Subscription, ids: string[], event: string) =>
    suite.settle(
      tenant,
      sub,
      ids.map((id) => ({ id, event })),
    );

  const call = <T = ProblemBody>(tenant: string, method: string, path: string, body?: unknown) =>
    callApi<T>(app, tenant, method, path, { body });

  it('When a failed delivery is retried, then one attempt is made now and recorded on the same delivery', async () => {
    let healthy = false;
    const receiver = await receiverWith(() => (healthy ? { status: 200, body: 'thanks' } : { status: 500 }));
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['retry.now'] });
    const [failed] = await settle(tenant, sub, [uniqueName('evt')], 'retry.now');
    expect(failed!.status).toBe('failed');
    expect(receiver.requests).toHaveLength(2);
    const successes = (await metricValue(app, 'hookbus_delivery_attempts_total{outcome="success"}')) ?? 0;

    healthy = true;
    const res = await call<DeliveryBody>(tenant, 'POST', `/api/deliveries/${failed!._id}/retry`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: failed!._id, status: 'success', nextAttemptAt: null });
    expect(res.body.attempts.map((a) => a.n)).toEqual([1, 2, 3]);
    expect(res.body.attempts[2]).toMatchObject({ response: { status: 200, body: 'thanks' }, error: null });
    expect(receiver.requests).toHaveLength(3);
    const request = receiver.requests[2]!;
    expect(request.headers['webhook-id']).toBe(failed!._id);
    expect(request.headers['x-hookbus-attempt']).toBe('3');
    new Webhook(sub.secret).verify(request.body, request.headers as Record<string, string>);
    expect((await deliveries(app, { webhookId: sub.id }))[0]!.status).toBe('success');
    expect(await metricValue(app, 'hookbus_delivery_attempts_total{outcome="success"}')).toBe(successes + 1);
    expect((await call(uniqueName('t'), 'POST', `/api/deliveries/${failed!._id}/retry`)).status).toBe(404);
  });

  it('When an operator retry or a test send is answered 410 Gone, then, as for a scheduled attempt, the subscription is disabled and the attempt counted failed', async () => {
    let answer = 500;
    const receiver = await receiverWith(() => ({ status: answer }));
    const tenant = uniqueName('t');
    const enabled = async (id: string) =>
      (await call<{ enabled: boolean }>(tenant, 'GET', `/api/webhooks/${id}`)).body.enabled;
    const enable = (id: string) => call(tenant, 'PATCH', `/api/webhooks/${id}`, { enabled: true });

    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['gone.now'] });
    const [failed] = await settle(tenant, sub, [uniqueName('evt')], 'gone.now');
    answer = 410;
    const failures = (await metricValue(app, 'hookbus_delivery_attempts_total{outcome="failed"}')) ?? 0;
    const retried = await call<DeliveryBody>(tenant, 'POST', `/api/deliveries/${failed!._id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: 'failed', nextAttemptAt: null });
    expect(retried.body.attempts.at(-1)).toMatchObject({ n: 3, response: { status: 410 } });
    expect(await enabled(sub.id)).toBe(false);
    expect(await metricValue(app, 'hookbus_delivery_attempts_total{outcome="failed"}')).toBe(failures + 1);

    expect((await enable(sub.id)).status).toBe(200);
    const test = await call<TestSendBody>(tenant, 'POST', `/api/webhooks/${sub.id}/test`);
    expect(test.body).toMatchObject({ success: false, attempt: { response: { status: 410 } } });
    expect(await enabled(sub.id)).toBe(false);
    expect(await metricValue(app, 'hookbus_delivery_attempts_total{outcome="failed"}')).toBe(failures + 2);
  });

  it('When a delivery still waiting for its first attempt is retried and the retry fails, then it stays retrying', async () => {
    const receiver = await receiverWith(() => ({ status: 500 }));
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['first.later'] });
    const now = new Date();
    const eventId = uniqueName('evt');
    const pending = {
      _id: deliveryIdOf(eventId, sub.id),
      webhookId: sub.id,
      tenantId: tenant,
      scope: 'tenant' as const,
      eventId,
      event: 'first.later',
      url: receiver.url,
      status: 'pending' as const,
      payload: '{}',
      createdAt: now,
      updatedAt: now,
      nextAttemptAt: now,
    };
    await DeliveryLog.of(app.db!.connection).insertRecords([pending], []);
    const res = await call<DeliveryBody>(tenant, 'POST', `/api/deliveries/${pending._id}/retry`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'retrying' });
    expect(res.body.attempts.map((a) => a.n)).toEqual([1]);
    expect((await call(tenant, 'DELETE', `/api/deliveries/${pending._id}`)).status).toBe(409);
  });

  it('When the subscription of a delivery is disabled or deleted, then a retry answers 409 and sends nothing', async () => {
    const receiver = await receiverWith(() => ({ status: 500 }));
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['retry.gone'] });
    const [failed] = await settle(tenant, sub, [uniqueName('evt')], 'retry.gone');
    const sent = receiver.requests.length;

    expect((await call(tenant, 'PATCH', `/api/webhooks/${sub.id}`, { enabled: false })).status).toBe(200);
    const disabled = await call(tenant, 'POST', `/api/deliveries/${failed!._id}/retry`);
    expect(disabled.status).toBe(409);
    expect(disabled.type).toMatch(/^application\/problem\+json/);
    expect(disabled.body.type).toBe('urn:hookbus:problem:subscription-disabled');

    expect((await call(tenant, 'DELETE', `/api/webhooks/${sub.id}`)).status).toBe(204);
    const deleted = await call(tenant, 'POST', `/api/deliveries/${failed!._id}/retry`);
    expect(deleted.status).toBe(409);
    expect(deleted.body.type).toBe('urn:hookbus:problem:subscription-deleted');
    expect(receiver.requests).toHaveLength(sent);
    // The records stay readable after the subscription is gone.
    expect((await call(tenant, 'GET', `/api/deliveries/${failed!._id}`)).status).toBe(200);
  });

  it('When a test event is sent, then it is signed like any delivery, answered with the attempt, not stored, and works while disabled', async () => {
    const receiver = await receiverWith((_req, count) =>
      count === 1 ? { status: 200, body: 'ok' } : { status: 502, body: 'bad gateway' },
    );
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['x.y'], enabled: false });

    const res = await call<TestSendBody>(tenant, 'POST', `/api/webhooks/${sub.id}/test`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      webhookId: sub.id,
      event: 'WEBHOOK_TEST',
      success: true,
      attempt: { n: 1, response: { status: 200, body: 'ok' }, error: null },
    });
    expect(res.body.attempt.durationMs).toBeGreaterThan(0);
    expect(res.body.attempt.request.headers['webhook-signature']).toBe('[redacted]');
    const [request] = receiver.requests;
    expect(request!.headers['x-hookbus-event']).toBe('WEBHOOK_TEST');
    expect(request!.headers['webhook-id']).toBe(res.body.deliveryId);
    const payload = new Webhook(sub.secret).verify(request!.body, request!.headers as Record<string, string>);
    expect(payload).toMatchObject({ event: 'WEBHOOK_TEST', tenantId: tenant, id: res.body.eventId });

    const failing = await call<TestSendBody>(tenant, 'POST', `/api/webhooks/${sub.id}/test`);
    expect(failing.body).toMatchObject({ success: false, attempt: { response: { status: 502, body: 'bad gateway' } } });
    expect(await deliveries(app, { webhookId: sub.id })).toEqual([]);
    expect((await call(uniqueName('t'), 'POST', `/api/webhooks/${sub.id}/test`)).status).toBe(404);
  });

  it('When a test event goes to an address that does not answer, then the attempt carries the error', async () => {
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: 'http://127.0.0.1:9/nothing', events: ['x.y'] });
    const res = await call<TestSendBody>(tenant, 'POST', `/api/webhooks/${sub.id}/test`);
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.attempt.response).toBeNull();
    expect(res.body.attempt.error).toContain('ECONNREFUSED');
  });

  it('When failed deliveries are replayed, then they go through the durable path with a fresh budget and the count is answered', async () => {
    // 'down': every request fails; 'up': all succeed; 'flaky': each delivery's first request fails.
    let mode: 'down' | 'up' | 'flaky' = 'down';
    const seen = new Set<string>();
    const receiver = await receiverWith((req) => {
      if (mode === 'up') return { status: 200 };
      const id = req.headers['webhook-id'] as string;
      if (mode === 'flaky' && seen.has(id)) return { status: 200 };
      seen.add(id);
      return { status: 500 };
    });
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['replay.me'] });
    const since = new Date(Date.now() - 1000).toISOString();
    const settled = await settle(tenant, sub, [uniqueName('a'), uniqueName('b'), uniqueName('c')], 'replay.me');
    expect(settled.every((d) => d.status === 'failed')).toBe(true);
    // One succeeds by hand first: replaying status=failed leaves it alone.
    const [fixed, ...rest] = settled;
    mode = 'up';
    expect((await call<DeliveryBody>(tenant, 'POST', `/api/deliveries/${fixed!._id}/retry`)).body.status).toBe(
      'success',
    );
    // Each replayed delivery fails once more, then succeeds: only a fresh budget (2 attempts) allows that retry.
    mode = 'flaky';
    seen.clear();
    const before = receiver.requests.length;

    const res = await call<{ queued: number }>(tenant, 'POST', `/api/webhooks/${sub.id}/replay`, {
      since,
      status: 'failed',
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ queued: 2 });
    const replayed = await eventually(
      async () => {
        const found = await deliveries(app, { webhookId: sub.id });
        return found.every((d) => d.status === 'success') ? found : undefined;
      },
      20_000,
      'replayed deliveries to succeed',
    );
    for (const { _id } of rest) {
      const delivery = replayed.find((d) => d._id === _id)!;
      // Attempts 1-2 of the first chain, then the replay's two: numbered on.
      expect(delivery.attempts.map((a) => [a.n, a.response?.status])).toEqual([
        [1, 500],
        [2, 500],
        [3, 500],
        [4, 200],
      ]);
    }
    const ids = receiver.requests.slice(before).map((r) => r.headers['webhook-id']);
    expect(ids.sort()).toEqual(rest.flatMap((d) => [d._id, d._id]).sort());
    expect(
      receiver.requests
        .slice(before)
        .map((r) => r.headers['x-hookbus-attempt'])
        .sort(),
    ).toEqual(['3', '3', '4', '4']);

    // Nothing failed in the window any more.
    expect((await call(tenant, 'POST', `/api/webhooks/${sub.id}/replay`, { since, status: 'failed' })).body).toEqual({
      queued: 0,
    });
  });

  it('When a replay request is wrong, then it is a 400 or 409 problem and nothing is queued', async () => {
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: 'http://127.0.0.1:9/x', events: ['a.b'] });
    const bad = await call(tenant, 'POST', `/api/webhooks/${sub.id}/replay`, {
      since: 'yesterday',
      status: 'retrying',
      x: 1,
    });
    expect(bad.status).toBe(400);
    expect(errorPaths(bad.body)).toEqual(['since', 'status', 'x']);
    const backwards = await call(tenant, 'POST', `/api/webhooks/${sub.id}/replay`, {
      since: '2026-01-02T00:00:00Z',
      until: '2026-01-01T00:00:00Z',
    });
    expect(backwards.status).toBe(400);
    expect(backwards.body.errors).toEqual([{ path: 'until', message: 'must be later than since' }]);
    expect((await call(tenant, 'POST', `/api/webhooks/${sub.id}/replay`, '{')).status).toBe(400);
    await call(tenant, 'PATCH', `/api/webhooks/${sub.id}`, { enabled: false });
    const disabled = await call(tenant, 'POST', `/api/webhooks/${sub.id}/replay`, { since: '2026-01-01T00:00:00Z' });
    expect(disabled.status).toBe(409);
  });

  it('When a service posts an event, then it is published for its tenant after the confirm and delivered', async () => {
    const receiver = await receiverWith(() => ({ status: 200 }));
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, {
      url: receiver.url,
      events: ['servo.trigger'],
      filter: { resourceKeyPattern: 'vm-[0-9]+' },
    });
    const res = await call<{ id: string }>(tenant, 'POST', '/api/events', {
      event: 'servo.trigger',
      data: { 'a.b': 1, $x: [true] },
      resourceKey: 'vm-42',
    });
    expect(res.status).toBe(202);
    expect(Object.keys(res.body)).toEqual(['id']);
    expect(res.body.id).toMatch(/^evt_[0-9A-Z]{26}$/);
    const request = await eventually(() => receiver.requests[0], 15_000, 'the delivery');
    const body = new Webhook(sub.secret).verify(request.body, request.headers as Record<string, string>);
    expect(body).toMatchObject({
      id: res.body.id,
      event: 'servo.trigger',
      tenantId: tenant,
      source: { kind: 'api' },
      resourceKey: 'vm-42',
      data: { 'a.b': 1, $x: [true] },
    });
    const [stored] = await deliveries(app, { webhookId: sub.id });
    expect((JSON.parse(stored!.payload) as { data: unknown }).data).toEqual({ 'a.b': 1, $x: [true] });
  });

  it('When an event post is wrong, then it is a 400 problem naming each field, and a 401 without a token', async () => {
    const tenant = uniqueName('t');
    const res = await call(tenant, 'POST', '/api/events', {
      event: 'github.*',
      resourceKey: 5,
      extra: true,
    });
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(errorPaths(res.body)).toEqual(['data', 'event', 'extra', 'resourceKey']);
    expect((await call(tenant, 'POST', '/api/events', '[1')).status).toBe(400);
    // An exact name, but longer than a routing key may be.
    const long = Array.from({ length: 5 }, () => 'w'.repeat(60)).join('.');
    const tooLong = await call(tenant, 'POST', '/api/events', { event: long, data: 1 });
    expect(tooLong.status).toBe(400);
    expect(errorPaths(tooLong.body)).toEqual(['event']);
    const anonymous = await fetch(`${app.url}/api/events`, { method: 'POST', body: '{}' });
    expect(anonymous.status).toBe(401);
  });
});

describe('a retry made by an operator while a scheduled one waits (DELIVERY_RETRY_SCHEDULE=2s)', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '2s', DELIVERY_TIMEOUT_MS: '2000' });
  let app: App;
  let bus: BusClient;
  let receiver: Receiver;
  let up = false;
  beforeAll(async () => {
    ({ app, bus } = suite);
    receiver = await suite.receiver(() => ({ status: up ? 200 : 500 }));
  });

  it('When it succeeds, or the delivery is then deleted, then the scheduled attempt is dropped when it comes due', async () => {
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['early.bird'] });
    const [kept, removed] = [uniqueName('kept'), uniqueName('removed')];
    for (const id of [kept, removed]) {
      await bus.publish(
        app.config.inbound.exchange,
        'x',
        JSON.stringify(envelope({ id, tenantId: tenant, event: 'early.bird' })),
      );
    }
    const waiting = await eventually(
      async () => {
        const found = await deliveries(app, { webhookId: sub.id });
        return found.length === 2 && found.every((d) => d.status === 'retrying') ? found : undefined;
      },
      10_000,
      'two deliveries waiting for their retry',
    );
    const idOf = (eventId: string) => waiting.find((d) => d.eventId === eventId)!._id;

    up = true;
    const retried = await callApi<DeliveryBody>(app, tenant, 'POST', `/api/deliveries/${idOf(kept)}/retry`);
    expect(retried.body).toMatchObject({ status: 'success', nextAttemptAt: null });
    expect(
      (await callApi<DeliveryBody>(app, tenant, 'POST', `/api/deliveries/${idOf(removed)}/retry`)).body.status,
    ).toBe('success');
    expect((await callApi(app, tenant, 'DELETE', `/api/deliveries/${idOf(removed)}`)).status).toBe(204);

    // Past the 2 s the scheduled retries waited: each was dropped, not sent.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const sent = (id: string) => receiver.requests.filter((r) => r.headers['webhook-id'] === id).length;
    expect(sent(idOf(kept))).toBe(2);
    expect(sent(idOf(removed))).toBe(2);
    const [after] = await deliveries(app, { webhookId: sub.id });
    expect(after).toMatchObject({ _id: idOf(kept), status: 'success' });
    expect(after!.attempts.map((a) => a.n)).toEqual([1, 2]);
    const left = await DeliveryLog.of(app.db!.connection).attemptsOf([idOf(removed)]);
    expect(left.get(idOf(removed))).toEqual([]);
  });
});

import { beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { deliveryIdOf } from '../../src/deliveries/ids.js';
import { DeliveryLog } from '../../src/deliveries/log.js';
import type { DeliveryDoc } from '../../src/deliveries/model.js';
import {
  type BusClient,
  deliveries,
  dispatchSuite,
  envelope,
  subscribe,
  type Subscription,
} from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { callApi, errorPaths, type DeliveryBody, type ListBody, type ProblemBody } from '../support/api.js';
import { Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

describe('delivery log: browse, read, delete (DELIVERY_RETRY_SCHEDULE=100ms)', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '100ms', DELIVERY_TIMEOUT_MS: '2000' });
  let app: App;
  let bus: BusClient;
  beforeAll(() => ({ app, bus } = suite));
  /** Publishes envelopes for `tenant` and waits until all of `sub`'s deliveries are settled. */
  const publish = async (tenant: string, sub: Subscription, events: { id: string; event: string }[]) =>
    suite.settle(tenant, sub, events, (await deliveries(app, { webhookId: sub.id })).length + events.length);

  const api = <T = ProblemBody>(tenant: string, method: string, path: string, claims: Record<string, unknown> = {}) =>
    callApi<T>(app, tenant, method, path, { claims });
  const list = (tenant: string, path: string) => api<ListBody>(tenant, 'GET', path);
  const eventIds = (page: ListBody) => page.items.map((d) => d.eventId);

  it('When deliveries are listed, then they come newest first, filtered by status, and the cursor stays right while new ones arrive', async () => {
    // Odd-numbered events fail (500 on both attempts), even ones succeed.
    const receiver = await suite.receiver((req) =>
      /"n":\d*[13579]}/.test(req.body) ? { status: 500, body: 'nope' } : { status: 200 },
    );
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['log.*'] });
    const ids = Array.from({ length: 8 }, (_, n) => uniqueName(`evt${n}`));
    for (const [n, id] of ids.entries()) {
      await bus.publish(
        app.config.inbound.exchange,
        'x',
        JSON.stringify(envelope({ id, tenantId: tenant, event: 'log.item', data: { n } })),
      );
      // Stored before the next is published: distinct createdAt, so "newest first" is testable.
      await eventually(
        async () => (await deliveries(app, { webhookId: sub.id })).length === n + 1,
        10_000,
        `delivery ${n}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await eventually(
      async () => {
        const found = await deliveries(app, { webhookId: sub.id });
        return found.length === 8 && found.every((d) => ['success', 'failed'].includes(d.status));
      },
      20_000,
      'eight settled deliveries',
    );

    const all = await list(tenant, `/api/webhooks/${sub.id}/deliveries?limit=100`);
    expect(all.status).toBe(200);
    expect(all.body.nextCursor).toBeNull();
    expect(eventIds(all.body)).toEqual([...ids].reverse());
    expect(all.body.items[0]).toMatchObject({
      webhookId: sub.id,
      event: 'log.item',
      url: receiver.url,
      status: 'failed', // n = 7
      attemptCount: 2,
      lastAttempt: { n: 2, responseStatus: 500, error: null },
    });
    expect(all.body.items[0]).not.toHaveProperty('payload');

    const failed = await list(tenant, `/api/webhooks/${sub.id}/deliveries?status=failed`);
    expect(eventIds(failed.body)).toEqual([ids[7], ids[5], ids[3], ids[1]]);
    const succeeded = await list(tenant, `/api/webhooks/${sub.id}/deliveries?status=success&limit=3`);
    expect(eventIds(succeeded.body)).toEqual([ids[6], ids[4], ids[2]]);
    const rest = await list(
      tenant,
      `/api/webhooks/${sub.id}/deliveries?status=success&cursor=${succeeded.body.nextCursor}`,
    );
    expect(eventIds(rest.body)).toEqual([ids[0]]);
    expect(rest.body.nextCursor).toBeNull();

    // Page 1 of 3 items, then three new deliveries arrive, then page 2 continues where page 1 ended.
    const first = await list(tenant, `/api/webhooks/${sub.id}/deliveries?limit=3`);
    expect(eventIds(first.body)).toEqual([ids[7], ids[6], ids[5]]);
    await publish(
      tenant,
      sub,
      [8, 10, 12].map((n) => ({ id: uniqueName(`late${n}`), event: 'log.item' })),
    );
    const second = await list(tenant, `/api/webhooks/${sub.id}/deliveries?limit=3&cursor=${first.body.nextCursor}`);
    expect(eventIds(second.body)).toEqual([ids[4], ids[3], ids[2]]);
    const third = await list(tenant, `/api/webhooks/${sub.id}/deliveries?limit=3&cursor=${second.body.nextCursor}`);
    expect(eventIds(third.body)).toEqual([ids[1], ids[0]]);
    expect(third.body.nextCursor).toBeNull();
  });

  it('When a delivery is read, then it has every attempt with redacted request headers, the response and the error', async () => {
    const big = 'x'.repeat(70 * 1024);
    const receiver = await suite.receiver((_req, count) =>
      count === 1
        ? { status: 503, headers: { 'x-reason': 'maintenance', 'set-cookie': 'a=1' }, body: big }
        : { status: 204 },
    );
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, {
      url: receiver.url,
      events: ['read.me'],
      headers: { 'X-Api-Key': 'custom-secret-value', 'X-Plain': 'visible' },
      auth: { bearer: 'bearer-secret-token' },
    });
    const id = uniqueName('evt');
    await publish(tenant, sub, [{ id, event: 'read.me' }]);
    const [stored] = await deliveries(app, { webhookId: sub.id });

    const res = await api<DeliveryBody>(tenant, 'GET', `/api/deliveries/${stored!._id}`);
    expect(res.status).toBe(200);
    const delivery = res.body;
    expect(delivery).toMatchObject({
      id: stored!._id,
      webhookId: sub.id,
      eventId: id,
      event: 'read.me',
      status: 'success',
      nextAttemptAt: null,
      payload: { id, event: 'read.me', tenantId: tenant, data: { hello: 'world' } },
    });
    expect(delivery.attempts).toHaveLength(2);
    const [one, two] = delivery.attempts;
    expect(one!.n).toBe(1);
    expect(one!.request.headers).toMatchObject({
      'webhook-id': stored!._id,
      'webhook-signature': '[redacted]',
      authorization: '[redacted]',
      'X-Api-Key': '[redacted]',
      'X-Plain': 'visible',
      'x-hookbus-attempt': '1',
    });
    expect(one!.response).toMatchObject({ status: 503, bodyTruncated: true });
    expect(one!.response!.headers).toMatchObject({ 'x-reason': 'maintenance', 'set-cookie': 'a=1' });
    expect(one!.response!.body).toHaveLength(64 * 1024);
    expect(one!.durationMs).toBeGreaterThan(0);
    expect(one!.error).toBeNull();
    expect(two).toMatchObject({ n: 2, response: { status: 204, body: '' }, error: null });
    const text = JSON.stringify(delivery);
    for (const secret of ['custom-secret-value', 'bearer-secret-token', sub.secret]) expect(text).not.toContain(secret);

    // Another tenant, or a malformed id, is "not found" with a problem body.
    const other = await api(uniqueName('t'), 'GET', `/api/deliveries/${stored!._id}`);
    expect(other.status).toBe(404);
    expect(other.type).toMatch(/^application\/problem\+json/);
    expect((await api(tenant, 'GET', '/api/deliveries/nope')).status).toBe(404);
    expect((await api(uniqueName('t'), 'GET', `/api/webhooks/${sub.id}/deliveries`)).status).toBe(404);
  });

  it('When an attempt could not connect, then its error text is in the log', async () => {
    const receiver = await Receiver.start();
    const url = receiver.url;
    await receiver.close(); // nothing listens there any more
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url, events: ['down.here'] });
    await publish(tenant, sub, [{ id: uniqueName('evt'), event: 'down.here' }]);
    const [stored] = await deliveries(app, { webhookId: sub.id });
    const { body } = await api<DeliveryBody>(tenant, 'GET', `/api/deliveries/${stored!._id}`);
    expect(body.status).toBe('failed');
    expect(body.attempts[0]!.response).toBeNull();
    expect(body.attempts[0]!.error).toContain('ECONNREFUSED');
  });

  it('When a site-scope subscription has deliveries, then only admins see them', async () => {
    const receiver = await suite.receiver();
    const admin = uniqueName('t');
    const sub = await subscribe(
      app,
      admin,
      { url: receiver.url, events: ['site.wide'], scope: 'site' },
      { admin: true },
    );
    await publish(uniqueName('other'), sub, [{ id: uniqueName('evt'), event: 'site.wide' }]);
    const [stored] = await deliveries(app, { webhookId: sub.id });
    expect((await api(admin, 'GET', `/api/deliveries/${stored!._id}`, { admin: true })).status).toBe(200);
    expect((await api(admin, 'GET', `/api/deliveries/${stored!._id}`)).status).toBe(404);
    // Made tenant scope later: the site-era deliveries (other tenants' events) stay admin-only.
    const patch = { body: { scope: 'tenant' }, claims: { admin: true } };
    expect((await callApi(app, admin, 'PATCH', `/api/webhooks/${sub.id}`, patch)).status).toBe(200);
    const listed = await api<ListBody>(admin, 'GET', `/api/webhooks/${sub.id}/deliveries`);
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([]);
    expect(
      (await api<ListBody>(admin, 'GET', `/api/webhooks/${sub.id}/deliveries`, { admin: true })).body.items,
    ).toHaveLength(1);
  });

  it('When listing parameters are wrong, then the answer is a 400 problem naming each', async () => {
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: 'http://127.0.0.1:9/x', events: ['a.b'] });
    const res = await api(tenant, 'GET', `/api/webhooks/${sub.id}/deliveries?status=done&limit=0&cursor=zzz`);
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(errorPaths(res.body)).toEqual(['cursor', 'limit', 'status']);
    // A cursor of the right shape whose date is out of range is refused too, not a 500.
    const far = Buffer.from(JSON.stringify([9e15, 'msg_aaaaaaaaaaaaaaaaaaaaaaaaaa'])).toString('base64url');
    expect((await api(tenant, 'GET', `/api/webhooks/${sub.id}/deliveries?cursor=${far}`)).status).toBe(400);
    const unauthenticated = await fetch(`${app.url}/api/webhooks/${sub.id}/deliveries`);
    expect(unauthenticated.status).toBe(401);
  });

  it('When deliveries are deleted, one or by status and date, then they and their attempts are gone and unsettled ones stay', async () => {
    const receiver = await suite.receiver((req) =>
      req.body.includes('"del.fail"') ? { status: 500 } : { status: 200 },
    );
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['del.*'] });
    const ok1 = uniqueName('ok');
    const bad = uniqueName('bad');
    await publish(tenant, sub, [
      { id: ok1, event: 'del.ok' },
      { id: bad, event: 'del.fail' },
    ]);
    const ok2 = uniqueName('ok');
    await publish(tenant, sub, [{ id: ok2, event: 'del.ok' }]);
    // Two unsettled deliveries, older than all of those: one waiting for its first attempt, one
    // for a retry (as the dispatcher would have stored them).
    const old = new Date(Date.now() - 60_000);
    const unsettled = (name: string): DeliveryDoc => ({
      _id: deliveryIdOf(uniqueName(name), sub.id),
      webhookId: sub.id,
      tenantId: tenant,
      scope: 'tenant',
      eventId: uniqueName(name),
      event: 'del.later',
      url: receiver.url,
      status: 'pending',
      payload: '{}',
      createdAt: old,
      updatedAt: old,
      nextAttemptAt: old,
    });
    const pending = unsettled('pending');
    const retrying = unsettled('retrying');
    const log = DeliveryLog.of(app.db!.connection);
    await log.insertRecords(
      [pending, retrying],
      [
        {
          _id: `${retrying._id}.1.x`,
          deliveryId: retrying._id,
          webhookId: sub.id,
          tenantId: tenant,
          n: 1,
          at: old,
          durationMs: 5,
          request: { headers: '[]' },
          response: null,
          error: 'ECONNREFUSED',
          status: 'retrying',
          nextAttemptAt: new Date(Date.now() + 3_600_000),
        },
      ],
    );
    const settled = await deliveries(app, { webhookId: sub.id });
    const byEvent = (id: string) => settled.find((d) => d.eventId === id)!;
    const eventIdsLeft = async () => (await deliveries(app, { webhookId: sub.id })).map((d) => d.eventId).sort();

    for (const unsettledOne of [pending, retrying]) {
      const refused = await api(tenant, 'DELETE', `/api/deliveries/${unsettledOne._id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.type).toBe('urn:hookbus:problem:delivery-not-settled');
    }

    // By status and date: only the failed one (created before ok2) goes.
    const cut = new Date(byEvent(ok2).createdAt).toISOString();
    const del = await api(tenant, 'DELETE', `/api/webhooks/${sub.id}/deliveries?status=failed&before=${cut}`);
    expect(del.status).toBe(204);
    expect(await eventIdsLeft()).toEqual([ok1, ok2, pending.eventId, retrying.eventId].sort());

    // Before a date, any status: ok1 goes; ok2 (not before) and the unsettled ones (older) stay.
    expect((await api(tenant, 'DELETE', `/api/webhooks/${sub.id}/deliveries?before=${cut}`)).status).toBe(204);
    expect(await eventIdsLeft()).toEqual([ok2, pending.eventId, retrying.eventId].sort());

    // One by id: gone, and so are its attempts and those of the others deleted.
    const id2 = byEvent(ok2)._id;
    expect((await api(tenant, 'DELETE', `/api/deliveries/${id2}`)).status).toBe(204);
    expect((await api(tenant, 'GET', `/api/deliveries/${id2}`)).status).toBe(404);
    const attemptsLeft = await log.attemptsOf([byEvent(ok1)._id, byEvent(bad)._id, id2]);
    expect([...attemptsLeft.values()].flat()).toEqual([]);
    expect((await api(tenant, 'DELETE', `/api/webhooks/${sub.id}/deliveries`)).status).toBe(204);
    expect(await eventIdsLeft()).toEqual([pending.eventId, retrying.eventId].sort());

    const wrong = await api(tenant, 'DELETE', `/api/webhooks/${sub.id}/deliveries?status=retrying&before=yesterday`);
    expect(wrong.status).toBe(400);
    expect(errorPaths(wrong.body)).toEqual(['before', 'status']);
    expect((await api(uniqueName('t'), 'DELETE', `/api/deliveries/${pending._id}`)).status).toBe(404);
  });
});

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import type { DeliveryRecord } from '../../src/deliveries/model.js';
import { metricValue, startTestApp, waitReady } from '../support/app.js';
import { BusClient, deliveries, dispatchSuite, envelope, subscribe, type Subscription } from '../support/dispatch.js';
import { mongoUri, TEST_QUEUE_PREFIX, uniqueName } from '../support/env.js';
import { bearer } from '../support/jwt.js';
import { Receiver, type Responder } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

const attempts = (app: App, outcome: string) =>
  metricValue(app, `hookbus_delivery_attempts_total{outcome="${outcome}"}`).then((v) => v ?? 0);

describe('dispatch outcomes and retries (DELIVERY_RETRY_SCHEDULE=100ms,1500ms)', () => {
  const suite = dispatchSuite({ DELIVERY_RETRY_SCHEDULE: '100ms,1500ms', DELIVERY_TIMEOUT_MS: '2000' });
  let app: App;
  let bus: BusClient;
  beforeAll(() => ({ app, bus } = suite));

  /** A receiver answering as told, a subscription to it, and one envelope published for it. */
  async function deliverOnce(respond: Responder, subscription: Record<string, unknown> = {}) {
    const receiver = await suite.receiver(respond);
    const tenant = uniqueName('t');
    const sub = await subscribe(app, tenant, { url: receiver.url, events: ['retry.test'], ...subscription });
    const id = uniqueName('evt');
    await bus.publish(
      app.config.inbound.exchange,
      'x',
      JSON.stringify(envelope({ id, tenantId: tenant, event: 'retry.test' })),
    );
    return { receiver, sub, id, tenant };
  }

  async function settled(sub: Subscription): Promise<DeliveryRecord> {
    return eventually(
      async () => {
        const [delivery] = await deliveries(app, { webhookId: sub.id });
        return delivery && ['success', 'failed'].includes(delivery.status) ? delivery : undefined;
      },
      20_000,
      'a settled delivery',
    );
  }

  it('When the endpoint fails twice then answers 2xx, then it is retried on the schedule with the same webhook-id and succeeds', async () => {
    const [retryBefore, successBefore] = [await attempts(app, 'retry'), await attempts(app, 'success')];
    const timed = (outcome: string) =>
      metricValue(app, `hookbus_delivery_attempt_duration_seconds_count{outcome="${outcome}"}`).then((v) => v ?? 0);
    const [timedRetryBefore, timedSuccessBefore] = [await timed('retry'), await timed('success')];
    const dispatchedBefore = (await metricValue(app, 'hookbus_dispatch_messages_total{outcome="dispatched"}')) ?? 0;
    const { receiver, sub } = await deliverOnce((_req, n) =>
      n < 3 ? { status: n === 1 ? 500 : 502, body: `fail ${n}` } : { status: 204 },
    );
    const delivery = await settled(sub);
    const requests = receiver.requests;
    expect(requests).toHaveLength(3);
    expect(new Set(requests.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(requests.map((r) => r.headers['x-hookbus-attempt'])).toEqual(['1', '2', '3']);
    expect(requests[1]!.at - requests[0]!.at).toBeGreaterThanOrEqual(90);
    expect(requests[2]!.at - requests[1]!.at).toBeGreaterThanOrEqual(1400);
    expect(delivery.status).toBe('success');
    expect(delivery.nextAttemptAt).toBeNull();
    expect(delivery.attempts.map((a) => [a.n, a.response?.status, a.response?.body, a.error])).toEqual([
      [1, 500, 'fail 1', null],
      [2, 502, 'fail 2', null],
      [3, 204, '', null],
    ]);
    expect(await attempts(app, 'retry')).toBe(retryBefore + 2);
    expect(await attempts(app, 'success')).toBe(successBefore + 1);
    expect(await timed('retry')).toBe(timedRetryBefore + 2);
    expect(await timed('success')).toBe(timedSuccessBefore + 1);
    expect(await metricValue(app, 'hookbus_dispatch_messages_total{outcome="dispatched"}')).toBe(dispatchedBefore + 1);
  });

  it('When every attempt fails, then after schedule length + 1 attempts the delivery is failed; a subscription may lower the count', async () => {
    const failedBefore = await attempts(app, 'failed');
    const all = await deliverOnce(() => ({ status: 500 }));
    const fewer = await deliverOnce(() => ({ status: 500 }), { retry: { maxAttempts: 2 } });
    expect((await settled(all.sub)).attempts).toHaveLength(3);
    expect((await settled(fewer.sub)).status).toBe('failed');
    expect((await settled(fewer.sub)).attempts).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(all.receiver.requests).toHaveLength(3);
    expect(fewer.receiver.requests).toHaveLength(2);
    expect(await attempts(app, 'failed')).toBe(failedBefore + 2);
  });

  it('When the endpoint does not answer within the timeout, then the attempt records the timeout and is retried', async () => {
    const { sub, receiver } = await deliverOnce((_req, n) => (n === 1 ? 'hang' : { status: 200 }), {
      retry: { timeoutMs: 300 },
    });
    const delivery = await settled(sub);
    expect(receiver.requests).toHaveLength(2);
    expect(delivery.status).toBe('success');
    expect(delivery.attempts[0]!.response).toBeNull();
    expect(delivery.attempts[0]!.error).toMatch(/timeout/i);
    expect(delivery.attempts[0]!.durationMs).toBeGreaterThanOrEqual(290);
  });

  it('When a 429 asks to Retry-After longer than the step, then the next attempt waits the next longer step; the backlog gauge shows it', async () => {
    const { receiver, sub } = await deliverOnce((_req, n) =>
      n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 },
    );
    await receiver.waitFor(1);
    await eventually(
      async () => ((await metricValue(app, 'hookbus_deliveries_retrying')) ?? 0) >= 1,
      1400,
      'a retrying delivery',
    );
    const [pending] = await deliveries(app, { webhookId: sub.id });
    expect(pending!.status).toBe('retrying');
    expect(pending!.nextAttemptAt!.getTime() - pending!.attempts[0]!.at.getTime()).toBeGreaterThanOrEqual(1500);
    await settled(sub);
    expect(receiver.requests[1]!.at - receiver.requests[0]!.at).toBeGreaterThanOrEqual(1400);
  });

  it('When the endpoint answers 410 Gone, then the delivery fails at once and the subscription is disabled', async () => {
    const { receiver, sub, tenant } = await deliverOnce(() => ({ status: 410 }));
    const delivery = await settled(sub);
    expect(delivery.status).toBe('failed');
    expect(receiver.requests).toHaveLength(1);
    const res = await fetch(`${app.url}/api/webhooks/${sub.id}`, { headers: bearer(tenant) });
    expect(await res.json()).toMatchObject({ enabled: false });
  });

  it('When the endpoint redirects, then the redirect is not followed and the attempt counts as failed', async () => {
    const elsewhere = await suite.receiver();
    const { sub } = await deliverOnce(() => ({ status: 302, headers: { location: elsewhere.url } }), {
      retry: { maxAttempts: 1 },
    });
    const delivery = await settled(sub);
    expect(delivery.attempts[0]!.response!.status).toBe(302);
    expect(elsewhere.requests).toHaveLength(0);
  });

  it('When a response body is larger than 64 KiB, then 64 KiB of it is stored, marked truncated', async () => {
    const { sub } = await deliverOnce(() => ({ status: 200, body: 'x'.repeat(200 * 1024) }));
    const { response } = (await settled(sub)).attempts[0]!;
    expect(response!.body).toHaveLength(64 * 1024);
    expect(response!.bodyTruncated).toBe(true);
    expect(response!.headers.map((h) => h.name)).toContain('date');
  });

  it('When a subscription is deleted while its delivery waits for a retry, then no further attempt is made', async () => {
    const { receiver, sub, tenant } = await deliverOnce(() => ({ status: 503 }));
    await receiver.waitFor(2);
    const res = await fetch(`${app.url}/api/webhooks/${sub.id}`, {
      method: 'DELETE',
      headers: bearer(tenant),
    });
    expect(res.status).toBe(204);
    const delivery = await settled(sub);
    expect(delivery.status).toBe('failed');
    expect(delivery.attempts.at(-1)!.error).toBe('not attempted: the subscription was deleted');
    expect(receiver.requests).toHaveLength(2);
  });

  it('When a hanging attempt is under way, then hookbus_deliveries_in_flight counts it', async () => {
    const { receiver } = await deliverOnce(() => 'hang', { retry: { maxAttempts: 1, timeoutMs: 1500 } });
    await receiver.waitFor(1);
    expect(await metricValue(app, 'hookbus_deliveries_in_flight')).toBeGreaterThanOrEqual(1);
    await eventually(
      async () => (await metricValue(app, 'hookbus_deliveries_in_flight')) === 0,
      5000,
      'no attempt in flight',
    );
  });

  describe('against a self-signed HTTPS receiver', () => {
    let tls: { key: string; cert: string };
    beforeAll(() => {
      const dir = mkdtempSync(join(tmpdir(), 'hookbus-tls-'));
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-subj',
          '/CN=127.0.0.1',
          '-days',
          '1',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    });

    it('When sslVerification is false, then the delivery succeeds; when true, the certificate is refused', async () => {
      const secure = await suite.receiver(() => ({ status: 200 }), tls);
      const tenant = uniqueName('t');
      const lax = await subscribe(app, tenant, {
        url: `${secure.url}?lax`,
        events: ['tls.test'],
        sslVerification: false,
      });
      const strict = await subscribe(app, tenant, {
        url: `${secure.url}?strict`,
        events: ['tls.test'],
        retry: { maxAttempts: 1 },
      });
      await bus.publish(
        app.config.inbound.exchange,
        'x',
        JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'tls.test' })),
      );
      expect((await settled(lax)).status).toBe('success');
      const refused = await settled(strict);
      expect(refused.status).toBe('failed');
      expect(refused.attempts[0]!.error).toMatch(/self.signed|SELF_SIGNED/i);
      expect(secure.requests.map((r) => r.path)).toEqual(['/hook?lax']);
    });
  });
});

describe('dispatch refusing internal targets at connect time (DELIVERY_ALLOW_PRIVATE_TARGETS=false)', () => {
  let admin: App;
  let dispatcher: App;
  let receiver: Receiver;
  let bus: BusClient;

  beforeAll(async () => {
    // One deployment: one database and one prefix (its processes announce changes on <prefix>.control).
    const shared = {
      MONGODB_URI: mongoUri(),
      DISPATCH_QUEUE_PREFIX: uniqueName(TEST_QUEUE_PREFIX),
      DELIVERY_RETRY_SCHEDULE: '50ms',
    };
    // Subscriptions are created where private targets are allowed (the create-time check has its
    // own tests), so only the dispatcher's connect-time check stands between them and the receiver.
    admin = await startTestApp({ ...shared, HOOKBUS_ROLES: 'api' });
    dispatcher = await startTestApp({
      ...shared,
      HOOKBUS_ROLES: 'dispatcher',
      DELIVERY_ALLOW_PRIVATE_TARGETS: 'false',
    });
    await waitReady(admin);
    await waitReady(dispatcher);
    receiver = await Receiver.start();
    bus = await BusClient.open();
  });
  afterAll(async () => {
    await admin?.stop();
    await dispatcher?.stop();
    await receiver?.close();
    await bus?.close();
  });

  it('When a target is loopback by name, by address or as any IPv6 form carrying 127.0.0.1, then no request reaches it and the attempts record why', async () => {
    const tenant = uniqueName('t');
    const port = new URL(receiver.url).port;
    const targets = [
      `http://localhost:${port}/hook`,
      `http://127.0.0.1:${port}/hook`,
      `http://[::ffff:127.0.0.1]:${port}/hook`, // IPv4-mapped
      `http://[::127.0.0.1]:${port}/hook`, // IPv4-compatible
      `http://[::ffff:0:127.0.0.1]:${port}/hook`, // SIIT
      `http://[64:ff9b::127.0.0.1]:${port}/hook`, // NAT64
      `http://[2002:7f00:1::1]:${port}/hook`, // 6to4
    ];
    const subs = [];
    for (const url of targets) subs.push(await subscribe(admin, tenant, { url, events: ['ssrf.test'] }));
    await bus.publish(
      dispatcher.config.inbound.exchange,
      'x',
      JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event: 'ssrf.test' })),
    );
    for (const sub of subs) {
      const delivery = await eventually(async () => {
        const [found] = await deliveries(dispatcher, { webhookId: sub.id });
        return found?.status === 'failed' ? found : undefined;
      });
      expect(delivery.attempts).toHaveLength(2);
      for (const attempt of delivery.attempts) {
        expect(attempt.response).toBeNull();
        expect(attempt.error).toMatch(/private, loopback or otherwise internal address/);
      }
    }
    expect(receiver.requests).toHaveLength(0);
  });
});

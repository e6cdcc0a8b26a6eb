import { createHmac, randomBytes } from 'node:crypto';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { metricValue, startTestApp, waitReady } from '../support/app.js';
import { uniqueName } from '../support/env.js';
import { createHook, postInbound, type IssuedHook } from '../support/hooks.js';
import { QueueTap } from '../support/queue-tap.js';

const TENANT = 't-sig';
const PAYLOAD = '{"action":"opened","number":7, "x": "ü"}';
const JSON_TYPE = { 'content-type': 'application/json' };
const now = () => Math.floor(Date.now() / 1000);

describe('source signature verification (verify on a hook)', () => {
  let app: App;
  let tap: QueueTap;
  const exchange = uniqueName('test.inbound');
  const secrets = {
    github: 'gh-webhook-secret-123',
    stripe: `whsec_${randomBytes(24).toString('base64')}`,
    standard: `whsec_${randomBytes(24).toString('base64')}`,
    hmac: 'plain-shared-secret',
  };
  const hooks: Record<string, IssuedHook> = {};

  beforeAll(async () => {
    tap = await QueueTap.open(exchange, `event.${TENANT}.#`);
    app = await startTestApp({ HOOKBUS_ROLES: 'api,ingest', INBOUND_EXCHANGE: exchange });
    await waitReady(app);
    hooks.github = await createHook(app, TENANT, {
      datasource: 'github',
      event: 'pull_request',
      verify: { scheme: 'github', secret: secrets.github },
    });
    hooks.stripe = await createHook(app, TENANT, {
      datasource: 'stripe',
      event: 'charge',
      verify: { scheme: 'stripe', secret: secrets.stripe },
    });
    hooks.standard = await createHook(app, TENANT, {
      datasource: 'svix',
      event: 'ping',
      verify: { scheme: 'standard-webhooks', secret: secrets.standard },
    });
    hooks.hmacHex = await createHook(app, TENANT, {
      datasource: 'acme',
      event: 'hex',
      verify: { scheme: 'hmac-sha256', secret: secrets.hmac, header: 'X-Acme-Signature' },
    });
    hooks.hmacBase64 = await createHook(app, TENANT, {
      datasource: 'acme',
      event: 'b64',
      verify: { scheme: 'hmac-sha256', secret: secrets.hmac, header: 'X-Acme-Signature', encoding: 'base64' },
    });
  });
  afterAll(async () => {
    await app?.stop();
    await tap?.close();
  });

  const accepted = async (hook: IssuedHook, headers: Record<string, string>, body = PAYLOAD) => {
    const res = await postInbound(app, hook, body, { ...JSON_TYPE, ...headers });
    expect(res.status, await res.clone().text()).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const { eventually } = await import('../support/wait.js');
    await eventually(() => tap.messages.some((m) => m.properties.messageId === id), 5000, 'the message');
  };
  const refused = async (hook: IssuedHook, headers: Record<string, string>, body = PAYLOAD) => {
    const before = tap.messages.length;
    const res = await postInbound(app, hook, body, { ...JSON_TYPE, ...headers });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ type: 'urn:hookbus:problem:bad-signature', status: 401 });
    expect((await tap.settle(200)).length).toBe(before);
  };

  describe('github (X-Hub-Signature-256), signed with @octokit/webhooks-methods', () => {
    it('When the signature is valid, then 202 and published', async () => {
      await accepted(hooks.github!, { 'x-hub-signature-256': await githubSign(secrets.github, PAYLOAD) });
    });
    it('When the body was tampered with, signed with another secret, or unsigned, then 401 and nothing published', async () => {
      const signature = await githubSign(secrets.github, PAYLOAD);
      await refused(hooks.github!, { 'x-hub-signature-256': signature }, PAYLOAD.replace('7', '8'));
      await refused(hooks.github!, { 'x-hub-signature-256': await githubSign('another-secret', PAYLOAD) });
      await refused(hooks.github!, {});
      await refused(hooks.github!, { 'x-hub-signature-256': 'sha256=zz' });
    });
  });

  describe('stripe (Stripe-Signature), signed with the stripe library', () => {
    const header = (opts: { secret?: string; timestamp?: number; payload?: string } = {}) =>
      Stripe.webhooks.generateTestHeaderString({
        payload: opts.payload ?? PAYLOAD,
        secret: opts.secret ?? secrets.stripe,
        timestamp: opts.timestamp ?? now(),
      });
    it('When the signature is valid and fresh, then 202 and published', async () => {
      await accepted(hooks.stripe!, { 'stripe-signature': header() });
      await accepted(hooks.stripe!, { 'stripe-signature': header({ timestamp: now() - 240 }) });
    });
    it('When tampered, wrongly keyed, stale or missing, then 401 and nothing published', async () => {
      await refused(hooks.stripe!, { 'stripe-signature': header() }, PAYLOAD.replace('opened', 'closed'));
      await refused(hooks.stripe!, { 'stripe-signature': header({ secret: 'whsec_other' }) });
      await refused(hooks.stripe!, { 'stripe-signature': header({ timestamp: now() - 301 - 5 }) });
      await refused(hooks.stripe!, { 'stripe-signature': header({ timestamp: now() + 400 }) });
      await refused(hooks.stripe!, {});
    });
  });

  describe('standard-webhooks (webhook-id/-timestamp/-signature), signed with the standardwebhooks library', () => {
    const headersFor = (opts: { secret?: string; at?: Date; payload?: string } = {}) => {
      const at = opts.at ?? new Date();
      const id = `msg_${randomBytes(6).toString('hex')}`;
      return {
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': new Webhook(opts.secret ?? secrets.standard).sign(id, at, opts.payload ?? PAYLOAD),
      };
    };
    it('When the signature is valid and fresh, then 202 and published', async () => {
      await accepted(hooks.standard!, headersFor());
      // Several signatures, one of them valid (a sender rotating its secret).
      const valid = headersFor();
      const other = new Webhook(`whsec_${randomBytes(24).toString('base64')}`).sign(
        valid['webhook-id'],
        new Date(Number(valid['webhook-timestamp']) * 1000),
        PAYLOAD,
      );
      await accepted(hooks.standard!, { ...valid, 'webhook-signature': `${other} ${valid['webhook-signature']}` });
    });
    it('When tampered, wrongly keyed, stale or missing a header, then 401 and nothing published', async () => {
      await refused(hooks.standard!, headersFor(), `${PAYLOAD} `);
      await refused(hooks.standard!, headersFor({ secret: `whsec_${randomBytes(24).toString('base64')}` }));
      await refused(hooks.standard!, headersFor({ at: new Date(Date.now() - 10 * 60_000) }));
      const { 'webhook-id': _id, ...noId } = headersFor();
      await refused(hooks.standard!, noId);
      const { 'webhook-signature': _sig, ...noSignature } = headersFor();
      await refused(hooks.standard!, noSignature);
    });
  });

  describe('hmac-sha256 with a configurable header, hex or base64', () => {
    const digest = (encoding: 'hex' | 'base64', secret = secrets.hmac, body = PAYLOAD) =>
      createHmac('sha256', secret).update(body).digest(encoding);
    it('When the signature is valid, then 202 and published (with or without a sha256= prefix)', async () => {
      await accepted(hooks.hmacHex!, { 'x-acme-signature': digest('hex') });
      await accepted(hooks.hmacHex!, { 'x-acme-signature': `sha256=${digest('hex')}` });
      await accepted(hooks.hmacBase64!, { 'x-acme-signature': digest('base64') });
    });
    it('When tampered, wrongly keyed, in the wrong encoding or missing, then 401 and nothing published', async () => {
      await refused(hooks.hmacHex!, { 'x-acme-signature': digest('hex') }, `${PAYLOAD}\n`);
      await refused(hooks.hmacHex!, { 'x-acme-signature': digest('hex', 'wrong-secret') });
      await refused(hooks.hmacHex!, { 'x-acme-signature': digest('base64') });
      await refused(hooks.hmacBase64!, { 'x-other-header': digest('base64') });
    });
  });

  it('When a signature is checked, then it is checked before the JSON: a signed non-JSON body is a 400, an unsigned one a 401', async () => {
    const body = 'not json';
    const res = await postInbound(app, hooks.github!, body, {
      ...JSON_TYPE,
      'x-hub-signature-256': await githubSign(secrets.github, body),
    });
    expect(res.status).toBe(400);
    expect((await postInbound(app, hooks.github!, body, JSON_TYPE)).status).toBe(401);
  });

  it('When the body is too large and unsigned, then 413: the size is checked before the signature', async () => {
    const res = await postInbound(app, hooks.github!, JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }), JSON_TYPE);
    expect(res.status).toBe(413);
  });

  it('When hooks are read back, then no verify secret appears anywhere', async () => {
    const { bearer } = await import('../support/jwt.js');
    const list = await (await fetch(`${app.url}/wh/config`, { headers: bearer(TENANT) })).text();
    for (const secret of Object.values(secrets)) expect(list).not.toContain(secret);
    expect(JSON.parse(list)).toEqual(
      expect.arrayContaining([expect.objectContaining({ verify: { scheme: 'stripe' } })]),
    );
  });

  it('When signatures were refused, then bad_signature is counted', async () => {
    expect(await metricValue(app, 'hookbus_inbound_requests_total{outcome="bad_signature"}')).toBeGreaterThanOrEqual(
      15,
    );
  });
});

import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { retryAfterMs, Sender } from '../../src/dispatch/attempt.js';
import { deliveryIdOf } from '../../src/deliveries/ids.js';
import { nextDelay } from '../../src/dispatch/make-attempt.js';
import { parseEnvelope } from '../../src/envelope.js';
import { CompiledSubscription } from '../../src/dispatch/matching.js';
import { signatureHeader, signingSecrets } from '../../src/dispatch/signing.js';
import { delayQueues, parkDelay } from '../../src/dispatch/topology.js';
import type { SubscriptionRecord } from '../../src/webhooks/model.js';
import { newSigningSecret } from '../../src/webhooks/secrets.js';

const subscription = (fields: Partial<SubscriptionRecord>): SubscriptionRecord => ({
  _id: 'wh_1',
  tenantId: 't1',
  name: null,
  description: null,
  url: 'https://example.com/hook',
  events: ['*'],
  scope: 'tenant',
  filter: {},
  headers: [],
  auth: null,
  sslVerification: true,
  enabled: true,
  payload: 'envelope',
  retry: {},
  secrets: [{ value: newSigningSecret(), expiresAt: null }],
  createdAt: new Date(),
  createdBy: 'a',
  updatedAt: new Date(),
  updatedBy: 'a',
  ...fields,
});

describe('delivery ids', () => {
  it('When derived twice from the same envelope and subscription, then they are equal; otherwise they differ', () => {
    const id = deliveryIdOf('evt_1', 'wh_1');
    expect(id).toMatch(/^msg_[a-z2-7]{26}$/);
    expect(deliveryIdOf('evt_1', 'wh_1')).toBe(id);
    expect(deliveryIdOf('evt_1', 'wh_2')).not.toBe(id);
    expect(deliveryIdOf('evt_1w', 'h_1')).not.toBe(id);
  });
});

describe('Standard Webhooks signatures', () => {
  it('When two secrets are valid, then the header carries both and the library accepts either secret', () => {
    const [current, previous] = [newSigningSecret(), newSigningSecret()];
    const body = '{"a.b":1,"$x":"é"}';
    const header = signatureHeader([current, previous], 'msg_abc', 1_700_000_000, body);
    expect(header.split(' ')).toHaveLength(2);
    for (const secret of [current, previous]) {
      const verifier = new Webhook(secret);
      // The library checks the timestamp against its clock: sign "now" for it.
      const now = Math.floor(Date.now() / 1000);
      const headers = {
        'webhook-id': 'msg_abc',
        'webhook-timestamp': String(now),
        'webhook-signature': signatureHeader([current, previous], 'msg_abc', now, body),
      };
      expect(verifier.verify(body, headers)).toEqual({ 'a.b': 1, $x: 'é' });
    }
    expect(() =>
      new Webhook(newSigningSecret()).verify(body, {
        'webhook-id': 'msg_abc',
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': header,
      }),
    ).toThrow();
  });

  it('When a rotated-out secret has expired, then it no longer signs', () => {
    const now = Date.now();
    const secrets = [
      { value: 'whsec_current', expiresAt: null },
      { value: 'whsec_previous', expiresAt: new Date(now + 1000) },
      { value: 'whsec_old', expiresAt: new Date(now - 1) },
    ];
    expect(signingSecrets(secrets, now)).toEqual(['whsec_current', 'whsec_previous']);
  });

  it('When headers are logged, then the signature, auth and credential-like custom headers are redacted', () => {
    const sender = new Sender(false);
    const { sent, logged } = sender.headersFor(
      {
        subscription: subscription({
          auth: { bearer: 'tok' },
          headers: [
            { name: 'X-Api-Key', value: 'k' },
            { name: 'X-Team', value: 'ops' },
          ],
        }),
        deliveryId: 'msg_1',
        eventId: 'evt_1',
        event: 'a.b',
        attempt: 2,
        body: '{}',
        timeoutMs: 1000,
      },
      1_700_000_000,
    );
    sender.close();
    expect(sent.authorization).toBe('Bearer tok');
    expect(Object.fromEntries(logged.map((h) => [h.name, h.value]))).toMatchObject({
      authorization: '[redacted]',
      'webhook-signature': '[redacted]',
      'X-Api-Key': '[redacted]',
      'X-Team': 'ops',
      'x-hookbus-attempt': '2',
      'webhook-timestamp': '1700000000',
    });
  });
});

describe('retry timing', () => {
  const schedule = [5000, 30_000, 120_000];
  it('When no Retry-After asks for longer, then the wait is the step of the attempt', () => {
    expect(nextDelay(schedule, 1, null)).toBe(5000);
    expect(nextDelay(schedule, 2, 1000)).toBe(30_000);
  });
  it('When Retry-After asks for longer, then the wait is the next step at least that long, capped at the longest', () => {
    expect(nextDelay(schedule, 1, 20_000)).toBe(30_000);
    expect(nextDelay(schedule, 1, 30_001)).toBe(120_000);
    expect(nextDelay(schedule, 1, 86_400_000)).toBe(120_000);
  });
  it('When Retry-After is read, then seconds and HTTP dates both work and junk is ignored', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:01:00 GMT', now)).toBe(60_000);
    expect(retryAfterMs('soon', now)).toBeNull();
    expect(retryAfterMs(undefined, now)).toBeNull();
  });
  it('When deliveries are over the in-flight cap, then they wait in the shortest delay queue, at most 1 s', () => {
    expect(parkDelay(schedule)).toBe(1000);
    expect(parkDelay([200, 400])).toBe(200);
    expect(delayQueues(schedule)).toEqual([1000, 5000, 30_000, 120_000]);
    expect(delayQueues([400, 200, 400])).toEqual([200, 400]);
  });
});

describe('matching', () => {
  const input = { tenantId: 't1', event: 'github.push', resourceKey: 'acct-12' };
  it('When events use a trailing glob, then it matches every event under that prefix and nothing else', () => {
    const glob = new CompiledSubscription(subscription({ events: ['github.*'] }));
    expect(glob.matches(input)).toBe(true);
    expect(glob.matches({ ...input, event: 'github.a.b' })).toBe(true);
    expect(glob.matches({ ...input, event: 'githubx.push' })).toBe(false);
    expect(new CompiledSubscription(subscription({ events: ['*'] })).matches({ ...input, event: 'ANY' })).toBe(true);
    expect(
      new CompiledSubscription(subscription({ events: ['github.push'] })).matches({ ...input, event: 'github.pushed' }),
    ).toBe(false);
  });
  it('When scope is tenant, then only that tenant matches; site takes every tenant', () => {
    expect(new CompiledSubscription(subscription({})).matches({ ...input, tenantId: 't2' })).toBe(false);
    expect(new CompiledSubscription(subscription({ scope: 'site' })).matches({ ...input, tenantId: 't2' })).toBe(true);
  });
  it('When a resourceKey pattern is set, then it must match the whole key and a null key never matches', () => {
    const keyed = new CompiledSubscription(subscription({ filter: { resourceKeyPattern: 'acct-[0-9]+' } }));
    expect(keyed.matches(input)).toBe(true);
    expect(keyed.matches({ ...input, resourceKey: 'xacct-12' })).toBe(false);
    expect(keyed.matches({ ...input, resourceKey: 'acct-12x' })).toBe(false);
    expect(keyed.matches({ ...input, resourceKey: null })).toBe(false);
  });
});

describe('envelopes', () => {
  it('When a message is an envelope, then it parses; otherwise the reason names the problem', () => {
    const good = { id: 'evt_1', event: 'a.b', tenantId: 7, resourceKey: null, data: { x: 1 } };
    expect(parseEnvelope(Buffer.from(JSON.stringify(good)))).toMatchObject({ ok: true, envelope: { tenantId: '7' } });
    expect(parseEnvelope(Buffer.from('{'))).toEqual({ ok: false, reason: 'not JSON' });
    expect(parseEnvelope(Buffer.from('[]'))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^not an envelope/) as string,
    });
    expect(parseEnvelope(Buffer.from(JSON.stringify({ ...good, event: '' })))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/event/) as string,
    });
    const { data: _data, ...noData } = good;
    expect(parseEnvelope(Buffer.from(JSON.stringify(noData)))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^not an envelope: data /) as string,
    });
  });
});

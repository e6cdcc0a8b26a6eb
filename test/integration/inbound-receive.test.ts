import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { metricValue, startTestApp, waitReady } from '../support/app.js';
import { uniqueName } from '../support/env.js';
import { createHook, inboundUrl, postInbound, type IssuedHook } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { QueueTap } from '../support/queue-tap.js';

const TENANT = 't-recv';
const JSON_HEADERS = { 'content-type': 'application/json' };

describe('receiving inbound webhooks: POST /wh/:apiToken/:token', () => {
  let app: App;
  let tap: QueueTap;
  let hook: IssuedHook;
  const exchange = uniqueName('test.inbound');

  beforeAll(async () => {
    // Only this tenant's routing keys are bound: another tenant's events are unroutable here.
    tap = await QueueTap.open(exchange, `event.${TENANT}.#`);
    app = await startTestApp({ HOOKBUS_ROLES: 'api,ingest', INBOUND_EXCHANGE: exchange, INBOUND_MAX_BODY: '2kb' });
    await waitReady(app);
    hook = await createHook(app, TENANT, { datasource: 'github', event: 'push', tsField: 'commits[0].timestamp' });
  });
  afterAll(async () => {
    await app?.stop();
    await tap?.close();
  });

  const expectProblem = async (res: Response, status: number, type: string) => {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ type: `urn:hookbus:problem:${type}`, status });
    expect(typeof body.detail).toBe('string');
    return body;
  };
  const nothingPublished = async (before: number) => expect((await tap.settle()).length).toBe(before);

  describe('refusals, in the order of the SPEC table', () => {
    it('When the tokens are unknown or not a pair, then 404 and nothing is published', async () => {
      const before = tap.messages.length;
      const other = await createHook(app, TENANT, { datasource: 'gitlab', event: 'push' });
      for (const url of [
        `${app.url}/wh/${hook.apiToken}/${'0'.repeat(40)}`,
        `${app.url}/wh/${other.apiToken}/${hook.token}`,
        `${app.url}/wh/${hook.apiToken}/not-hex`,
        `${app.url}/wh/x/y`,
      ]) {
        // Even with a non-JSON type and an oversized body: the token check comes first.
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body: 'x'.repeat(5000),
        });
        await expectProblem(res, 404, 'unknown-hook');
      }
      await nothingPublished(before);
    });

    it.each([
      ['text/plain', 'no JSON in the type'],
      ['application/x-www-form-urlencoded', 'a form'],
      ['', 'no Content-Type'],
    ])('When the Content-Type is "%s" (%s), then 415 and nothing is published', async (type) => {
      const before = tap.messages.length;
      const headers: Record<string, string> = type ? { 'content-type': type } : {};
      // Bytes, not a string: fetch would add text/plain to a string body. Oversized too: 415 comes first.
      const res = await postInbound(app, hook, Buffer.from('{"a":1}'.padEnd(5000, ' ')), headers);
      expect(res.headers.get('connection')).toBe('close');
      await expectProblem(res, 415, 'unsupported-media-type');
      await nothingPublished(before);
    });

    it('When the body is compressed, then 415: the signed and published bytes must be the JSON itself', async () => {
      const res = await postInbound(app, hook, '{}', { ...JSON_HEADERS, 'content-encoding': 'gzip' });
      await expectProblem(res, 415, 'unsupported-media-type');
    });

    it('When the body is larger than INBOUND_MAX_BODY, then 413 and nothing is published, with or without Content-Length', async () => {
      const before = tap.messages.length;
      const big = JSON.stringify({ pad: 'x'.repeat(3000) });
      await expectProblem(await postInbound(app, hook, big), 413, 'too-large');
      // Streamed without Content-Length: the limit is enforced while reading.
      const stream = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(big));
          controller.close();
        },
      });
      const chunked = await fetch(inboundUrl(app, hook), {
        method: 'POST',
        headers: JSON_HEADERS,
        body: stream,
        duplex: 'half',
      });
      await expectProblem(chunked, 413, 'too-large');
      await nothingPublished(before);
    });

    it.each([
      ['an empty body', ''],
      ['a truncated object', '{"a": '],
      ['plain text', 'hello'],
    ])('When the body is %s, then 400 and nothing is published', async (_what, body) => {
      const before = tap.messages.length;
      await expectProblem(await postInbound(app, hook, body), 400, 'invalid-json');
      await nothingPublished(before);
    });

    it('When the body is not valid UTF-8, then 400: its bytes would make the envelope invalid JSON', async () => {
      const before = tap.messages.length;
      const res = await postInbound(app, hook, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]));
      expect(await expectProblem(res, 400, 'invalid-json')).toMatchObject({ detail: 'The body is not valid UTF-8.' });
      await nothingPublished(before);
    });

    it('When the event would make the routing key longer than 255 bytes, then 400, and confirms stay in step afterwards', async () => {
      // event.<64>.<64>.<127> is 263 bytes.
      const long = await createHook(app, 'T'.repeat(64), {
        datasource: 'd'.repeat(64),
        event: '*',
        eventFrom: { field: 'type' },
      });
      const event = Array.from({ length: 4 }, () => 'e'.repeat(31)).join('.');
      expect(event).toHaveLength(127);
      const res = await postInbound(app, long, JSON.stringify({ type: event }));
      expect(await expectProblem(res, 400, 'invalid-json')).toMatchObject({
        detail: 'The event name is too long for a routing key.',
      });
      // Had a publish thrown inside amqplib, the next confirm would settle the wrong publish:
      // an unroutable message must still be a 503, and a routable one a 202 that arrives.
      const unroutable = await createHook(app, 't-unbound', { datasource: 'x', event: 'y' });
      expect((await postInbound(app, unroutable, '{}')).status).toBe(503);
      const ok = await postInbound(app, hook, '{}');
      expect(ok.status).toBe(202);
      const { id } = (await ok.json()) as { id: string };
      await envelopeOf(id);
    });

    it('When no queue is bound for the routing key, then 503 with Retry-After instead of a silent loss', async () => {
      const before = tap.messages.length;
      const elsewhere = await createHook(app, 't-nobody-listens', { datasource: 'github', event: 'push' });
      const res = await postInbound(app, elsewhere, JSON.stringify({ n: 1 }));
      await expectProblem(res, 503, 'broker-unavailable');
      expect(res.headers.get('retry-after')).toBe('5');
      await nothingPublished(before);
      // Once a queue is bound, the same hook is accepted, and only the new message arrives there.
      const late = await QueueTap.open(exchange, 'event.t-nobody-listens.#');
      try {
        expect((await postInbound(app, elsewhere, JSON.stringify({ n: 2 }))).status).toBe(202);
        expect((await late.waitFor(1)).length).toBe(1);
        expect((await late.settle()).map((m) => (JSON.parse(m.content.toString()) as { data: unknown }).data)).toEqual([
          { n: 2 },
        ]);
      } finally {
        await late.close();
      }
    });
  });

  describe('accepting', () => {
    it('When everything is right, then 202 {id} and the envelope is on the queue, persistent, with the AMQP properties', async () => {
      // Odd spacing, key order, a number JSON.parse would round, a key with a dot, non-ASCII text.
      const body =
        '{ "commits" : [ {"timestamp": "2015-12-22T10:33:28.713Z"} ],\n "big": 12345678901234567890, "a.b": "ü✓" }';
      const res = await postInbound(app, hook, body, {
        'content-type': 'application/vnd.github+json',
        'user-agent': 'GitHub-Hookshot/abc',
        'x-github-event': 'push',
        'x-github-delivery': 'd-1',
        authorization: 'Bearer do-not-keep',
        cookie: 'session=do-not-keep',
        'x-gitlab-token': 'do-not-keep',
        'x-custom': 'not-on-the-allow-list',
      });
      expect(res.status).toBe(202);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const { id } = (await res.json()) as { id: string };
      expect(id).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);

      const message = await messageOf(id);
      expect(message.fields.routingKey).toBe(`event.${TENANT}.github.push`);
      expect(message.fields.exchange).toBe(exchange);
      expect(message.properties).toMatchObject({
        contentType: 'application/json',
        deliveryMode: 2,
        messageId: id,
        headers: { tenantId: TENANT, datasource: 'github', event: 'push' },
      });
      expect(Math.abs((message.properties.timestamp as number) - Date.now() / 1000)).toBeLessThan(60);

      const text = message.content.toString();
      expect(text.endsWith(`"data":${body}}`)).toBe(true);
      // Subscribers get the envelope: no part of the hook's URL credentials may be in it.
      expect(text).not.toContain(hook.apiToken);
      expect(text).not.toContain(hook.token);
      const envelope = JSON.parse(text) as Record<string, unknown>;
      expect(envelope).toMatchObject({
        id,
        event: 'github.push',
        tenantId: TENANT,
        source: { kind: 'webhook', hookId: hook.hookId, datasource: 'github', event: 'push' },
        resourceKey: null,
        occurredAt: '2015-12-22T10:33:28.713Z',
        headers: {
          'content-type': 'application/vnd.github+json',
          'user-agent': 'GitHub-Hookshot/abc',
          'x-github-event': 'push',
          'x-github-delivery': 'd-1',
        },
      });
      expect(Object.keys(envelope.headers as object).sort()).toEqual(
        ['content-type', 'user-agent', 'x-github-delivery', 'x-github-event'].sort(),
      );
      expect(Math.abs(Date.parse(envelope.receivedAt as string) - Date.now())).toBeLessThan(60_000);
      expect(text).not.toContain('do-not-keep');
    });

    it.each([['application/json; charset=utf-8'], ['foo/moo; application/sjson; charset-utf8'], ['APPLICATION/JSON']])(
      'When the Content-Type is %s, then it counts as JSON',
      async (type) => {
        expect((await postInbound(app, hook, '{}', { 'content-type': type })).status).toBe(202);
      },
    );

    it.each([
      ['an ISO date', { commits: [{ timestamp: '2020-01-02T03:04:05+02:00' }] }, '2020-01-02T01:04:05.000Z'],
      ['epoch seconds', { commits: [{ timestamp: 1577934245 }] }, '2020-01-02T03:04:05.000Z'],
      ['epoch milliseconds', { commits: [{ timestamp: 1577934245123 }] }, '2020-01-02T03:04:05.123Z'],
      ['epoch seconds as a string', { commits: [{ timestamp: '1577934245' }] }, '2020-01-02T03:04:05.000Z'],
    ])('When tsField holds %s, then occurredAt is that time', async (_what, payload, expected) => {
      const res = await postInbound(app, hook, JSON.stringify(payload));
      const { id } = (await res.json()) as { id: string };
      const envelope = await envelopeOf(id);
      expect(envelope.occurredAt).toBe(expected);
    });

    it.each([
      ['no such field', { other: 1 }],
      ['not a date', { commits: [{ timestamp: 'yesterday' }] }],
      ['a top-level array', [1, 2, 3]],
    ])('When tsField finds %s, then occurredAt is receivedAt', async (_what, payload) => {
      const res = await postInbound(app, hook, JSON.stringify(payload));
      expect(res.status).toBe(202);
      const envelope = await envelopeOf(((await res.json()) as { id: string }).id);
      expect(envelope.occurredAt).toBe(envelope.receivedAt);
    });
  });

  describe('hooks whose event comes from each request (event "*")', () => {
    it('When a GitHub hook reads x-github-event, then each event type gets its own routing key', async () => {
      const github = await createHook(app, TENANT, {
        datasource: 'github',
        event: '*',
        eventFrom: { header: 'X-GitHub-Event' },
      });
      expect(github.event).toBe('*');
      for (const event of ['push', 'pull_request', 'issues']) {
        const res = await postInbound(app, github, '{}', { ...JSON_HEADERS, 'x-github-event': event });
        const { id } = (await res.json()) as { id: string };
        const message = await messageOf(id);
        expect(message.fields.routingKey).toBe(`event.${TENANT}.github.${event}`);
        expect(JSON.parse(message.content.toString())).toMatchObject({ event: `github.${event}`, source: { event } });
      }
    });

    it('When a Stripe hook reads the body field "type", then charge.succeeded routes as words of the key', async () => {
      const stripe = await createHook(app, TENANT, { datasource: 'stripe', event: '*', eventFrom: { field: 'type' } });
      const res = await postInbound(app, stripe, JSON.stringify({ id: 'evt_1', type: 'charge.succeeded' }));
      const message = await messageOf(((await res.json()) as { id: string }).id);
      expect(message.fields.routingKey).toBe(`event.${TENANT}.stripe.charge.succeeded`);
      expect(message.properties.headers).toMatchObject({ event: 'charge.succeeded' });
    });

    it.each([
      ['the header is missing', {}],
      ['the header is a wildcard', { 'x-github-event': 'push#' }],
      ['the header has an empty word', { 'x-github-event': 'a..b' }],
    ])('When %s, then 400 and nothing is published', async (_what, extra) => {
      const github = await createHook(app, TENANT, {
        datasource: 'github',
        event: '*',
        eventFrom: { header: 'x-github-event' },
      });
      const before = tap.messages.length;
      await expectProblem(await postInbound(app, github, '{}', { ...JSON_HEADERS, ...extra }), 400, 'invalid-json');
      await nothingPublished(before);
    });
  });

  describe('changes to a hook', () => {
    it('When a hook is deleted, then its URL answers 404 at once', async () => {
      const doomed = await createHook(app, TENANT, { datasource: 'doomed', event: 'ping' });
      expect((await postInbound(app, doomed, '{}')).status).toBe(202);
      const del = await fetch(`${app.url}/wh/config/${doomed.token}`, { method: 'DELETE', headers: bearer(TENANT) });
      expect(del.status).toBe(204);
      expect((await postInbound(app, doomed, '{}')).status).toBe(404);
    });

    it('When tsField is changed, then the next request already uses it', async () => {
      const changing = await createHook(app, TENANT, { datasource: 'changing', event: 'ping', tsField: 'a' });
      const payload = JSON.stringify({ a: 1577934245, b: 1600000000 });
      const first = await envelopeOf(((await (await postInbound(app, changing, payload)).json()) as { id: string }).id);
      expect(first.occurredAt).toBe('2020-01-02T03:04:05.000Z');
      await createHook(app, TENANT, { datasource: 'changing', event: 'ping', tsField: 'b' });
      const second = await envelopeOf(
        ((await (await postInbound(app, changing, payload)).json()) as { id: string }).id,
      );
      expect(second.occurredAt).toBe('2020-09-13T12:26:40.000Z');
    });
  });

  describe('metrics', () => {
    const sample = (outcome: string) => `hookbus_inbound_requests_total{outcome="${outcome}"}`;
    it.each([
      ['published', () => postInbound(app, hook, '{}')],
      [
        'unknown_hook',
        () =>
          fetch(`${app.url}/wh/${hook.apiToken}/${'1'.repeat(40)}`, {
            method: 'POST',
            headers: JSON_HEADERS,
            body: '{}',
          }),
      ],
      ['unsupported_media_type', () => postInbound(app, hook, '{}', { 'content-type': 'text/plain' })],
      ['too_large', () => postInbound(app, hook, JSON.stringify({ pad: 'x'.repeat(3000) }))],
      ['invalid_json', () => postInbound(app, hook, '{')],
    ] as const)('When a request ends %s, then that outcome is counted once', async (outcome, send) => {
      const before = (await metricValue(app, sample(outcome))) ?? 0;
      await (await send()).text();
      expect(await metricValue(app, sample(outcome))).toBe(before + 1);
    });

    it('When a webhook is published, then the publish and request histograms move, labelled by the route pattern', async () => {
      const route = 'method="POST",route="/wh/:apiToken/:token",status_code="202"';
      const publishes = (await metricValue(app, 'hookbus_inbound_publish_duration_seconds_count')) ?? 0;
      const requests = (await metricValue(app, `hookbus_http_request_duration_seconds_count{${route}}`)) ?? 0;
      const counted = (await metricValue(app, `hookbus_http_requests_total{${route}}`)) ?? 0;
      expect((await postInbound(app, hook, '{}')).status).toBe(202);
      expect(await metricValue(app, 'hookbus_inbound_publish_duration_seconds_count')).toBe(publishes + 1);
      expect(await metricValue(app, `hookbus_http_request_duration_seconds_count{${route}}`)).toBe(requests + 1);
      expect(await metricValue(app, `hookbus_http_requests_total{${route}}`)).toBe(counted + 1);
      const text = await (await fetch(`${app.url}/metrics`)).text();
      expect(text).not.toContain(hook.token);
      expect(text).not.toContain(hook.apiToken);
    });

    it('When the config API refuses a token, then the 401 is counted under its route pattern', async () => {
      const sampleName = 'hookbus_http_requests_total{method="GET",route="/wh/config",status_code="401"}';
      const before = (await metricValue(app, sampleName)) ?? 0;
      await fetch(`${app.url}/wh/config`);
      expect(await metricValue(app, sampleName)).toBe(before + 1);
    });
  });

  async function messageOf(id: string) {
    let found: (typeof tap.messages)[number] | undefined;
    const { eventually } = await import('../support/wait.js');
    await eventually(() => (found = tap.messages.find((m) => m.properties.messageId === id)), 10_000, `message ${id}`);
    return found!;
  }
  async function envelopeOf(id: string) {
    return JSON.parse((await messageOf(id)).content.toString()) as Record<string, unknown>;
  }
});

import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { callApi } from '../support/api.js';
import { startTestApp, waitReady } from '../support/app.js';
import {
  ANSWER_WITHIN_MS,
  breach,
  bodyRequest,
  described,
  send,
  Tally,
  type HostileCase,
} from '../support/hostile-check.js';
import {
  brokenAuthorization,
  hostileHeaders,
  hostileMethod,
  hostileQuery,
  hostileRequestLine,
  hostileSegment,
  type HeaderList,
} from '../support/hostile-http.js';
import {
  createFixtures,
  endpointName,
  endpoints,
  fillRoute,
  FIX,
  KiB,
  MiB,
  paramsOf,
  WRITER,
  type Endpoint,
  type Fixtures,
  type Param,
} from '../support/hostile-endpoints.js';
import { INBOUND_FIELDS } from '../support/hostile-fields.js';
import { anyValue, hostileBody, nastyString } from '../support/hostile-json.js';
import type { IssuedHook } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { exchange, rawRequest, sendRaw, type RawOutcome } from '../support/raw-http.js';
import { Receiver } from '../support/receiver.js';

/**
 * The hostile-input suite (issue #11): property-based requests against the running HTTP API,
 * for every endpoint of the SPEC, with and without valid auth. Every answer must be a 2xx or a
 * 4xx problem+json within ANSWER_WITHIN_MS, never a 5xx, a reset or a hang, and /healthz must
 * answer 200 after each property. HOSTILE_RUNS scales the inputs per property (CI: the default;
 * `npm run test:hostile`: the long run); HOSTILE_SEED replays a run; HOSTILE_SHRINK=1 shrinks a
 * failure to a minimal input; HOSTILE_REPORT=<file> writes the figures.
 */
const RUNS = Number(process.env.HOSTILE_RUNS ?? 150);
const runs = (weight: number) => Math.max(5, Math.round(RUNS * weight));
const FC_OPTIONS = {
  ...(process.env.HOSTILE_SEED ? { seed: Number(process.env.HOSTILE_SEED) } : {}),
  endOnFailure: process.env.HOSTILE_SHRINK !== '1',
};
/** /healthz, asked while hostile inputs arrive, answers within this (the test client shares the event loop). */
const HEALTHZ_WITHIN_MS = 2_000;
/** Generous: a property's inputs include multi-MiB bodies. */
const timeoutFor = (numRuns: number) => 60_000 + numRuns * 1_000;

describe('hostile input: every answer is a 2xx or a 4xx problem+json, never a 5xx, a reset or a hang', () => {
  let app: App;
  let receiver: Receiver;
  const tally = new Tally();
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
  const ENDPOINTS = endpoints(() => receiver.url);
  let hooks: IssuedHook[];
  let real: Fixtures['real'];
  let serverErrorsBefore = 0;
  const name = endpointName;
  const fill = fillRoute;

  /** The route with real ids of the caller's fixtures: the request reaches the handler. */
  const realPath = (e: Endpoint) =>
    fc
      .tuple(...paramsOf(e.route).map((p) => fc.constantFrom(...real[name(e)]![p]).map((v): [Param, string] => [p, v])))
      .map((pairs) => fill(e.route, Object.fromEntries(pairs)));

  /** Runs one property: every case is sent, checked and counted; /healthz answers afterwards. */
  async function hold(
    property: string,
    numRuns: number,
    cases: fc.Arbitrary<HostileCase>,
    also: (c: HostileCase, outcome: RawOutcome) => string | undefined = () => undefined,
  ) {
    const started = performance.now();
    const stopProbe = probeHealth();
    try {
      await fc.assert(
        fc.asyncProperty(cases.map(described), async (c) => {
          const outcome = await send(app.url, c);
          tally.count(property, c, outcome);
          const broken = breach(c, outcome) ?? also(c, outcome);
          if (broken) throw new Error(`${c.endpoint}: ${broken}`);
        }),
        { ...FC_OPTIONS, numRuns },
      );
    } finally {
      tally.took(property, Math.round(performance.now() - started));
    }
    const health = await stopProbe();
    tally.probed(property, health.slowestMs);
    expect(health.failure).toBeUndefined();
    expect(health.slowestMs).toBeLessThan(HEALTHZ_WITHIN_MS);
    await expectHealthy();
  }

  /** Asks /healthz every 100 ms while a property runs: no input may stall the process meanwhile. */
  function probeHealth(): () => Promise<{ slowestMs: number; failure?: string }> {
    let running = true;
    let slowestMs = 0;
    let failure: string | undefined;
    const probing = (async () => {
      while (running) {
        const outcome = await rawRequest(app.url, { method: 'GET', target: '/healthz', timeoutMs: ANSWER_WITHIN_MS });
        if (outcome.kind !== 'answer' || outcome.status !== 200) failure ??= `/healthz: ${JSON.stringify(outcome)}`;
        slowestMs = Math.max(slowestMs, outcome.ms);
        await sleep(100);
      }
    })();
    return async () => {
      running = false;
      await probing;
      return { slowestMs, ...(failure ? { failure } : {}) };
    };
  }

  async function expectHealthy() {
    const health = await rawRequest(app.url, { method: 'GET', target: '/healthz', timeoutMs: 2_000 });
    expect(health.kind === 'answer' ? health.status : health.kind).toBe(200);
    expect(app.server.listening).toBe(true);
    // The app runs in this process: a polluted prototype would show here.
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  }

  const auth = (tenant: string) => bearer(tenant).Authorization;

  beforeAll(async () => {
    receiver = await Receiver.start();
    app = await startTestApp({
      DELIVERY_ALLOW_PRIVATE_TARGETS: 'true',
      DELIVERY_TIMEOUT_MS: '2000',
      DELIVERY_RETRY_SCHEDULE: '1s',
      ORIG_SERVER_HOSTS: 'example.com',
    });
    await waitReady(app);

    ({ hooks, real } = await createFixtures(app, receiver.url, ENDPOINTS));
    serverErrorsBefore = await serverErrorCount();
  }, 120_000);

  afterAll(async () => {
    tally.write(process.env.HOSTILE_REPORT);
    // The long run's figures (docs/hostile-input.md); CI runs stay quiet.
    if (process.env.HOSTILE_RUNS) console.log(tally.summary());
    await app?.stop();
    await receiver?.close();
  });

  /** 5xx answers hookbus counted itself (hookbus_http_requests_total), whatever the client saw. */
  async function serverErrorCount(): Promise<number> {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith('hookbus_http_requests_total{') && /status_code="5\d\d"/.test(line))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  }

  describe("Node's own refusals are problem+json too (src/http/server.ts)", () => {
    const expectRefusal = async (outcome: RawOutcome, status: number, type: string) => {
      if (outcome.kind !== 'answer') throw new Error(`no answer: ${outcome.kind} ${outcome.detail}`);
      expect(outcome.status).toBe(status);
      expect(outcome.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(outcome.headers.connection).toBe('close');
      expect(outcome.headers['x-request-id']).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
      const body = JSON.parse(outcome.body.toString()) as Record<string, unknown>;
      expect(body).toMatchObject({ type: `urn:hookbus:problem:${type}`, status });
      expect(typeof body.title).toBe('string');
      expect(typeof body.detail).toBe('string');
      return { headers: outcome.headers, body };
    };
    const get = (headers: HeaderList, method = 'GET', target = '/healthz') =>
      rawRequest(app.url, { method, target, headers });

    it('When the headers are larger than 16 KiB, then 431 problem+json', async () => {
      const { body } = await expectRefusal(await get([['X-Big', 'a'.repeat(20 * KiB)]]), 431, 'headers-too-large');
      expect(body.detail).toBe('The request line and headers are larger than 16384 bytes.');
      await expectRefusal(await get([], 'GET', `/healthz?${'a'.repeat(20 * KiB)}`), 431, 'headers-too-large');
    });

    it('When the client writes a whole large request before reading, then the refusal still reaches it (no reset)', async () => {
      // Closing at once would leave the body unread, and the kernel would answer the rest with a reset.
      const outcome = await rawRequest(app.url, {
        method: 'POST',
        target: '/wh/config',
        headers: [
          ['X-Big', 'a'.repeat(20 * KiB)],
          ['Content-Type', 'application/json'],
        ],
        body: Buffer.alloc(4 * MiB, 0x20),
        readAfterWrite: true,
      });
      await expectRefusal(outcome, 431, 'headers-too-large');
    });

    it('When a client uploads a large body before reading, then early answers still reach it (lingering close)', async () => {
      const hook = hooks[0]!;
      const upload = (target: string, headers: HeaderList, method = 'POST') =>
        rawRequest(app.url, { method, target, headers, body: Buffer.alloc(3 * MiB, 0x20), readAfterWrite: true });
      const statusOf = (outcome: RawOutcome) =>
        outcome.kind === 'answer' ? outcome.status : `${outcome.kind} ${outcome.detail}`;
      const json: HeaderList = [['Content-Type', 'application/json']];
      // Answered before the body is read, with Connection: close: the fast path and Express alike.
      expect(statusOf(await upload('/wh/not/known', json))).toBe(404);
      expect(statusOf(await upload(`/wh/${hook.apiToken}/${hook.token}`, [['Content-Type', 'text/plain']]))).toBe(415);
      expect(statusOf(await upload(`/wh/${hook.apiToken}/${hook.token}`, json))).toBe(413);
      expect(statusOf(await upload('/wh/config', json))).toBe(401);
      expect(statusOf(await upload('/no/such/route', json))).toBe(404);
      expect(statusOf(await upload('/healthz', [], 'GET'))).toBe(200);
    });

    it('When the request line or a header cannot be parsed, then 400 problem+json naming the error', async () => {
      const { body } = await expectRefusal(await get([], 'FOO'), 400, 'malformed-request');
      expect(body.detail).toBe('The request is not valid HTTP/1.1: Invalid method encountered.');
      for (const value of ['a\rX-Injected: 1', 'a\nX-Injected: 1', 'a\u0000b', 'a\u007fb']) {
        const { headers } = await expectRefusal(await get([['X-Request-Id', value]]), 400, 'malformed-request');
        expect(headers).not.toHaveProperty('x-injected');
      }
      // CR LF makes two well-formed headers: served, and nothing of it comes back.
      const split = await get([['X-Request-Id', 'a\r\nX-Injected: 1']]);
      expect(split.kind === 'answer' && split.status).toBe(200);
      expect(split.kind === 'answer' && split.headers).not.toHaveProperty('x-injected');
      await expectRefusal(
        await sendRaw(app.url, Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')),
        400,
        'malformed-request',
      );
    });

    it('When an HTTP/1.1 request has no Host header, then 400 problem+json', async () => {
      const outcome = await rawRequest(app.url, {
        method: 'GET',
        target: '/healthz',
        defaults: false,
        headers: [['Connection', 'close']],
      });
      const { body } = await expectRefusal(outcome, 400, 'malformed-request');
      expect(body.detail).toBe('An HTTP/1.1 request needs a Host header.');
    });

    it('When the method is CONNECT, then 405 problem+json with Allow, not a dropped connection', async () => {
      const outcome = await rawRequest(app.url, { method: 'CONNECT', target: 'example.com:443' });
      const { headers } = await expectRefusal(outcome, 405, 'method-not-allowed');
      expect(headers.allow).toBe('GET, HEAD, POST, PATCH, DELETE');
    });

    it('When Expect is not 100-continue, then 417 problem+json and the request is not served', async () => {
      const outcome = await rawRequest(app.url, {
        method: 'POST',
        target: '/wh/config',
        headers: [
          ['Authorization', auth(WRITER)],
          ['Content-Type', 'application/json'],
          ['Expect', 'x-ray'],
        ],
        body: JSON.stringify({ datasource: 'expected', event: 'never' }),
      });
      await expectRefusal(outcome, 417, 'expectation-failed');
      const hooks = await callApi<{ datasource: string }[]>(app, WRITER, 'GET', '/wh/config');
      expect(hooks.body.map((h) => h.datasource)).not.toContain('expected');
    });

    it('When chunk extensions exceed what Node accepts, then 413 problem+json', async () => {
      const outcome = await rawRequest(app.url, {
        method: 'POST',
        target: '/wh/config',
        headers: [
          ['Authorization', auth(WRITER)],
          ['Transfer-Encoding', 'chunked'],
        ],
        body: `1;${'e'.repeat(20 * KiB)}\r\nx\r\n0\r\n\r\n`,
      });
      await expectRefusal(outcome, 413, 'too-large');
    });

    it('When garbage follows a served request on the same connection, then 200 for the request and 400 problem+json for the garbage', async () => {
      const answer = (
        await exchange(app.url, Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n'))
      ).toString();
      const [first = '', second = ''] = answer.split(/(?=HTTP\/1\.1 )/);
      expect(first).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(second).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(second).toContain('Content-Type: application/problem+json; charset=utf-8');
      expect(JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 400 });
    });
  });

  describe('bodies: random JSON, wrong types, pollution keys, deep nesting, huge strings, bad UTF-8, BOMs, odd types', () => {
    for (const endpoint of ENDPOINTS.filter((e) => e.body && e.auth)) {
      it(
        `When ${name(endpoint)} gets hostile bodies with valid auth, then it answers 2xx or 4xx problem+json`,
        async () => {
          const { fields, limit, tenant } = endpoint.body!;
          const numRuns = runs(1);
          await hold(
            `body: ${name(endpoint)}`,
            numRuns,
            fc.tuple(realPath(endpoint), hostileBody(fields, limit)).map(([path, body]) => ({
              endpoint: name(endpoint),
              kind: body.kind,
              request: bodyRequest(endpoint.method, path, auth(tenant), body),
            })),
          );
        },
        timeoutFor(runs(1)),
      );
    }

    it(
      'When a real hook URL gets hostile bodies, event headers and signatures, then 2xx or 4xx problem+json',
      async () => {
        const signature = (body: Buffer) =>
          `sha256=${createHmac('sha256', 'hostile-secret').update(body).digest('hex')}`;
        const numRuns = runs(1.5);
        await hold(
          'body: POST /wh/:apiToken/:token (real hooks)',
          numRuns,
          fc
            .tuple(
              fc.constantFrom(...hooks),
              hostileBody(INBOUND_FIELDS, MiB),
              fc.option(
                fc.oneof(fc.constantFrom('push', 'a.b', '*', '#', '', 'x'.repeat(65), 'pull_request'), nastyString),
                { nil: undefined },
              ),
              fc.constantFrom('right', 'wrong', 'none', 'garbage'),
            )
            .map(([hook, body, githubEvent, signed]) => {
              const extra: HeaderList = [];
              if (githubEvent !== undefined) extra.push(['X-GitHub-Event', githubEvent]);
              if (signed === 'right') extra.push(['X-Hub-Signature-256', signature(body.body)]);
              if (signed === 'wrong') extra.push(['X-Hub-Signature-256', `sha256=${'0'.repeat(64)}`]);
              if (signed === 'garbage') extra.push(['X-Hub-Signature-256', 'sha256=zz']);
              return {
                endpoint: 'POST /wh/:apiToken/:token',
                kind: body.kind,
                request: bodyRequest('POST', `/wh/${hook.apiToken}/${hook.token}`, undefined, body, extra),
              };
            }),
        );
      },
      timeoutFor(runs(1.5)),
    );

    it(
      'When unknown, traversing or malformed hook tokens get hostile bodies, then 404 (or 4xx) problem+json',
      async () => {
        const tokens = hooks.flatMap((h) => [h.token, h.apiToken]);
        await hold(
          'body: POST /wh/:apiToken/:token (hostile tokens)',
          runs(1),
          fc
            .tuple(hostileSegment(tokens), hostileSegment(tokens), hostileBody(INBOUND_FIELDS, MiB))
            .map(([apiToken, token, body]) => ({
              endpoint: 'POST /wh/:apiToken/:token',
              kind: `tokens + ${body.kind}`,
              request: bodyRequest('POST', `/wh/${apiToken}/${token}`, undefined, body),
            })),
        );
      },
      timeoutFor(runs(1)),
    );

    it(
      'When endpoints that take no body get one anyway, then 2xx or 4xx problem+json',
      async () => {
        const bodiless = ENDPOINTS.filter((e) => !e.body);
        await hold(
          'body: endpoints without a body',
          runs(1),
          fc.tuple(fc.constantFrom(...bodiless), hostileBody({ a: { valid: anyValue } }, 64 * KiB)).chain(([e, body]) =>
            realPath(e).map((path) => ({
              endpoint: name(e),
              kind: body.kind,
              request: bodyRequest(e.method, path, auth(FIX), body),
            })),
          ),
        );
      },
      timeoutFor(runs(1)),
    );
  });

  describe('paths, queries, methods', () => {
    it(
      'When ids and tokens in paths traverse, encode slashes or are malformed, then 2xx or 4xx problem+json',
      async () => {
        const withParams = ENDPOINTS.filter((e) => paramsOf(e.route).length > 0);
        await hold(
          'paths: hostile ids and tokens',
          runs(2),
          fc.constantFrom(...withParams).chain((e) =>
            fc
              .tuple(
                fc.tuple(
                  ...paramsOf(e.route).map((p) =>
                    hostileSegment(real[name(e)]![p]).map((v): [Param, string] => [p, v]),
                  ),
                ),
                fc.constantFrom('', '/', '//', '/..', '?x=1', '#x'),
                fc.boolean(),
              )
              .map(([pairs, suffix, doubled]) => {
                const path = fill(e.route, Object.fromEntries(pairs)) + suffix;
                return {
                  endpoint: name(e),
                  kind: 'hostile path',
                  request: {
                    method: e.method,
                    target: doubled ? path.replace(/^\//, '//') : path,
                    headers: [
                      ['Authorization', auth(FIX)],
                      ['Content-Type', 'application/json'],
                    ] as HeaderList,
                    body: e.body ? Buffer.from('{}') : undefined,
                  },
                };
              }),
          ),
        );
      },
      timeoutFor(runs(2)),
    );

    it(
      'When query strings repeat, nest, pollute or mis-type parameters, then 2xx or 4xx problem+json',
      async () => {
        await hold(
          'queries: hostile query strings',
          runs(1.5),
          fc.oneof(fc.constantFrom(...ENDPOINTS.filter((e) => e.query)), fc.constantFrom(...ENDPOINTS)).chain((e) =>
            fc.tuple(realPath(e), hostileQuery(e.query ?? ['limit', 'x'])).map(([path, query]) => ({
              endpoint: name(e),
              kind: e.query ? 'hostile query (known names)' : 'hostile query',
              request: {
                method: e.method,
                target: `${path}?${query}`,
                headers: [
                  ['Authorization', auth(FIX)],
                  ['Content-Type', 'application/json'],
                ] as HeaderList,
                body: e.body ? Buffer.from('{}') : undefined,
              },
            })),
          ),
        );
      },
      timeoutFor(runs(1.5)),
    );

    it(
      'When any path gets odd, unknown or malformed methods, then 2xx or 4xx problem+json',
      async () => {
        await hold(
          'methods: odd methods on every path',
          runs(1),
          fc.tuple(fc.constantFrom(...ENDPOINTS), hostileMethod).chain(([e, method]) =>
            realPath(e).map((path) => ({
              endpoint: name(e),
              kind: `method ${method.length > 20 ? `${method.slice(0, 20)}…` : method}`,
              request: { method, target: path, headers: [['Authorization', auth(FIX)]] as HeaderList },
            })),
          ),
        );
      },
      timeoutFor(runs(1)),
    );

    it(
      'When request lines and framing are malformed (raw bytes), then a 2xx or 4xx problem+json, never a reset',
      async () => {
        await hold(
          'raw: malformed request lines and framing',
          runs(1),
          hostileRequestLine.map((bytes) => ({ endpoint: '(raw)', kind: 'raw request', request: bytes })),
        );
      },
      timeoutFor(runs(1)),
    );
  });

  describe('headers and auth', () => {
    it(
      'When every endpoint gets CR/LF injection, control bytes, oversized or duplicate headers, then 2xx or 4xx problem+json',
      async () => {
        await hold(
          'headers: injection, oversize, duplicates',
          runs(1.5),
          fc.tuple(fc.constantFrom(...ENDPOINTS), hostileHeaders).chain(([e, { kind, headers }]) =>
            realPath(e).map((path) => ({
              endpoint: name(e),
              kind,
              request: {
                method: e.method,
                target: path,
                headers: [['Authorization', auth(FIX)], ['Content-Type', 'application/json'], ...headers] as HeaderList,
                body: e.body ? Buffer.from('{}') : undefined,
              },
            })),
          ),
        );
      },
      timeoutFor(runs(1.5)),
    );

    it(
      'When every endpoint gets a broken bearer token, then 401 with WWW-Authenticate (or 2xx/4xx where no auth is needed)',
      async () => {
        await hold(
          'auth: broken bearer tokens',
          runs(1.5),
          fc
            .tuple(fc.constantFrom(...ENDPOINTS), brokenAuthorization(FIX), fc.boolean())
            .chain(([e, authorization, twice]) =>
              realPath(e).map((path) => {
                const headers: HeaderList = [['Content-Type', 'application/json']];
                if (authorization !== undefined) headers.push(['Authorization', authorization]);
                if (twice) headers.push(['Authorization', auth(FIX)]);
                return {
                  endpoint: name(e),
                  kind: twice ? 'broken + valid token' : 'broken token',
                  request: { method: e.method, target: path, headers, body: e.body ? Buffer.from('{}') : undefined },
                };
              }),
            ),
          (c, outcome) => {
            const e = ENDPOINTS.find((x) => name(x) === c.endpoint);
            const challenged = outcome.kind === 'answer' && outcome.headers['www-authenticate']?.startsWith('Bearer');
            return e?.auth && outcome.kind === 'answer' && outcome.status === 401 && !challenged
              ? 'a 401 without WWW-Authenticate: Bearer'
              : undefined;
          },
        );
      },
      timeoutFor(runs(1.5)),
    );
  });

  it('When the suite is over, then hookbus is ready and counted no 5xx answer of its own', async () => {
    await waitReady(app, 10_000);
    expect(await serverErrorCount()).toBe(serverErrorsBefore);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { schemaKeys } from '../../src/config/schema.js';
import { createLogger } from '../../src/logger.js';
import { AMQP_URL, testEnv } from '../support/env.js';
import { waitReady } from '../support/app.js';
import { createHook } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { rawRequest } from '../support/raw-http.js';
import { eventually } from '../support/wait.js';

describe('request logs', () => {
  const lines: Record<string, unknown>[] = [];
  let app: App;

  beforeAll(async () => {
    // Debug: the ingest route logs the requests it accepts at that level.
    const logger = createLogger('debug', {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    });
    app = await startApp(loadConfig(testEnv()), { logger });
  });
  afterAll(async () => {
    await app?.stop();
  });

  /** The `request completed` line of the request with this id (written once the answer is out). */
  async function lineOf(requestId: string) {
    await eventually(() => lines.some((l) => isCompletion(l, requestId)), 5_000, `log line of ${requestId}`);
    return lines.find((l) => isCompletion(l, requestId)) as { req: { path: string } };
  }
  const isCompletion = (line: Record<string, unknown>, requestId: string) =>
    line.msg === 'request completed' && (line.req as { id?: string } | undefined)?.id === requestId;

  it('When a request is answered, then its JSON log line carries the request id and no secrets', async () => {
    const apiToken = '0b6c0d7e-1f1e-4c1e-9c55-5d3f0a1b2c3d';
    const token = 'a'.repeat(40);
    await fetch(`${app.url}/wh/${apiToken}/${token}?sig=abc`, {
      method: 'POST',
      headers: {
        'X-Request-Id': 'log-test-1',
        Authorization: 'Bearer super-secret-jwt',
        Cookie: 'session=super-secret-cookie',
        'content-type': 'application/json',
      },
      body: '{}',
    });

    const line = lines.find((l) => (l.req as { id?: string } | undefined)?.id === 'log-test-1');
    expect(line).toMatchObject({
      level: 30,
      service: 'hookbus',
      req: { id: 'log-test-1', method: 'POST', path: '/wh/:apiToken/:token' },
      res: { statusCode: 404 },
    });
    const all = JSON.stringify(lines);
    for (const secret of [apiToken, token, 'super-secret-jwt', 'super-secret-cookie', 'sig=abc']) {
      expect(all).not.toContain(secret);
    }
  });

  it('When a hook URL is spelled any way a router or client may vary it, then no log line shows its tokens, and each line still names the hook route', async () => {
    await waitReady(app);
    const hook = await createHook(app, 'log-spellings', { datasource: 'github', event: 'push' });
    const { apiToken: a, token: t } = hook;
    // Escapes of a token's first letter: what is left of it must not appear either.
    const escaped = (s: string) => `%${s.charCodeAt(0).toString(16)}${s.slice(1)}`;
    // The first three reach the ingest route; the rest are what a client or proxy may make of them.
    const spellings = [
      `/wh/${a}/${t}`,
      `/wh/${a}/${t}/`,
      `/wh/${a}/${t}?x=1`,
      // The four of issue #12: each answered 404 and logged both tokens.
      `//wh/${a}/${t}`,
      `/wh//${a}/${t}`,
      `/WH/${a}/${t}`,
      `/%77h/${a}/${t}`,
      `/%57H/${a}/${t}`,
      `/Wh/${a}//${t}/`,
      `/wh/${escaped(a)}/${escaped(t)}`,
      `/%2577h/${a}/${t}`,
      `/x/../wh/${a}/${t}`,
      `/wh/./${a}/${t}`,
      `/wh%2F${a}%2F${t}`,
      `/wh/${a}/${t}/more`,
      `http://localhost/wh/${a}/${t}`,
    ];
    for (const [i, target] of spellings.entries()) {
      const id = `log-spelling-${i}`;
      const answer = await rawRequest(app.url, {
        method: 'POST',
        target,
        headers: [
          ['Content-Type', 'application/json'],
          ['X-Request-Id', id],
        ],
        body: '{}',
      });
      expect(answer.kind, target).toBe('answer');
      if (i < 3) expect(answer, target).toMatchObject({ status: 202 });
      const line = await lineOf(id);
      expect(line.req.path, target).toMatch(/:apiToken\/+:token|\/wh\/\[redacted\]$/);
    }
    // The config API takes the hook token too, and Express matches its path in any letter case
    // (the first three reach it).
    const configSpellings = [`/wh/config/${t}`, `/WH/CONFIG/${t}`, `/wh/Config/${t}/`, `//wh/config/${t}`];
    for (const [i, target] of configSpellings.entries()) {
      const id = `log-config-spelling-${i}`;
      const answer = await rawRequest(app.url, {
        method: 'GET',
        target,
        headers: [['X-Request-Id', id], ...Object.entries(bearer('log-spellings'))],
      });
      if (i < 3) expect(answer, target).toMatchObject({ status: 200 });
      const line = await lineOf(id);
      expect(line.req.path, target).toMatch(/\/config\/+:token\/?$/i);
    }

    const all = JSON.stringify(lines);
    for (const secret of [a, t, a.slice(1), t.slice(1)]) expect(all).not.toContain(secret);
  });

  it('When hookbus starts, then one info line shows every key in effect with secrets and passwords masked', () => {
    const line = lines.find((l) => l.msg === 'configuration in effect') as {
      level: number;
      config: Record<string, unknown>;
    };
    expect(line.level).toBe(30);
    expect(Object.keys(line.config).sort()).toEqual(
      schemaKeys()
        .map((k) => k.env)
        .sort(),
    );
    expect(line.config.DELIVERY_RETRY_SCHEDULE).toEqual(app.config.delivery.retrySchedule);
    expect(line.config.AMQP_URL).toBe(AMQP_URL.replace(':guest@', ':***@'));
    expect(line.config.JWT_SECRET).toBe('[redacted]');
    expect(JSON.stringify(line)).not.toContain(app.config.jwt.secret!);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { schemaKeys } from '../../src/config/schema.js';
import { createLogger } from '../../src/logger.js';
import { AMQP_URL, testEnv } from '../support/env.js';

describe('request logs', () => {
  const lines: Record<string, unknown>[] = [];
  let app: App;

  beforeAll(async () => {
    const logger = createLogger('info', {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    });
    app = await startApp(loadConfig(testEnv()), { logger });
  });
  afterAll(async () => {
    await app?.stop();
  });

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

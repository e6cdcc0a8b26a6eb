import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { metricValue, readiness, startTestApp, waitReady } from '../support/app.js';
import { AMQP_URL, mongoUri } from '../support/env.js';
import { relayed, TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/wait.js';

describe('health, readiness and metrics against real dependencies', () => {
  let app: App;
  let rabbitProxy: TcpProxy;
  let mongoProxy: TcpProxy;

  beforeAll(async () => {
    // Both dependencies are reached through relays the test can cut, like a network partition would.
    rabbitProxy = await TcpProxy.before(AMQP_URL);
    const mongo = new URL(mongoUri());
    mongoProxy = await TcpProxy.before(mongo.toString());
    app = await startTestApp({
      AMQP_URL: relayed(AMQP_URL, rabbitProxy),
      MONGODB_URI: relayed(mongo.toString(), mongoProxy),
    });
    await waitReady(app);
  });

  afterAll(async () => {
    await app?.stop();
    await rabbitProxy?.stop();
    await mongoProxy?.stop();
  });

  it('When both dependencies are up, then /readyz is 200 and both gauges are 1', async () => {
    expect(await readiness(app)).toEqual({
      status: 200,
      body: { status: 'ready', checks: { mongodb: 'up', rabbitmq: 'up' } },
    });
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="mongodb"}')).toBe(1);
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="rabbitmq"}')).toBe(1);
  });

  it('When the RabbitMQ connection is cut, then /readyz is 503 naming rabbitmq, and 200 again once it is back', async () => {
    await rabbitProxy.cut();
    const down = await eventually(async () => {
      const r = await readiness(app);
      return r.status === 503 ? r : undefined;
    });
    expect(down.body).toEqual({
      status: 'unavailable',
      checks: { mongodb: 'up', rabbitmq: 'down' },
      detail: 'not connected: rabbitmq',
    });
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="rabbitmq"}')).toBe(0);
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="mongodb"}')).toBe(1);

    await rabbitProxy.restore();
    await waitReady(app);
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="rabbitmq"}')).toBe(1);
  });

  it('When the MongoDB connection is cut, then /readyz is 503 naming mongodb, and 200 again once it is back', async () => {
    await mongoProxy.cut();
    const down = await eventually(async () => {
      const r = await readiness(app);
      return r.status === 503 ? r : undefined;
    });
    expect(down.body).toMatchObject({ status: 'unavailable', checks: { mongodb: 'down', rabbitmq: 'up' } });
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="mongodb"}')).toBe(0);

    await mongoProxy.restore();
    await waitReady(app);
    expect(await metricValue(app, 'hookbus_dependency_up{dependency="mongodb"}')).toBe(1);
  });

  it('When /healthz is asked, then it is 200 whatever the dependencies', async () => {
    await rabbitProxy.cut();
    const res = await fetch(`${app.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    await rabbitProxy.restore();
    await waitReady(app);
  });

  it('When /metrics is scraped, then it has the default process metrics and the HTTP counters', async () => {
    await fetch(`${app.url}/healthz`);
    const res = await fetch(`${app.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(text).toMatch(/^hookbus_http_requests_total\{method="GET",route="\/healthz",status_code="200"\} [1-9]/m);
  });

  it('When a route does not exist, then the answer is a 404 problem+json', async () => {
    const res = await fetch(`${app.url}/no/such/thing?secret=1`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(await res.json()).toEqual({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: 'No route for GET /no/such/thing.',
    });
    expect(
      await metricValue(app, 'hookbus_http_requests_total{method="GET",route="unmatched",status_code="404"}'),
    ).toBe(1);
  });

  it('When a request carries X-Request-Id, then the response echoes it; without one, an id is generated', async () => {
    const given = await fetch(`${app.url}/healthz`, { headers: { 'X-Request-Id': 'trace-42' } });
    expect(given.headers.get('x-request-id')).toBe('trace-42');
    const made = await fetch(`${app.url}/healthz`);
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('starting while the dependencies are down', () => {
  it('When RabbitMQ and MongoDB are unreachable at start, then hookbus starts, says 503, and is ready once they are back', async () => {
    const mongo = new URL(mongoUri());
    const rabbitProxy = await TcpProxy.before(AMQP_URL);
    const mongoProxy = await TcpProxy.before(mongo.toString());
    await rabbitProxy.cut();
    await mongoProxy.cut();
    const app = await startTestApp({
      AMQP_URL: relayed(AMQP_URL, rabbitProxy),
      MONGODB_URI: relayed(mongo.toString(), mongoProxy),
    });
    try {
      expect(await readiness(app)).toEqual({
        status: 503,
        body: {
          status: 'unavailable',
          checks: { mongodb: 'down', rabbitmq: 'down' },
          detail: 'not connected: mongodb, rabbitmq',
        },
      });
      await rabbitProxy.restore();
      await mongoProxy.restore();
      await waitReady(app, 45_000);
    } finally {
      await app.stop();
      await rabbitProxy.stop();
      await mongoProxy.stop();
    }
  });
});

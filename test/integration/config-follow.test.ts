import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';
import { subscribe } from '../support/dispatch.js';
import { TEST_QUEUE_PREFIX, testEnv, uniqueName } from '../support/env.js';
import { createHook, postInbound } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { Receiver } from '../support/receiver.js';
import { waitReady } from '../support/app.js';

describe('bindings follow the configuration', () => {
  let app: App;
  let receiver: Receiver;
  beforeAll(async () => {
    // Both names changed, and DISPATCH_BINDINGS left to its default.
    const env = testEnv({
      INBOUND_EXCHANGE: uniqueName('test.renamed'),
      DISPATCH_QUEUE_PREFIX: uniqueName(TEST_QUEUE_PREFIX),
    });
    delete env.DISPATCH_BINDINGS;
    app = await startApp(loadConfig(env), { logger: createLogger('silent'), httpDrainMs: 2000 });
    await waitReady(app);
    receiver = await Receiver.start();
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
  });

  it('When INBOUND_EXCHANGE and DISPATCH_QUEUE_PREFIX are changed, then webhooks and POST /api/events are still delivered', async () => {
    expect(app.config.dispatch.bindings).toEqual([{ exchange: app.config.inbound.exchange, bindingKey: 'event.#' }]);
    const tenant = uniqueName('t');
    const hook = await createHook(app, tenant, { datasource: 'renamed', event: 'hook' });
    await subscribe(app, tenant, { url: receiver.url, events: ['renamed.*', 'api.renamed'] });

    expect((await postInbound(app, hook, '{"via":"ingest"}')).status).toBe(202);
    const res = await fetch(`${app.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(tenant) },
      body: '{"event":"api.renamed","data":{"via":"api"}}',
    });
    expect(res.status).toBe(202);

    const got = await receiver.waitFor(2);
    expect(got.map((r) => (JSON.parse(r.body) as { data: { via: string } }).data.via).sort()).toEqual([
      'api',
      'ingest',
    ]);
  });
});

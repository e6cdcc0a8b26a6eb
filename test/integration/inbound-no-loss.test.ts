import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { uniqueName } from '../support/env.js';
import { createHook, postInbound } from '../support/hooks.js';
import { QueueTap } from '../support/queue-tap.js';
import { closeConnection } from '../support/rabbitmq.js';

const CONCURRENCY = 20;
/** Bounds of the stream; it normally stops far sooner, once traffic has recovered from the close. */
const MAX_REQUESTS = 40_000;
const MAX_MS = 40_000;
const RECOVERED_AFTER = 300;

describe('no loss while the broker connection is closed mid-stream', () => {
  let app: App;
  let tap: QueueTap;
  const exchange = uniqueName('test.inbound');

  beforeAll(async () => {
    tap = await QueueTap.open(exchange, 'event.#');
    app = await startTestApp({ HOOKBUS_ROLES: 'api,ingest', INBOUND_EXCHANGE: exchange });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
    await tap?.close();
  });

  it('When the connection is force-closed during a burst, then every 2xx is on the queue and every other answer is a 503', async () => {
    const hook = await createHook(app, 't-noloss', { datasource: 'burst', event: 'ping' });
    const answers = new Map<number, { status: number; id?: string }>();
    let next = 0;
    let closedAt: number | undefined = undefined;
    let acceptedAfterClose = 0;
    const started = Date.now();
    const recovered = () => closedAt !== undefined && acceptedAfterClose >= RECOVERED_AFTER;

    const worker = async () => {
      while (!recovered() && next < MAX_REQUESTS && Date.now() - started < MAX_MS) {
        const seq = next++;
        const res = await postInbound(app, hook, JSON.stringify({ seq }));
        const body = (await res.json()) as { id?: string };
        answers.set(seq, { status: res.status, ...(res.status === 202 ? { id: body.id } : {}) });
        if (res.status === 202 && closedAt !== undefined && seq > closedAt) acceptedAfterClose++;
      }
    };
    const workers = Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // Under load, the broker closes hookbus's connection (rabbitmqctl takes a moment to run).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await closeConnection(app.connectionName)).toBe(1);
    closedAt = next;
    await workers;
    expect(recovered(), 'traffic recovered after the close').toBe(true);
    const REQUESTS = answers.size;

    const statuses = [...answers.values()].map((a) => a.status);
    const accepted = statuses.filter((s) => s === 202).length;
    const refused = statuses.filter((s) => s === 503).length;
    expect(
      accepted + refused,
      `statuses other than 202/503: ${statuses.filter((s) => s !== 202 && s !== 503).join(',')}`,
    ).toBe(REQUESTS);
    expect(refused, 'the close happened while requests were in flight').toBeGreaterThan(0);
    // Traffic flowed before the close too (how many 503s the reconnect costs depends on the machine).
    expect([...answers].some(([seq, a]) => seq < (closedAt ?? 0) && a.status === 202)).toBe(true);

    // Let everything published arrive, then reconcile by sequence number.
    await tap.waitFor(accepted, 20_000);
    await tap.settle(1000);
    const onQueue = new Map<number, string[]>();
    for (const envelope of tap.bodies()) {
      const seq = (envelope.data as { seq: number }).seq;
      onQueue.set(seq, [...(onQueue.get(seq) ?? []), envelope.id as string]);
    }
    for (const [seq, answer] of answers) {
      if (answer.status === 202) {
        expect(onQueue.get(seq), `request ${seq} was answered 202 but is not on the queue`).toContain(answer.id);
      }
    }
    for (const [seq, ids] of onQueue) {
      const answer = answers.get(seq)!;
      if (answer.status === 202) expect(ids).toEqual([answer.id]);
      else expect(answer.status, `request ${seq} is on the queue: it must have been answered 503`).toBe(503);
    }
  });
});

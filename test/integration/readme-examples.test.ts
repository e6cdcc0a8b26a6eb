import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { BusClient, deliveries, envelope, subscribe, type Subscription } from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { tokenFor } from '../support/jwt.js';
import { Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

const run = promisify(execFile);
const README = new URL('../../README.md', import.meta.url);
const SECTION = '## Delivery log and operator calls';

/** The ```sh blocks of the README's operator section, in order. */
function examples(): string[] {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf(SECTION);
  const end = text.indexOf('\n## ', start + SECTION.length);
  const section = text.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe("the README's operator examples, run with curl", () => {
  let app: App;
  let bus: BusClient;
  let receiver: Receiver;
  let sub: Subscription;
  let deliveryId: string;
  /** Always refused by the receiver: still failed after the replay, then deleted by the last example. */
  let crashedId: string;
  const tenant = uniqueName('t');
  let healthy = false;

  beforeAll(async () => {
    // Without curl these examples cannot be checked: that is a failure, not a skip.
    await run('curl', ['--version']).catch(() => {
      throw new Error('curl is not installed: the README examples cannot be run (apt-get install curl)');
    });
    app = await startTestApp({ DELIVERY_RETRY_SCHEDULE: '100ms' });
    await waitReady(app);
    bus = await BusClient.open();
    receiver = await Receiver.start((req) =>
      healthy && req.headers['x-hookbus-event'] !== 'servo.vm.crashed' ? { status: 200 } : { status: 500 },
    );
    sub = await subscribe(app, tenant, { url: receiver.url, events: ['servo.*'] });
    for (const event of ['servo.vm.stopped', 'servo.vm.crashed']) {
      await bus.publish(
        app.config.inbound.exchange,
        'x',
        JSON.stringify(envelope({ id: uniqueName('evt'), tenantId: tenant, event })),
      );
    }
    const failed = await eventually(
      async () => {
        const found = await deliveries(app, { webhookId: sub.id });
        return found.length === 2 && found.every((d) => d.status === 'failed') ? found : undefined;
      },
      15_000,
      'two failed deliveries',
    );
    deliveryId = failed.find((d) => d.event === 'servo.vm.stopped')!._id;
    crashedId = failed.find((d) => d.event === 'servo.vm.crashed')!._id;
    healthy = true; // the endpoint is back: retry, test and replay succeed
  });
  afterAll(async () => {
    await app?.stop();
    await bus?.close();
    await receiver?.close();
  });

  it('When every example runs in order, then each succeeds and does what it says', async () => {
    const blocks = examples();
    const all = blocks.join('\n');
    for (const call of [
      '-X POST "$HOOKBUS/api/webhooks"',
      '/api/webhooks/$WEBHOOK_ID/deliveries?status=failed',
      '"$HOOKBUS/api/deliveries/$DELIVERY_ID"',
      '/api/deliveries/$DELIVERY_ID/retry',
      '/api/webhooks/$WEBHOOK_ID/test',
      '/api/webhooks/$WEBHOOK_ID/replay',
      '/api/events',
      '-X DELETE "$HOOKBUS/api/deliveries/$DELIVERY_ID"',
      '-X DELETE "$HOOKBUS/api/webhooks/$WEBHOOK_ID/deliveries',
    ]) {
      expect(all, `an example of ${call}`).toContain(call);
    }

    const env = {
      ...process.env,
      HOOKBUS: app.url,
      TOKEN: tokenFor(tenant),
      WEBHOOK_ID: sub.id,
      DELIVERY_ID: deliveryId,
    };
    const outputs: string[] = [];
    for (const block of blocks) {
      const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', block], { env }).catch(
        (error: { stderr?: string; code?: number }) => {
          throw new Error(`README example failed (exit ${error.code}): ${block}\n${error.stderr ?? ''}`);
        },
      );
      outputs.push(stdout);
      if (block.includes('/replay')) {
        // The replayed delivery fails again (two more attempts) before the examples go on.
        await eventually(
          async () => {
            const [crashed] = await deliveries(app, { _id: crashedId });
            return crashed?.status === 'failed' && crashed.attempts.length === 4;
          },
          15_000,
          'the replayed delivery to fail again',
        );
      }
    }

    // What the examples did, as a user would check it.
    const created = JSON.parse(outputs[0]!) as { id: string; secret: string };
    expect(created.id).toMatch(/^wh_/);
    expect(created.secret).toMatch(/^whsec_/);
    const listed = JSON.parse(outputs[1]!) as { items: { id: string }[] };
    expect(listed.items.map((d) => d.id).sort()).toEqual([deliveryId, crashedId].sort());
    expect((JSON.parse(outputs[3]!) as { status: string }).status).toBe('success');
    expect((JSON.parse(outputs[4]!) as { success: boolean }).success).toBe(true);
    expect(JSON.parse(outputs[5]!)).toEqual({ queued: 1 }); // the other one succeeded on retry
    expect(JSON.parse(outputs[6]!)).toEqual({ id: expect.any(String) as string });
    await eventually(
      () => receiver.requests.some((r) => r.headers['x-hookbus-event'] === 'servo.vm.started'),
      15_000,
      'the emitted event at the subscriber',
    );
    expect(receiver.requests.some((r) => r.headers['x-hookbus-event'] === 'WEBHOOK_TEST')).toBe(true);
    // Of the three deliveries, one was deleted by id and one as failed: the emitted event's is left.
    const left = await deliveries(app, { webhookId: sub.id });
    expect(left.map((d) => d.event)).toEqual(['servo.vm.started']);
  });
});

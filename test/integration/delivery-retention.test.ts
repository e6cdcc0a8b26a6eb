import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryIdOf } from '../../src/deliveries/ids.js';
import { DeliveryLog } from '../../src/deliveries/log.js';
import type { AttemptDoc, DeliveryDoc, DeliveryStatus } from '../../src/deliveries/model.js';
import { waitReady } from '../support/app.js';
import { testEnv, uniqueName } from '../support/env.js';
import { listeningPort, spawnHookbus, type HookbusProcess } from '../support/process.js';
import { eventually } from '../support/wait.js';

const SECOND = 1000;
const HOUR = 3600 * SECOND;

/** The slots each process says it purged, from its JSON log lines. */
function purgedSlots(proc: HookbusProcess): number[] {
  return proc
    .output()
    .split('\n')
    .filter((line) => line.includes('"msg":"delivery log purged"'))
    .map((line) => (JSON.parse(line) as { slot: number }).slot);
}

describe('delivery log retention with two dispatcher processes (LIMIT=3, MAX_AGE=1h, INTERVAL=1s)', () => {
  let env: NodeJS.ProcessEnv;
  let db: mongoose.Connection;
  const procs: HookbusProcess[] = [];
  const now = Date.now();

  const subA = `wh_${uniqueName('A')}`;
  const subB = `wh_${uniqueName('B')}`;
  /** name -> delivery id */
  const ids = new Map<string, string>();

  function delivery(name: string, webhookId: string, ageMs: number): DeliveryDoc {
    const id = deliveryIdOf(uniqueName(name), webhookId);
    ids.set(name, id);
    const createdAt = new Date(now - ageMs);
    return {
      _id: id,
      webhookId,
      tenantId: 't',
      scope: 'tenant',
      eventId: name,
      event: 'kept.or.not',
      url: 'http://127.0.0.1:9/x',
      status: 'pending',
      payload: '{}',
      createdAt,
      updatedAt: createdAt,
      nextAttemptAt: createdAt,
    };
  }

  function attempt(name: string, status: DeliveryStatus, ageMs: number, extra: Partial<AttemptDoc> = {}): AttemptDoc {
    const deliveryId = ids.get(name) ?? deliveryIdOf(uniqueName(name), 'gone'); // orphans: no such delivery
    return {
      _id: `${deliveryId}.1.${uniqueName('a')}`,
      deliveryId,
      webhookId: subA,
      tenantId: 't',
      n: 1,
      at: new Date(now - ageMs),
      durationMs: 3,
      request: { headers: '[]' },
      response: null,
      error: null,
      status,
      nextAttemptAt: status === 'retrying' ? new Date(now + HOUR) : null,
      ...extra,
    };
  }

  beforeAll(async () => {
    env = testEnv({
      HOOKBUS_ROLES: 'dispatcher',
      LOG_LEVEL: 'info',
      DELIVERY_LOG_LIMIT: '3',
      DELIVERY_LOG_MAX_AGE: '1h',
      DELIVERY_CLEANUP_INTERVAL: '1s',
    });
    db = await mongoose.createConnection(env.MONGODB_URI!).asPromise();
    // Subscription A: six recent deliveries, newest first a1..a6.
    const docs = [
      delivery('a1', subA, 1 * SECOND),
      delivery('a2', subA, 2 * SECOND),
      delivery('a3', subA, 3 * SECOND),
      delivery('a4', subA, 4 * SECOND), // retrying: kept over the limit
      delivery('a5', subA, 5 * SECOND), // pending (no attempt yet): kept over the limit
      delivery('a6', subA, 6 * SECOND), // failed: over the limit, purged
      // Subscription B: two older than the age limit, one recent.
      delivery('b1', subB, 2 * HOUR), // success: too old, purged
      delivery('b2', subB, 2 * HOUR), // replayed (a mark says retrying): kept
      delivery('b3', subB, 1 * SECOND),
    ];
    await DeliveryLog.of(db).insertRecords(docs, [
      attempt('a1', 'success', 1 * SECOND),
      attempt('a2', 'failed', 2 * SECOND),
      attempt('a3', 'success', 3 * SECOND),
      attempt('a4', 'retrying', 4 * SECOND),
      attempt('a6', 'failed', 6 * SECOND),
      attempt('b1', 'success', 2 * HOUR),
      attempt('b2', 'failed', 2 * HOUR),
      attempt('b2', 'retrying', 10 * SECOND, { queued: true }),
      attempt('b3', 'success', 1 * SECOND),
      attempt('orphan-old', 'failed', 2 * HOUR), // its delivery is gone: swept
      attempt('orphan-new', 'failed', 1 * SECOND), // younger than the age limit: left for now
    ]);
  });

  afterAll(async () => {
    for (const proc of procs) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
    await db?.close();
  });

  it('When two dispatchers run, then each interval is purged by exactly one of them, and unsettled deliveries stay', async () => {
    for (let i = 0; i < 2; i++) procs.push(spawnHookbus(env));
    for (const proc of procs) await waitReady({ url: `http://127.0.0.1:${await listeningPort(proc)}` });

    const slots = await eventually(
      () => {
        const all = procs.flatMap(purgedSlots);
        return new Set(all).size >= 5 ? all : undefined;
      },
      20_000,
      'five purged intervals',
    );
    // No interval purged twice, by one process or by both.
    expect(slots.length).toBe(new Set(slots).size);
    const leases = await db
      .collection<{ _id: string; holder: string }>('leases')
      .find({ _id: { $regex: /^delivery-log-purge:/ } })
      .toArray();
    const leased = leases.map((l) => Number(l._id.split(':')[1]));
    for (const slot of slots) expect(leased).toContain(slot);

    const log = DeliveryLog.of(db);
    const left = new Set((await log.records()).map((d) => d._id));
    const kept = ['a1', 'a2', 'a3', 'a4', 'a5', 'b2', 'b3'];
    expect([...ids].filter(([, id]) => left.has(id)).map(([name]) => name)).toEqual(kept);
    const attemptsLeft = await log.attempts.find({}, { deliveryId: 1 }).lean<Pick<AttemptDoc, 'deliveryId'>[]>();
    const attemptOwners = new Set(attemptsLeft.map((a) => a.deliveryId));
    for (const name of ['a6', 'b1']) expect(attemptOwners.has(ids.get(name)!)).toBe(false);
    for (const name of ['a1', 'a4', 'b2']) expect(attemptOwners.has(ids.get(name)!)).toBe(true);
    // The old orphan is swept; the recent one (whose delivery may just be being written) is not.
    expect(attemptsLeft).toHaveLength(8);
  });
});

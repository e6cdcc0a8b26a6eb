import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { eventually } from '../support/wait.js';

/**
 * The queries of the delivery log and what backs each (src/deliveries/model.ts):
 *   deliveries {webhookId, createdAt < c or (= c and _id < i)} sort {createdAt: -1, _id: -1}: list, status
 *     filter, replay window, bulk delete; the purge walks every delivery sorted {webhookId, createdAt, _id}
 *   deliveries {_id}: one delivery
 *   delivery_attempts {deliveryId in [...]}: a delivery's attempts and current status
 *   delivery_attempts {at < cutoff}: the purge's sweep of attempts whose delivery is gone
 * A change that drops or reorders one of these indexes fails here.
 */
/** Unique indexes, by collection and key. */
const UNIQUE = new Set(['hooks {"tenantId":1,"datasource":1,"event":1}']);
const EXPECTED: Record<string, Record<string, number>[]> = {
  // Not the delivery log's, but built the same way (a unique hook per tenant, datasource and event).
  hooks: [{ _id: 1 }, { tenantId: 1, datasource: 1, event: 1 }],
  webhooks: [{ _id: 1 }, { tenantId: 1, _id: 1 }], // subscriptions
  deliveries: [{ _id: 1 }, { webhookId: 1, createdAt: -1, _id: -1 }],
  delivery_attempts: [{ _id: 1 }, { deliveryId: 1, n: 1 }, { at: 1 }],
};

describe('indexes', () => {
  let app: App;

  beforeAll(async () => {
    app = await startTestApp();
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('When hookbus has started, then each collection has exactly the indexes its queries use, built on connect', async () => {
    const db = app.db!.connection;
    for (const [collection, expected] of Object.entries(EXPECTED)) {
      const keys = await eventually(
        async () => {
          const indexes = await db
            .collection(collection)
            .indexes()
            .catch(() => []);
          return indexes.length >= expected.length ? indexes : undefined;
        },
        15_000,
        `the indexes of ${collection}`,
      );
      // Key order matters in a compound index: compare the entries in order.
      const shape = (key: Record<string, unknown>, unique: boolean) =>
        `${JSON.stringify(Object.entries(key))}${unique ? ' unique' : ''}`;
      const isUnique = (key: Record<string, unknown>) => UNIQUE.has(`${collection} ${JSON.stringify(key)}`);
      expect(keys.map((i) => shape(i.key, i.unique === true)).sort()).toEqual(
        expected.map((key) => shape(key, isUnique(key))).sort(),
      );
    }
  });
});

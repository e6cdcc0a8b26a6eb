import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../src/deliveries/log.js';
import type { AttemptDoc, DeliveryDoc } from '../../src/deliveries/model.js';
import { deliveryView } from '../../src/deliveries/view.js';
import { headersObject } from '../../src/delivery-log/views.js';

const t0 = Date.UTC(2026, 10, 25, 12);
const delivery: DeliveryDoc = {
  _id: 'msg_aaaaaaaaaaaaaaaaaaaaaaaaaa',
  webhookId: 'wh_1',
  tenantId: 't',
  scope: 'tenant',
  eventId: 'evt_1',
  event: 'a.b',
  url: 'http://example.com',
  status: 'pending',
  payload: '{}',
  createdAt: new Date(t0),
  updatedAt: new Date(t0),
  nextAttemptAt: new Date(t0),
};
const attempt = (
  n: number,
  atMs: number,
  status: AttemptDoc['status'],
  extra: Partial<AttemptDoc> = {},
): AttemptDoc => ({
  _id: `${delivery._id}.${n}.${atMs}`,
  deliveryId: delivery._id,
  webhookId: 'wh_1',
  tenantId: 't',
  n,
  at: new Date(t0 + atMs),
  durationMs: 5,
  request: { headers: '[]' },
  response: null,
  error: null,
  status,
  nextAttemptAt: null,
  ...extra,
});

describe('a delivery as read', () => {
  it('When it has no attempt, then it is pending with its own times', () => {
    expect(deliveryView(delivery, [])).toMatchObject({ status: 'pending', attempts: [], nextAttemptAt: new Date(t0) });
  });

  it('When an operator retry (n=3) comes before the chain attempt it overlapped (n=2), then the later one in time decides', () => {
    const view = deliveryView(delivery, [
      attempt(2, 3000, 'failed'),
      attempt(1, 1000, 'retrying', { nextAttemptAt: new Date(t0 + 3000) }),
      attempt(3, 2000, 'success'),
    ]);
    expect(view.attempts.map((a) => a.n)).toEqual([1, 3, 2]);
    expect(view.status).toBe('failed');
    expect(view.updatedAt).toEqual(new Date(t0 + 3005));
  });

  it('When a replay mark is the latest entry, then the delivery is retrying and the mark is not listed as an attempt', () => {
    const view = deliveryView(delivery, [
      attempt(1, 1000, 'failed'),
      attempt(1, 5000, 'retrying', { queued: true, nextAttemptAt: new Date(t0 + 5000) }),
    ]);
    expect(view.status).toBe('retrying');
    expect(view.nextAttemptAt).toEqual(new Date(t0 + 5000));
    expect(view.attempts).toHaveLength(1);
  });
});

describe('delivery log cursors', () => {
  it('When a cursor is encoded, then it decodes to the same position', () => {
    const cursor = { createdAt: new Date(t0), id: delivery._id };
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
  });

  it.each(['', 'zzz', Buffer.from('[1,"x"]').toString('base64url'), Buffer.from('{"a":1}').toString('base64url')])(
    'When the cursor is %j, then it is refused',
    (text) => expect(decodeCursor(text)).toBeNull(),
  );
});

describe('headers as shown', () => {
  it('When a header comes twice, then its values are listed; once, a string', () => {
    expect(
      headersObject([
        { name: 'set-cookie', value: 'a=1' },
        { name: 'set-cookie', value: 'b=2' },
        { name: 'x-one', value: '1' },
      ]),
    ).toEqual({ 'set-cookie': ['a=1', 'b=2'], 'x-one': '1' });
  });
});

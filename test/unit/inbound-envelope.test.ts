import { afterEach, describe, expect, it } from 'vitest';
import { eventNameOf, keptHeaders, occurredAtOf } from '../../src/hooks/inbound-envelope.js';

describe('occurredAt from tsField', () => {
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  it.each(['America/New_York', 'Asia/Kolkata', 'UTC'])(
    'When an ISO time has no offset and the server runs in %s, then it is read as UTC',
    (tz) => {
      process.env.TZ = tz;
      expect(occurredAtOf({ t: '2015-12-22T10:33:28' }, 't')).toBe('2015-12-22T10:33:28.000Z');
      expect(occurredAtOf({ t: '2015-12-22 10:33' }, 't')).toBe('2015-12-22T10:33:00.000Z');
      expect(occurredAtOf({ t: '2015-12-22' }, 't')).toBe('2015-12-22T00:00:00.000Z');
      expect(occurredAtOf({ t: '2015-12-22T10:33:28+01:00' }, 't')).toBe('2015-12-22T09:33:28.000Z');
    },
  );

  it.each([
    [{ a: { b: [{ c: 1450780408 }] } }, 'a.b[0].c', '2015-12-22T10:33:28.000Z'],
    [{ t: 1450780408713 }, 't', '2015-12-22T10:33:28.713Z'],
    [{ t: 'soon' }, 't', undefined],
    [{ t: '2015-13-45' }, 't', undefined],
    [{ t: null }, 't', undefined],
    [{ t: -5 }, 't', undefined],
    [[1, 2], 't', undefined],
  ])('When the payload is %o and tsField %s, then occurredAt is %s', (payload, field, expected) => {
    expect(occurredAtOf(payload, field)).toBe(expected);
  });
});

describe('event names read from a request', () => {
  it.each([
    ['push', 'push'],
    ['charge.succeeded', 'charge.succeeded'],
    ['a..b', undefined],
    ['push#', undefined],
    ['*', undefined],
    ['', undefined],
    [42, undefined],
  ])('When the value is %o, then the event is %s', (value, expected) => {
    expect(eventNameOf(value)).toBe(expected);
  });
});

describe('headers kept in the envelope', () => {
  it('When a request carries secrets and noise, then only the allow-list is kept', () => {
    expect(
      keptHeaders({
        authorization: 'Bearer x',
        cookie: 'a=b',
        'x-gitlab-token': 'secret',
        'x-gitlab-event': 'Push Hook',
        'x-github-event': 'push',
        'user-agent': 'GitHub-Hookshot/1',
        'x-forwarded-for': '1.2.3.4',
        'stripe-signature': 't=1,v1=ab',
      }),
    ).toEqual({
      'x-gitlab-event': 'Push Hook',
      'x-github-event': 'push',
      'user-agent': 'GitHub-Hookshot/1',
      'stripe-signature': 't=1,v1=ab',
    });
  });
});

import fc from 'fast-check';
import { nastyString, type FieldArbitraries } from './hostile-json.js';

/** The known body fields of each JSON endpoint (SPEC §4.1, §4.2, §5.1): values accepted, and refused. */

const word = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const notWord = fc.constantFrom('a.b', '*', '#', '', 'a'.repeat(65), 'é', 'a b', 'a\u0000');
const eventName = fc.oneof(
  fc.constantFrom('github.push', 'hostile.fuzz', 'a', 'a.b.c'),
  fc.array(word, { minLength: 1, maxLength: 3 }).map((words) => words.join('.')),
);
const isoDate = fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString());
const badDate = fc.constantFrom(
  '2020-02-30T00:00:00Z',
  '+275760-09-13T00:00:00.001Z',
  '-271821-04-20T00:00:00.000Z',
  '2020-01-01',
  '2020-01-01T00:00:00',
  'yesterday',
  '1700000000',
  '',
);
const headerName = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$/);

export const HOOK_FIELDS: FieldArbitraries = {
  datasource: { valid: word, bad: notWord },
  event: { valid: fc.oneof(word, fc.constant('*')), bad: notWord.filter((w) => w !== '*') },
  tsField: {
    valid: fc.constantFrom(
      'commits[0].timestamp',
      'a.b',
      '',
      null,
      '__proto__.polluted',
      'constructor.prototype',
      'a[99999999999999]',
    ),
    bad: fc.constantFrom('a'.repeat(300), '..', '[0]', 'a..b', 'a[-1]', 'a.', '0a'),
  },
  eventFrom: {
    valid: fc.constantFrom(
      { header: 'x-github-event' },
      { field: 'type' },
      { field: '__proto__' },
      { field: 'constructor.name' },
      null,
    ),
    bad: fc.constantFrom({ header: 'bad header' }, {}, { header: 'x', field: 'y' }, { field: '' }),
  },
  verify: {
    valid: fc.constantFrom(
      { scheme: 'github', secret: 'hostile-secret' },
      { scheme: 'stripe', secret: 'whsec_hostile' },
      { scheme: 'standard-webhooks', secret: 'whsec_aG9zdGlsZQ==' },
      { scheme: 'hmac-sha256', secret: 'hostile-secret', header: 'x-sig', encoding: 'base64' },
      null,
    ),
    bad: fc.constantFrom(
      { scheme: 'none' },
      { scheme: 'github' },
      { scheme: 'github', secret: 'short' },
      { scheme: 'hmac-sha256', secret: 'hostile-secret' },
    ),
  },
};

/** `receiverUrl` is asked when a value is drawn: the receiver starts after the properties are declared. */
export const subscriptionFields = (receiverUrl: () => string): FieldArbitraries => ({
  name: {
    valid: fc.oneof(
      fc.constant('hostile'),
      nastyString.filter((s) => s.length <= 200),
    ),
    bad: fc.constant('n'.repeat(201)),
  },
  description: { valid: nastyString.filter((s) => s.length <= 2000), bad: fc.constant('d'.repeat(2001)) },
  url: {
    valid: fc
      .constantFrom(
        '(receiver)',
        'http://127.0.0.1:1/refused',
        'https://receiver.invalid/x',
        'http://[::1]:1/',
        `http://127.0.0.1:1/${'a'.repeat(2000)}`,
      )
      .map((url) => (url === '(receiver)' ? receiverUrl() : url)),
    bad: fc.constantFrom(
      'ftp://x/',
      'http://u:p@127.0.0.1/',
      'javascript:alert(1)',
      '//x',
      'http://',
      `http://x/${'a'.repeat(3000)}`,
      'http://[::1/',
    ),
  },
  events: {
    valid: fc.array(fc.oneof(eventName, fc.constantFrom('github.*', '*', 'hostile.never')), {
      minLength: 1,
      maxLength: 100,
    }),
    bad: fc.constantFrom(
      [],
      ['a..b'],
      ['#'],
      ['**'],
      ['a.*.b'],
      [''],
      ['x'.repeat(70)],
      Array.from({ length: 101 }, (_, i) => `e${i}`),
    ),
  },
  scope: { valid: fc.constantFrom('tenant', 'site'), bad: fc.constantFrom('Tenant', '', 'global') },
  filter: {
    valid: fc.constantFrom(
      {},
      { resourceKeyPattern: '^repo/.+$' },
      { resourceKeyPattern: '(a+)+$' },
      { resourceKeyPattern: '' },
    ),
    bad: fc.constantFrom(
      { resourceKeyPattern: '[' },
      { resourceKeyPattern: '(?<=a)b' },
      { resourceKeyPattern: '(a)\\1' },
      { resourceKeyPattern: 'a'.repeat(1025) },
      { other: 1 },
    ),
  },
  headers: {
    valid: fc.oneof(
      fc.constantFrom({}, { 'X-Team': 'a' }),
      fc.dictionary(
        headerName.filter(
          (n) =>
            !/^(host|content-|user-agent|connection|keep-alive|proxy-|te$|trailer|transfer-encoding|upgrade|webhook-|x-hookbus-)/i.test(
              n,
            ),
        ),
        fc.stringMatching(/^[\x20-\x7e]{0,80}$/),
        { maxKeys: 5 },
      ),
    ),
    bad: fc.oneof(
      fc.constantFrom(
        { Host: 'x' },
        { 'x-a': 'b\r\nX-Injected: 1' },
        { '': 'x' },
        { 'a b': 'c' },
        { 'X-Big': 'v'.repeat(5000) },
        { 'Webhook-Id': 'x' },
        { 'X-Hookbus-Event': 'x' },
      ),
      fc.dictionary(nastyString, nastyString, { minKeys: 1, maxKeys: 4 }),
    ),
  },
  auth: {
    valid: fc.constantFrom({ bearer: 't' }, { basic: { username: 'u', password: 'p' } }),
    bad: fc.constantFrom(
      { bearer: '' },
      { basic: {} },
      { basic: { username: 'a:b', password: 'p' } },
      { bearer: 't', basic: { username: 'u', password: 'p' } },
    ),
  },
  sslVerification: { valid: fc.boolean(), bad: fc.constantFrom('false', 0) },
  enabled: { valid: fc.boolean(), bad: fc.constantFrom('yes', 1) },
  payload: { valid: fc.constantFrom('envelope', 'data'), bad: fc.constantFrom('raw', '') },
  retry: {
    valid: fc.constantFrom({}, { maxAttempts: 1, timeoutMs: 100 }, { maxAttempts: 2 }),
    bad: fc.constantFrom(
      { maxAttempts: 0 },
      { maxAttempts: 1e308 },
      { timeoutMs: -1 },
      { timeoutMs: 1.5 },
      { timeoutMs: 999_999 },
      { maxAttempts: 99 },
    ),
  },
});

export const REPLAY_FIELDS: FieldArbitraries = {
  since: { valid: isoDate, bad: badDate },
  until: { valid: isoDate, bad: badDate },
  status: {
    valid: fc.constantFrom('success', 'failed', ['success', 'failed'], ['failed']),
    bad: fc.constantFrom([], 'pending', ['retrying'], null, ['success', 'nope']),
  },
};

export const EVENT_FIELDS: FieldArbitraries = {
  event: { valid: eventName, bad: fc.constantFrom('a'.repeat(256), '*', 'a.*', 'a..b', '', '#', 'a.b.c.d.e.f.g.h.i') },
  data: { valid: fc.jsonValue() },
  resourceKey: {
    valid: fc.oneof(
      fc.constantFrom(null, 'repo/a'),
      nastyString.filter((s) => s.length > 0 && s.length <= 1024),
    ),
    bad: fc.constantFrom('', 'k'.repeat(1025)),
  },
};

export const INBOUND_FIELDS: FieldArbitraries = {
  type: { valid: word, bad: notWord },
  commits: {
    valid: fc.constantFrom(
      [{ timestamp: '2015-12-22T10:33:28Z' }],
      [{ timestamp: 1450780408 }],
      [{ timestamp: 1450780408123 }],
    ),
    bad: fc.constantFrom([{ timestamp: 1e300 }], [{ timestamp: -1e300 }], [{ timestamp: 'x' }], [], [null], {}, [
      { timestamp: '+275760-09-13T00:00:00.001Z' },
    ]),
  },
  action: { valid: nastyString },
};

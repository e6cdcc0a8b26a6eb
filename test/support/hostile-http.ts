import fc from 'fast-check';
import jwt from 'jsonwebtoken';
import { INVALID_UTF8, nastyString } from './hostile-json.js';
import { TEST_JWT_SECRET, tokenFor } from './jwt.js';

/**
 * Hostile request parts that are not the body: path segments (traversal, encodings), query
 * strings, methods, request lines, header sections (injection, oversize, duplicates) and broken
 * bearer tokens.
 */

export type HeaderList = [string | Buffer, string | Buffer][];

const TRAVERSAL = [
  '..',
  '.',
  '../..',
  '..%2f..',
  '..%2F..%2F',
  '%2e%2e',
  '%2E%2E%2F',
  '.%2e',
  '%2e.',
  '%252e%252e',
  '..%5c..',
  '..\\..',
  '%c0%ae%c0%ae',
  '%c0%af',
  '..;',
  '%2f',
  '%5c',
  '%00',
  '%',
  '%zz',
  '%ff',
  '%ED%A0%80',
  '%u002e',
  '//',
  '',
  '%20',
  '~',
  'etc/passwd',
  '..%00',
  '?',
  '#',
  ';x=1',
  '*',
  '__proto__',
  'constructor',
  'prototype',
  '$where',
  'wh_00000000000000000000000000',
  'msg_AAAAAAAAAAAAAAAAAAAAAAAAAA',
  '0'.repeat(40),
];

/**
 * Percent-encodes every byte of `text` but the unreserved ones (encodeURIComponent throws on a lone
 * surrogate; the UTF-8 encoder writes U+FFFD for it instead).
 */
export const percentEncode = (text: string) =>
  [...Buffer.from(text)]
    .map((b) =>
      /[A-Za-z0-9._~-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).padStart(2, '0').toUpperCase()}`,
    )
    .join('');

/** A path segment built to escape, confuse or crash the route that reads it; `real` ids reach handlers. */
export function hostileSegment(real: readonly string[]): fc.Arbitrary<string> {
  const realId = fc.constantFrom(...real);
  const separator = fc.constantFrom('/', '%2f', '%2F', '//', '\\', '%5c', '/./', '/../');
  return fc.oneof(
    { weight: 3, arbitrary: realId },
    { weight: 3, arbitrary: fc.constantFrom(...TRAVERSAL) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(
          realId,
          fc.constantFrom(
            '/..',
            '%2f..',
            '/../..',
            '/',
            '//',
            '/.',
            '%00',
            '%20',
            ';',
            '.json',
            '?x=1',
            '#x',
            '%23',
            'x',
          ),
          fc.boolean(),
        )
        .map(([id, affix, before]) => (before ? `${affix.replace(/^\//, '')}/${id}` : `${id}${affix}`)),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.array(fc.oneof(fc.constantFrom(...TRAVERSAL), realId), { minLength: 1, maxLength: 6 }), separator)
        .map(([parts, sep]) => parts.join(sep)),
    },
    { weight: 2, arbitrary: nastyString.filter((s) => s.length < 2000).map(percentEncode) },
    { weight: 1, arbitrary: realId.map((id) => id.toUpperCase()) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 12_000 }).map((n) => 'a'.repeat(n)) },
  );
}

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Cursors that decode to something, but never to one the API handed out. */
const CURSORS = [
  b64([8.64e15 + 1, `msg_${'a'.repeat(26)}`]),
  b64([-8.64e15, `msg_${'a'.repeat(26)}`]),
  b64([1e300, `msg_${'a'.repeat(26)}`]),
  b64([0, { $gt: '' }]),
  b64([0, `msg_${'a'.repeat(26)}`, 'extra']),
  b64({ $gt: '' }),
  b64('wh_01ARZ3NDEKTSV4RRFFQ69G5FAV'),
  b64('wh_01ARZ3NDEKTSV4RRFFQ69G5FA'),
  b64(['__proto__', 'x']),
  b64(`${'['.repeat(5000)}${']'.repeat(5000)}`),
  b64('\u0000'),
  Buffer.from([0xff, 0xfe, 0xfd]).toString('base64url'),
];

/** A query string: known names with wrong values, repeats, brackets, pollution keys, bad encodings. */
export function hostileQuery(names: readonly string[]): fc.Arbitrary<string> {
  const name = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...names) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...names, '__proto__', 'constructor'),
          fc.constantFrom('[]', '[a]', '[__proto__]', '[prototype]', '[0]', '.x', '[constructor][prototype]'),
        )
        .map(([n, suffix]) => `${n}${suffix}`),
    },
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', '', '%00', '%ff', '&', '=') },
    { weight: 1, arbitrary: nastyString.filter((s) => s.length < 500).map(percentEncode) },
  );
  const value = fc.oneof(
    fc.constantFrom(
      '',
      '0',
      '1',
      '-1',
      '100',
      '101',
      '1e3',
      '0x10',
      '1.5',
      'NaN',
      'Infinity',
      '99999999999999999999',
      ' 5',
      '%00',
      '%ff',
      '%',
      '%zz',
      '%E2%82',
      'tenant',
      'site',
      'success',
      'failed',
      'pending',
      'retrying',
      'github.push',
      '*',
      '#',
      'a.*',
      '2020-01-01T00:00:00Z',
      '+275760-09-13T00:00:00.000Z',
      '2020-02-30T00:00:00Z',
      'eyJ4IjoxfQ',
      'AAAA',
      '==',
    ),
    nastyString.filter((s) => s.length < 4000).map(percentEncode),
    fc.integer({ min: 1, max: 12_000 }).map((n) => 'x'.repeat(n)),
    fc.constantFrom(...CURSORS),
  );
  const pair = fc.oneof(
    fc.tuple(name, value).map(([n, v]) => `${n}=${v}`),
    name,
    fc.constantFrom('=', '&', '==', '=x'),
  );
  return fc.array(pair, { maxLength: 6 }).map((pairs) => pairs.join('&'));
}

const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'TRACE',
  'CONNECT',
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
  'SEARCH',
  'PURGE',
  'QUERY',
  'LINK',
  'UNLINK',
  'REPORT',
  'M-SEARCH',
  'NOTIFY',
  'SUBSCRIBE',
  'MERGE',
  'SOURCE',
  'BIND',
  'ACL',
  'get',
  'Post',
  'FOO',
  'BREW',
  'G',
  'GET /',
  'GET\t',
  'GE\u0000T',
  'PÖST',
  'X'.repeat(1000),
];

export const hostileMethod = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...METHODS) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,20}$/) },
  {
    weight: 1,
    arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 12 }).filter((s) => !/[\r\n ]/.test(s)),
  },
);

/** Whole request lines (and what may follow them) that no well-behaved client sends. */
export const hostileRequestLine: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .constantFrom(
      'GET / HTTP/1.0\r\n\r\n',
      'GET /healthz HTTP/1.0\r\n\r\n',
      'GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/0.9\r\n\r\n',
      'GET /healthz\r\n\r\n',
      'GET /healthz http/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n',
      'GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz  HTTP/1.1\r\nHost: x\r\n\r\n',
      ' GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      '\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\nHost: x\n\n',
      'GET /healthz HTTP/1.1\rHost: x\r\r',
      'GET http://evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET https://evil.example:99999/api/webhooks HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET //evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n',
      'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz#frag HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}\r\n0\r\n\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n Folded: yes\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n',
      'POST /wh/config HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n',
    )
    .map((s) => Buffer.from(s, 'latin1')),
  // Random bytes, and random bytes after a plausible start.
  // (Not only CR and LF: empty lines before a request line are ignored (RFC 9112 §2.2), so a server
  // rightly waits for the request that has not come yet.)
  fc
    .uint8Array({ minLength: 1, maxLength: 512 })
    .filter((b) => b.some((byte) => byte !== 0x0d && byte !== 0x0a))
    .map((b) => Buffer.concat([Buffer.from(b), Buffer.from('\r\n\r\n')])),
  fc
    .tuple(
      fc.constantFrom('GET /', 'POST /wh/', 'GET /api/webhooks', 'GET /healthz HTTP/1.1\r\n'),
      fc.uint8Array({ maxLength: 256 }),
    )
    .map(([start, b]) => Buffer.concat([Buffer.from(start), Buffer.from(b), Buffer.from('\r\n\r\n')])),
  // Request targets of raw, unencoded bytes (spaces aside, which end the target).
  fc
    .tuple(
      fc.constantFrom(
        ...INVALID_UTF8,
        Buffer.from('\u00e9', 'latin1'),
        Buffer.from([0x7f]),
        Buffer.from([0x00]),
        Buffer.from('<>"{}|^`'),
      ),
      fc.constantFrom('/healthz', '/api/webhooks/', '/wh/config/', '/wh/a/'),
    )
    .map(([bad, path]) =>
      Buffer.concat([
        Buffer.from(`GET ${path}`),
        bad,
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ]),
    ),
  // Long request lines around Node's 16 KiB header limit.
  fc
    .integer({ min: 8_000, max: 40_000 })
    .map((n) => Buffer.from(`GET /healthz?${'a'.repeat(n)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)),
);

const INJECTION_VALUES = [
  'a\r\nX-Injected: 1',
  'a\nX-Injected: 1',
  'a\rX-Injected: 1',
  'a\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n',
  'a\r\n\r\nHTTP/1.1 200 OK\r\nX-Injected: 1\r\n\r\n',
  'a\u0000b',
  'a\u0007b',
  'a\u007fb',
  '\u00e9\u00ff',
  ' leading-space',
  'trailing-space ',
  '\ttab',
  'a,b,c',
  '"quoted"',
  '%0d%0aX-Injected:%201',
  'a'.repeat(8191),
];

const HEADER_NAMES = [
  'X-Request-Id',
  'Content-Type',
  'Authorization',
  'X-Orig-Server',
  'User-Agent',
  'X-GitHub-Event',
  'X-Hub-Signature-256',
  'Stripe-Signature',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'Accept',
  'Accept-Encoding',
  'Content-Encoding',
  'Cookie',
  'X-Forwarded-For',
  'X-Forwarded-Proto',
  'Forwarded',
  'Range',
  'If-None-Match',
  'Origin',
  'Referer',
];

/** Extra header lines: CR/LF injection, control bytes, invalid UTF-8, odd names, duplicates, oversize. */
export const hostileHeaders: fc.Arbitrary<{ kind: string; headers: HeaderList }> = fc.oneof(
  fc
    .array(fc.tuple(fc.constantFrom(...HEADER_NAMES), fc.constantFrom(...INJECTION_VALUES)), {
      minLength: 1,
      maxLength: 4,
    })
    .map((headers) => ({ kind: 'header injection', headers })),
  fc.tuple(fc.constantFrom(...HEADER_NAMES), fc.constantFrom(...INVALID_UTF8)).map(([name, bad]) => ({
    kind: 'invalid UTF-8 header',
    headers: [[name, Buffer.concat([Buffer.from('x'), bad])]] as HeaderList,
  })),
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom(
            'X Space',
            'X:Colon',
            '',
            '\u00e9',
            'X\u0000',
            '(x)',
            'X-'.repeat(100),
            'Content-Length',
            'Transfer-Encoding',
            'Host',
            'Connection',
            'Expect',
            'Upgrade',
            'TE',
            'Trailer',
            'Keep-Alive',
            'Proxy-Connection',
            '__proto__',
            'constructor',
          ),
          fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,30}$/),
        ),
        fc.oneof(
          fc.constantFrom(
            '',
            '0',
            '-1',
            '1e3',
            'chunked',
            'close',
            'keep-alive',
            'upgrade',
            '100-continue',
            'x',
            'h2c',
            'websocket',
            'trailers',
            'identity',
            'gzip',
          ),
          nastyString.filter((s) => !/[\r\n]/.test(s) && s.length < 4000),
        ),
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((headers) => ({ kind: 'odd headers', headers })),
  fc
    .tuple(
      fc.integer({ min: 8 * 1024, max: 64 * 1024 }),
      fc.constantFrom('X-Big', 'Authorization', 'Cookie', 'Content-Type', 'X-Request-Id'),
    )
    .map(([size, name]) => ({ kind: 'oversized header', headers: [[name, 'a'.repeat(size)]] as HeaderList })),
  fc.integer({ min: 100, max: 4000 }).map((count) => ({
    kind: 'many headers',
    headers: Array.from({ length: count }, (_, i): [string, string] => [`X-H${i}`, 'v']),
  })),
);

const b64url = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Authorization values that must all be refused: malformed, unsigned, wrongly signed, expired, bad claims. */
export function brokenAuthorization(tenant: string): fc.Arbitrary<string | Buffer | undefined> {
  const valid = tokenFor(tenant);
  const [header, payload] = valid.split('.');
  const claims = fc.oneof(
    fc.constantFrom<unknown>(
      null,
      true,
      1.5,
      -1,
      '',
      ' ',
      'a'.repeat(65),
      '../x',
      'a.b',
      'a*',
      '#',
      '__proto__',
      {},
      [],
      ['t'],
      { toString: 't' },
      '\u00e9',
      't\u0000',
    ),
    fc.jsonValue({ maxDepth: 2 }),
  );
  return fc.oneof(
    fc.constantFrom<string | undefined>(
      undefined,
      '',
      'Bearer',
      'Bearer ',
      'Bearer  ',
      `bearer ${valid}`,
      `BEARER ${valid}`,
      `Bearer  ${valid}`,
      `Bearer ${valid} `,
      `Bearer ${valid}.x`,
      `Bearer ${valid}, Bearer ${valid}`,
      `Token ${valid}`,
      valid,
      'Basic dXNlcjpwYXNz',
      'Basic ',
      `Bearer ${header}.${payload}.`,
      `Bearer ${header}.${payload}`,
      `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.`,
      `Bearer ${b64url({ alg: 'None' })}.${payload}.`,
      `Bearer ${b64url({ alg: 'HS256', kid: '../../../../dev/null' })}.${payload}.AAAA`,
      `Bearer ${b64url({ alg: 'RS256' })}.${payload}.AAAA`,
      `Bearer ${b64url('not json')}.${payload}.AAAA`,
      `Bearer ${b64url([1, 2])}.${payload}.AAAA`,
      `Bearer ${b64url({ alg: 'HS256' })}.${b64url('"a string"')}.AAAA`,
      `Bearer ${b64url({ alg: 'HS256' })}.${b64url('not json')}.AAAA`,
      `Bearer ${b64url({ alg: ['HS256'] })}.${payload}.AAAA`,
      `Bearer ${'a'.repeat(9000)}.${'b'.repeat(9000)}.c`,
      `Bearer ${'='.repeat(20)}.${'='.repeat(20)}.x`,
      `Bearer \u00e9.\u00e9.\u00e9`,
    ),
    claims.map((claim) => `Bearer ${jwt.sign({ tenantId: claim }, TEST_JWT_SECRET, { algorithm: 'HS256' })}`),
    fc
      .constantFrom<[object | string, jwt.SignOptions]>(
        [{ tenantId: tenant }, { algorithm: 'HS512' }],
        [{ tenantId: tenant }, { algorithm: 'HS384' }],
        [{ tenantId: tenant, exp: 1 }, { algorithm: 'HS256' }],
        [{ tenantId: tenant, nbf: 32503680000 }, { algorithm: 'HS256' }],
        [{ tenant: tenant }, { algorithm: 'HS256' }],
        ['a string payload', { algorithm: 'HS256' }],
      )
      .map(([body, options]) => {
        // HS384/HS512 with the right secret: refused by the algorithm allow-list, not by the signature.
        return `Bearer ${jwt.sign(body, TEST_JWT_SECRET, options)}`;
      }),
    fc
      .string({ minLength: 1, maxLength: 30 })
      .map((secret) => `Bearer ${jwt.sign({ tenantId: tenant }, `${secret}-wrong`, { algorithm: 'HS256' })}`),
    fc
      .tuple(
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc.string({ maxLength: 40 }),
      )
      .map(([h, p, s]) => `Bearer ${b64url(h)}.${b64url(p)}.${b64url(s)}`),
    fc
      .constantFrom(...INVALID_UTF8)
      .map((bad) => Buffer.concat([Buffer.from(`Bearer ${header}.`), bad, Buffer.from(`.${payload}`)])),
  );
}

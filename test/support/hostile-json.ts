import { gzipSync, deflateSync, brotliCompressSync } from 'node:zlib';
import fc from 'fast-check';

/**
 * Hostile request bodies for JSON endpoints, as bytes: random JSON, known fields with wrong types,
 * prototype-pollution keys, deep nesting, huge strings, invalid UTF-8, byte order marks, junk, odd
 * content types and encodings.
 */

/** Bytes written verbatim into a serialised JSON document (invalid UTF-8, numbers JSON.stringify cannot write). */
export class Raw {
  constructor(readonly bytes: Buffer) {}
}
export const raw = (text: string | Buffer) => new Raw(Buffer.isBuffer(text) ? text : Buffer.from(text));

/** JSON.stringify that also writes Raw values and own `__proto__` keys (built with Object.fromEntries). */
export function toJsonBytes(value: unknown): Buffer {
  const parts: Buffer[] = [];
  const write = (v: unknown) => {
    if (v instanceof Raw) parts.push(v.bytes);
    else if (Array.isArray(v)) {
      parts.push(Buffer.from('['));
      v.forEach((item, i) => {
        if (i > 0) parts.push(Buffer.from(','));
        write(item);
      });
      parts.push(Buffer.from(']'));
    } else if (v !== null && typeof v === 'object') {
      parts.push(Buffer.from('{'));
      Object.keys(v).forEach((key, i) => {
        if (i > 0) parts.push(Buffer.from(','));
        parts.push(Buffer.from(`${JSON.stringify(key)}:`));
        write((v as Record<string, unknown>)[key]);
      });
      parts.push(Buffer.from('}'));
    } else parts.push(Buffer.from(JSON.stringify(v) ?? 'null'));
  };
  write(value);
  return Buffer.concat(parts);
}

/** An object from entries, keeping `__proto__`, `constructor` and `prototype` as plain own keys. */
export const objectOf = (entries: [string, unknown][]) => Object.fromEntries(entries) as Record<string, unknown>;

export const POLLUTION_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

/** Byte sequences that are not UTF-8: lone continuation, overlong, surrogate, truncated, out of range. */
export const INVALID_UTF8 = [
  [0xff],
  [0xfe],
  [0x80],
  [0xbf],
  [0xc0, 0xaf],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xc3],
].map((bytes) => Buffer.from(bytes));

export const BOMS = [
  Buffer.from([0xef, 0xbb, 0xbf]),
  Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]),
  Buffer.from([0xfe, 0xff]),
  Buffer.from([0xff, 0xfe]),
  Buffer.from([0x00, 0x00, 0xfe, 0xff]),
];

/** Strings that have broken parsers, loggers and databases before. */
export const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  '\ud83d\ude00',
  '\u202e',
  '\ufeff',
  '\r\n',
  '\u2028\u2029',
  '$where',
  '$gt',
  '{"$gt":""}',
  'a.b',
  '$',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'null',
  'undefined',
  'NaN',
  '-1',
  '1e999',
  '../../etc/passwd',
  '..\\..\\windows',
  '%00',
  '%2e%2e%2f',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '${jndi:ldap://x/a}',
  '{{7*7}}',
  'ǅ̈̀ͅ',
  'Ⅻ',
  'İ',
];

export const nastyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 70_000 }), fc.constantFrom('a', 'é', '\u0000', '"', '\\', '😀'))
      .map(([n, unit]) => unit.repeat(n)),
  },
);

/** Values of every JSON type, and numbers JSON.stringify cannot write. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(raw('1e999'), raw('-1e999'), raw('-0'), raw('9007199254740993'), raw('1E+2'), raw('0.0000001e-400')),
  nastyString,
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }),
  fc.dictionary(nastyString, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
);

/** A known body field: values the endpoint accepts, and values of the right type it must refuse. */
export interface FieldSpec {
  valid: fc.Arbitrary<unknown>;
  bad?: fc.Arbitrary<unknown>;
}
export type FieldArbitraries = Record<string, FieldSpec>;

/** A wrong value for the field: a refused value of its type, or any JSON value at all. */
const wrongFor = (spec: FieldSpec) => (spec.bad ? fc.oneof(spec.bad, anyValue) : anyValue);

/** An object with each known field absent, valid, or wrong; sometimes an unknown field too. */
export function fieldsWithWrongTypes(fields: FieldArbitraries): fc.Arbitrary<Record<string, unknown>> {
  const entries = Object.entries(fields).map(([name, spec]) =>
    fc
      .oneof(
        { weight: 3, arbitrary: spec.valid },
        { weight: 3, arbitrary: wrongFor(spec) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      )
      .map((value): [string, unknown] | undefined => (value === undefined ? undefined : [name, value])),
  );
  return fc
    .tuple(fc.tuple(...entries), fc.option(fc.tuple(nastyString, anyValue), { freq: 5 }))
    .map(([known, extra]) => objectOf([...known.filter((e) => e !== undefined), ...(extra ? [extra] : [])]));
}

/** Valid fields only: the request reaches what comes after validation (the database, the broker). */
export const validFields = (fields: FieldArbitraries) =>
  fc
    .tuple(...Object.entries(fields).map(([name, spec]) => spec.valid.map((value): [string, unknown] => [name, value])))
    .map((entries) => objectOf(entries));

/** Valid fields but one, which is wrong: each field's own validation is reached. */
export const oneWrongField = (fields: FieldArbitraries) =>
  fc
    .tuple(validFields(fields), fc.constantFrom(...Object.keys(fields)))
    .chain(([object, name]) => wrongFor(fields[name]!).map((value) => ({ ...object, [name]: value })));

const pollution = fc.constantFrom<unknown>(
  objectOf([['polluted', 'yes']]),
  objectOf([['prototype', objectOf([['polluted', 'yes']])]]),
  objectOf([['__proto__', objectOf([['polluted', 'yes']])]]),
  objectOf([['toString', 'x']]),
  'yes',
  null,
  [],
);

/** Puts `key: value` into the object at a random depth (following `path` through objects and arrays). */
function inject(target: unknown, path: number[], key: string, value: unknown): unknown {
  if (Array.isArray(target)) {
    const items = target as unknown[];
    if (path.length === 0 || items.length === 0) return [...items, objectOf([[key, value]])];
    const [at = 0, ...rest] = path;
    const copy = [...items];
    copy[at % copy.length] = inject(copy[at % copy.length], rest, key, value);
    return copy;
  }
  if (target !== null && typeof target === 'object' && !(target instanceof Raw)) {
    const entries = Object.entries(target);
    const nested = entries.filter(([, v]) => v !== null && typeof v === 'object' && !(v instanceof Raw));
    if (path.length === 0 || nested.length === 0) return objectOf([...entries, [key, value]]);
    const [at = 0, ...rest] = path;
    const [name] = nested[at % nested.length]!;
    return objectOf(entries.map(([k, v]) => [k, k === name ? inject(v, rest, key, value) : v]));
  }
  return target;
}

export function withPollution(base: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      base,
      fc.array(fc.tuple(fc.array(fc.nat(), { maxLength: 4 }), fc.constantFrom(...POLLUTION_KEYS), pollution), {
        minLength: 1,
        maxLength: 3,
      }),
    )
    .map(([object, injections]) =>
      injections.reduce<unknown>((acc, [path, key, value]) => inject(acc, path, key, value), object),
    );
}

/** Nesting 100 to 100,000 deep, as text (building it as values would overflow our own stack). */
export const deepJson = fc
  .tuple(
    fc.oneof(fc.integer({ min: 100, max: 1000 }), fc.integer({ min: 1000, max: 100_000 })),
    fc.constantFrom(['[', ']'], ['{"a":', '}'], ['[{"a":', '}]'], ['{"__proto__":', '}']),
    fc.boolean(),
  )
  .map(([depth, [open, close], balanced]) =>
    raw(open.repeat(depth) + (open.endsWith(':') ? '1' : '') + (balanced ? close.repeat(depth) : '')),
  );

export interface BodyCase {
  kind: string;
  body: Buffer;
  contentType: string | null;
  contentEncoding?: string;
  chunked?: boolean;
  /** Sent like a client that uploads the whole body before it reads the answer. */
  readAfterWrite?: boolean;
}

const CONTENT_TYPES = [
  'application/json; charset=utf-8',
  'application/json; charset=UTF-8',
  'application/vnd.github+json',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/json; charset=utf-16le',
  'application/json; charset=nope',
  'application/json; charset',
  'application/json;;;',
  'APPLICATION/JSON',
  'text/plain',
  'text/json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'json',
  '*/*',
  '',
  ';',
  'application/json, text/plain',
  `application/json; x=${'a'.repeat(8000)}`,
];

export const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  { weight: 4, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).filter((s) => !/[\r\n\0]/.test(s)) },
  { weight: 1, arbitrary: fc.constant(null) },
);

/** Every kind of hostile body, built around an endpoint's fields and its body limit. */
export function hostileBody(fields: FieldArbitraries, limitBytes: number): fc.Arbitrary<BodyCase> {
  const fieldNames = Object.keys(fields);
  const wrongTypes = fieldsWithWrongTypes(fields);
  const json = (kind: string, value: fc.Arbitrary<unknown>) => value.map((v) => ({ kind, body: toJsonBytes(v) }));

  const huge = fc
    .tuple(
      validFields(fields),
      fc.constantFrom(...fieldNames, 'unknown'),
      fc.oneof(
        fc.integer({ min: Math.max(1, limitBytes - 200), max: limitBytes + 200 }),
        fc.integer({ min: 1, max: 2 * 1024 * 1024 }),
      ),
      fc.constantFrom('a', 'é', '\\u0000', '\\"'),
    )
    .map(([object, field, size, unit]) => ({
      kind: 'huge string',
      body: toJsonBytes({ ...object, [field]: raw(`"${unit.repeat(Math.ceil(size / Buffer.byteLength(unit)))}"`) }),
    }));

  const deep = fc
    .tuple(wrongTypes, fc.constantFrom(...fieldNames, '(top)'), deepJson)
    .map(([object, field, nested]) => ({
      kind: 'deep nesting',
      body: field === '(top)' ? nested.bytes : toJsonBytes({ ...object, [field]: nested }),
    }));

  const invalidUtf8 = fc
    .tuple(validFields(fields), fc.constantFrom(...fieldNames), fc.constantFrom(...INVALID_UTF8), fc.boolean())
    .map(([object, field, bad, inKey]) => {
      if (!inKey) {
        const value = raw(Buffer.concat([Buffer.from('"x'), bad, Buffer.from('y"')]));
        return { kind: 'invalid UTF-8', body: toJsonBytes({ ...object, [field]: value }) };
      }
      const rest = toJsonBytes(object).subarray(1);
      const key = Buffer.concat([Buffer.from('{"k'), bad, Buffer.from('":1'), Buffer.from(rest.length > 1 ? ',' : '')]);
      return { kind: 'invalid UTF-8', body: Buffer.concat([key, rest]) };
    });

  const bom = fc.tuple(fc.constantFrom(...BOMS), validFields(fields), fc.boolean()).map(([mark, object, spaced]) => ({
    kind: 'byte order mark',
    body: Buffer.concat([spaced ? Buffer.from(' ') : Buffer.alloc(0), mark, toJsonBytes(object)]),
  }));

  const junk = fc
    .oneof(
      fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes)),
      fc
        .constantFrom(
          '',
          ' ',
          '\n',
          'null',
          'true',
          '0',
          '"x"',
          '[]',
          '{',
          '}',
          '{"a":1,}',
          "{'a':1}",
          '{"a":NaN}',
          '{"a":1}//x',
          '/*x*/{}',
          '{"a":1}{"b":2}',
          '\u0000{}',
        )
        .map((s) => Buffer.from(s)),
      validFields(fields).chain((object) => {
        const text = toJsonBytes(object);
        return fc.nat({ max: Math.max(0, text.length - 1) }).map((cut) => text.subarray(0, cut));
      }),
      validFields(fields).map((object) => {
        // Duplicate keys: which one wins must not matter for safety.
        const text = toJsonBytes(object).toString();
        return Buffer.from(text.length > 2 ? `${text.slice(0, -1)},${text.slice(1)}` : text);
      }),
    )
    .map((body) => ({ kind: 'not JSON', body }));

  const bodies = fc.oneof(
    { weight: 3, arbitrary: json('random JSON', fc.jsonValue()) },
    { weight: 3, arbitrary: json('wrong types', wrongTypes) },
    { weight: 3, arbitrary: json('one wrong field', oneWrongField(fields)) },
    { weight: 3, arbitrary: json('valid fields', validFields(fields)) },
    { weight: 3, arbitrary: json('prototype pollution', withPollution(wrongTypes)) },
    { weight: 2, arbitrary: deep },
    { weight: 1, arbitrary: huge },
    { weight: 2, arbitrary: invalidUtf8 },
    { weight: 1, arbitrary: bom },
    { weight: 2, arbitrary: junk },
  );

  const encoding = fc.oneof(
    { weight: 12, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'GZIP') },
    { weight: 1, arbitrary: fc.constantFrom('gzip-junk', 'gzip-bomb', 'x-unknown', 'gzip, gzip', 'compress', '') },
  );

  return fc
    .tuple(bodies, contentType, encoding, fc.boolean(), fc.boolean())
    .map(([{ kind, body }, type, enc, chunked, uploadFirst]): BodyCase => {
      const common = {
        kind,
        contentType: type,
        chunked: chunked && body.length > 0 && body.length < 100_000,
        // Only where it matters: a body large enough to still be on its way after an early answer.
        readAfterWrite: uploadFirst && body.length > 64 * 1024,
      };
      switch (enc) {
        case undefined:
          return { ...common, body };
        case 'gzip':
        case 'GZIP':
          return { ...common, body: gzipSync(body), contentEncoding: enc };
        case 'deflate':
          return { ...common, body: deflateSync(body), contentEncoding: enc };
        case 'br':
          return { ...common, body: brotliCompressSync(body), contentEncoding: enc };
        case 'gzip-junk':
          return { ...common, body, contentEncoding: 'gzip' };
        case 'gzip-bomb':
          return { ...common, kind: 'compression bomb', body: GZIP_BOMB, contentEncoding: 'gzip' };
        default:
          return { ...common, body, contentEncoding: enc };
      }
    });
}

/** 20 MiB of JSON whitespace around an object: a few KiB compressed. */
const GZIP_BOMB = gzipSync(
  Buffer.concat([Buffer.from('{"a":'), Buffer.alloc(20 * 1024 * 1024, 0x20), Buffer.from('1}')]),
);

/** Encodes `body` with chunked transfer coding in random-ish chunk sizes. */
export function chunkedBytes(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0, size = 1; at < body.length; at += size, size = size * 3 + 1) {
    const chunk = body.subarray(at, at + size);
    parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

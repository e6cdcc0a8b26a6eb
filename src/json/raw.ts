/**
 * JSON read as bytes, without re-encoding it: payloads travel from ingest to subscribers byte for
 * byte (number spelling, escapes, spacing and key order included), so hookbus never parses and
 * re-serialises them. Structural characters are ASCII and UTF-8 never uses bytes below 0x80 inside
 * a multi-byte character, so scanning bytes is exact.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The bytes without a leading UTF-8 byte-order mark (RFC 8259 §8.1 lets a parser ignore one). */
export const withoutBom = (bytes: Buffer): Buffer =>
  bytes.subarray(0, 3).equals(UTF8_BOM) ? bytes.subarray(3) : bytes;

const isSpace = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/**
 * The JSON text without the whitespace around its value: that whitespace is not part of the value,
 * and dropping it keeps a payload the same bytes whether it is sent whole or taken out of an envelope.
 */
export function trimmed(bytes: Buffer): Buffer {
  let start = 0;
  let end = bytes.length;
  while (start < end && isSpace(bytes[start]!)) start++;
  while (end > start && isSpace(bytes[end - 1]!)) end--;
  return bytes.subarray(start, end);
}

/** The index just past the string whose opening quote is at `start`. */
function skipString(bytes: Uint8Array, start: number): number {
  let i = start + 1;
  while (i < bytes.length) {
    const byte = bytes[i]!;
    if (byte === BACKSLASH) i += 2;
    else if (byte === QUOTE) return i + 1;
    else i++;
  }
  return i;
}

/**
 * How deep arrays and objects nest in JSON text (0 for a scalar). It stops counting once the
 * depth passes `limit`, so a hostile body costs one pass over its bytes at most, and no stack.
 */
export function nestingDepth(bytes: Uint8Array, limit = Infinity): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < bytes.length;) {
    const byte = bytes[i]!;
    if (byte === QUOTE) {
      i = skipString(bytes, i);
      continue;
    }
    if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) depth--;
    i++;
  }
  return deepest;
}

/** The index just past the value starting at `start` (valid JSON assumed). */
function skipValue(bytes: Uint8Array, start: number): number {
  const first = bytes[start];
  if (first === QUOTE) return skipString(bytes, start);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    for (let i = start; i < bytes.length;) {
      const byte = bytes[i]!;
      if (byte === QUOTE) {
        i = skipString(bytes, i);
        continue;
      }
      if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) depth++;
      else if ((byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) && --depth === 0) return i + 1;
      i++;
    }
    return bytes.length;
  }
  let i = start;
  while (i < bytes.length && bytes[i] !== COMMA && bytes[i] !== CLOSE_OBJECT && !isSpace(bytes[i]!)) i++;
  return i;
}

function skipSpace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length && isSpace(bytes[i]!)) i++;
  return i;
}

/**
 * The exact bytes of each member of a JSON object's top level, by key (a repeated key: the last,
 * as JSON.parse keeps). Only for text JSON.parse has accepted; anything but an object gives none.
 */
export function topLevelMembers(bytes: Buffer): Map<string, Buffer> {
  const members = new Map<string, Buffer>();
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== OPEN_OBJECT) return members;
  i = skipSpace(bytes, i + 1);
  while (i < bytes.length && bytes[i] === QUOTE) {
    const keyEnd = skipString(bytes, i);
    const key = JSON.parse(bytes.toString('utf8', i, keyEnd)) as string;
    i = skipSpace(bytes, keyEnd);
    if (bytes[i] !== COLON) break;
    const start = skipSpace(bytes, i + 1);
    const end = skipValue(bytes, start);
    members.set(key, bytes.subarray(start, end));
    i = skipSpace(bytes, end);
    if (bytes[i] !== COMMA) break;
    i = skipSpace(bytes, i + 1);
  }
  return members;
}

/**
 * `object` serialised with one more member, `key`, whose value is JSON text spliced in as it is
 * (not re-encoded). The caller vouches that `json` is JSON text.
 */
export function withRawMember(object: object, key: string, json: Buffer): Buffer {
  const head = JSON.stringify(object);
  const separator = head === '{}' ? '' : ',';
  return Buffer.concat([
    Buffer.from(`${head.slice(0, -1)}${separator}${JSON.stringify(key)}:`),
    json,
    Buffer.from('}'),
  ]);
}

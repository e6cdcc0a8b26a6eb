import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's X-Request-Id when it is a sane token, else a fresh UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && ACCEPTABLE_ID.test(given) ? given : randomUUID();
}

/** What stands for a path segment that may hold a secret and has no parameter name to show. */
const MASK = '[redacted]';

/** Escape layers undone before a segment is judged; one still escaped after that many is masked. */
const MAX_UNESCAPES = 4;

/**
 * A segment as a router or a proxy in front may read it: unescaped (byte by byte, so a malformed
 * escape cannot throw) and in lower case; undefined if still escaped after MAX_UNESCAPES layers.
 */
function readAs(segment: string): string | undefined {
  let text = segment;
  for (let layer = 0; layer <= MAX_UNESCAPES; layer++) {
    const unescaped = text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (unescaped === text) return text.toLowerCase();
    text = unescaped;
  }
  return undefined;
}

type HookSegment = 'wh' | 'holds-wh' | 'opaque';

/**
 * `wh` if the segment reads as the hook URLs' first one; `holds-wh` if it holds `wh` behind an
 * escaped or unusual separator (`wh%2F…`, `wh\…`, `wh;…`); `opaque` if it is still escaped after
 * MAX_UNESCAPES layers (it might read as anything); else undefined.
 */
function hookSegment(segment: string): HookSegment | undefined {
  const read = readAs(segment);
  if (read === undefined) return 'opaque';
  if (read === 'wh') return 'wh';
  return read.split(/[/\\;]/).includes('wh') ? 'holds-wh' : undefined;
}

/**
 * The path as a log line may show it: the query dropped, and the hook URL's tokens replaced by their
 * parameter names (`/wh/:apiToken/:token`, the config API's `/wh/config/:token`). Express takes
 * `/WH/…` for `/wh/…`, and a proxy in front may unescape `/%77h/…` or tidy `//wh/…`, so whatever
 * follows any segment that reads as `wh` is masked; empty and dot segments are kept, to show how
 * the path was spelled.
 */
export function loggablePath(url: string | undefined): string {
  const path = (url ?? '').split(/[?#]/, 1)[0] ?? '';
  const segments = path.split('/');
  const kinds = segments.map(hookSegment);
  const at = kinds.findIndex((kind) => kind !== undefined);
  if (at === -1) return path;
  const before = segments.slice(0, at);
  const kind = kinds[at];
  if (kind === 'wh') return [...before, segments[at], ...maskedAfterWh(segments.slice(at + 1))].join('/');
  return [...before, ...(kind === 'holds-wh' ? ['wh'] : []), MASK].join('/');
}

/** `config` and the API token or `:token` by position; empty and dot segments shown as sent. */
function maskedAfterWh(segments: string[]): string[] {
  const named = segments.filter((segment) => !isStructural(segment));
  const names = named.length > 0 && readAs(named[0]!) === 'config' ? [named[0]!, ':token'] : [':apiToken', ':token'];
  let position = 0;
  return segments.map((segment) => (isStructural(segment) ? segment : (names[position++] ?? MASK)));
}

const isStructural = (segment: string) => ['', '.', '..'].includes(readAs(segment) ?? '?');

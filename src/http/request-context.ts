import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's X-Request-Id when it is a sane token, else a fresh UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && ACCEPTABLE_ID.test(given) ? given : randomUUID();
}

/**
 * The path with the secrets in it replaced by their parameter names: the hook URL's two tokens
 * and a hook's token in the config API. Query strings are dropped.
 */
export function loggablePath(url: string | undefined): string {
  const path = (url ?? '').split('?')[0] ?? '';
  return path
    .replace(/^\/wh\/config\/[^/]+/, '/wh/config/:token')
    .replace(/^\/wh\/(?!config(?:\/|$))[^/]+\/[^/]+/, '/wh/:apiToken/:token');
}

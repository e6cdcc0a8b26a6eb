import bytes from 'bytes';
import ms from 'ms';

/** The roles one process can run (SPEC §1). */
export const ROLES = ['api', 'ingest', 'dispatcher'] as const;
export type Role = (typeof ROLES)[number];

/** Algorithms jsonwebtoken can verify; `none` is deliberately absent. */
export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export interface Binding {
  exchange: string;
  bindingKey: string;
}

const MS_SYNTAX =
  /^\d+(\.\d+)?\s*(ms|msecs?|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|y|yrs?|years?)$/i;

/** The longest wait a Node.js timer can take; longer ones would fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration within [min, max] milliseconds. */
export function boundedDuration(min: number, max: number) {
  return (value: unknown): number => {
    const ms = parseDuration(value);
    if (ms < min || ms > max) throw new Error(`must be from ${min}ms to ${max}ms`);
    return ms;
  };
}

/** `ms` syntax (`300ms`, `5s`, `30d`) or a bare integer of milliseconds; anything else throws. */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const text = value.trim();
    if (/^\d+$/.test(text)) return Number(text);
    if (MS_SYNTAX.test(text)) return Math.round(ms(text as ms.StringValue));
  }
  throw new Error(`must be a duration such as 300ms, 5s, 2m, 1h, 30d or a whole number of milliseconds`);
}

/** `bytes` syntax as used by body parsers (`1mb`, `512kb`) or a bare number of bytes. */
export function parseByteSize(value: unknown): number {
  const parsed = typeof value === 'number' ? value : bytes.parse(String(value));
  if (typeof parsed !== 'number' || !Number.isSafeInteger(parsed) || parsed <= 0) {
    throw new Error('must be a size such as 1mb, 512kb or a whole number of bytes');
  }
  return parsed;
}

function splitList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => String(v).trim()).filter(Boolean);
  if (typeof value !== 'string') return [];
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
}

export function parseRoles(value: unknown): Role[] {
  const roles = splitList(value);
  if (roles.length === 0) throw new Error(`must name at least one of ${ROLES.join(', ')}`);
  for (const role of roles) {
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new Error(`unknown role "${role}"; roles are ${ROLES.join(', ')}`);
    }
  }
  return [...new Set(roles)] as Role[];
}

export function parseJwtAlgorithms(value: unknown): JwtAlgorithm[] {
  const algorithms = splitList(value);
  if (algorithms.length === 0) throw new Error('must name at least one algorithm');
  for (const algorithm of algorithms) {
    if (!(JWT_ALGORITHMS as readonly string[]).includes(algorithm)) {
      throw new Error(`"${algorithm}" is not accepted; use ${JWT_ALGORITHMS.join(', ')}`);
    }
  }
  return [...new Set(algorithms)] as JwtAlgorithm[];
}

export function parseDurationList(value: unknown): number[] {
  const items = Array.isArray(value) ? value : splitList(value);
  if (items.length === 0) throw new Error('must list at least one duration');
  return items.map(parseDuration);
}

export function parseHostList(value: unknown): string[] {
  return splitList(value).map((host) => {
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
      throw new Error(`"${host}" is not a host name`);
    }
    return host.toLowerCase();
  });
}

/** `exchange:bindingKey` pairs, comma separated. */
export function parseBindings(value: unknown): Binding[] {
  const items = Array.isArray(value) ? (value as unknown[]) : splitList(value);
  if (items.length === 0) throw new Error('must list at least one exchange:bindingKey pair');
  return items.map((item) => {
    if (typeof item === 'object' && item !== null && 'exchange' in item && 'bindingKey' in item) {
      return item as Binding;
    }
    const text = String(item);
    const colon = text.indexOf(':');
    const exchange = text.slice(0, colon);
    const bindingKey = text.slice(colon + 1);
    if (colon <= 0 || !bindingKey) throw new Error(`"${text}" is not an exchange:bindingKey pair`);
    return { exchange, bindingKey };
  });
}

/** `mongodb://` or `mongodb+srv://`; may list several hosts (a replica set), which URL cannot parse. */
export function parseMongoUri(value: unknown): string {
  if (typeof value !== 'string' || !/^mongodb(\+srv)?:\/\/[^\s/?#]+(\/[^\s?#]*)?(\?\S*)?$/.test(value)) {
    throw new Error('must be a mongodb:// or mongodb+srv:// connection string');
  }
  return value;
}

export function parseUrl(value: unknown, protocols: string[]): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new Error('must be an absolute URL');
  }
  if (!protocols.includes(url.protocol)) {
    throw new Error(`must be a ${protocols.map((p) => p.replace(':', '')).join(' or ')} URL`);
  }
  return String(value);
}

import convict from 'convict';
import { MAX_BODY_BYTES } from '../envelope.js';
import {
  boundedDuration,
  MAX_TIMER_MS,
  parseBindings,
  parseByteSize,
  parseDurationList,
  parseHostList,
  parseJwtAlgorithms,
  parseMongoUri,
  parseRoles,
  parseUrl,
} from './formats.js';

function format(name: string, parse: (value: unknown) => unknown): convict.Format {
  return {
    name,
    validate: (value: unknown) => void parse(value),
  };
}

function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (['true', '1', 'yes'].includes(text)) return true;
  if (['false', '0', 'no', ''].includes(text)) return false;
  throw new Error('must be true or false');
}

function parsePositiveInt(value: unknown): number {
  const number = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < 1) throw new Error('must be a whole number of at least 1');
  return number;
}

function parsePort(value: unknown): number {
  const number = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < 0 || number > 65535) {
    throw new Error('must be a port number from 0 to 65535');
  }
  return number;
}

function parseNonEmpty(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new Error('must not be empty');
  return value;
}

function parseOptionalString(value: unknown): string | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value !== 'string') throw new Error('must be a string');
  return value;
}

const PINO_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Each format's parser turns the raw value (an env string, a JSON value, a default) into its typed form. */
export const PARSERS = {
  roles: parseRoles,
  port: parsePort,
  'positive-int': parsePositiveInt,
  boolean: parseBoolean,
  /** Timeouts: at least 1 ms, at most what a timer can wait. */
  duration: boundedDuration(1, MAX_TIMER_MS),
  /** Intervals of periodic jobs: not so short that they hammer the database. */
  interval: boundedDuration(100, MAX_TIMER_MS),
  /** Ages compare timestamps, never wait on a timer: up to 100 years. */
  age: boundedDuration(1, 100 * 365 * 86_400_000),
  'duration-list': (value: unknown) => {
    const list = parseDurationList(value);
    if (list.some((ms) => ms < 1 || ms > MAX_TIMER_MS))
      throw new Error(`every wait must be from 1ms to ${MAX_TIMER_MS}ms`);
    return list;
  },
  /** Request bodies: every accepted body must still fit an envelope the dispatcher carries. */
  'body-size': (value: unknown) => {
    const size = parseByteSize(value);
    if (size > MAX_BODY_BYTES)
      throw new Error(`must be at most ${MAX_BODY_BYTES} bytes (8mb): larger envelopes are not carried`);
    return size;
  },
  'host-list': parseHostList,
  bindings: parseBindings,
  'jwt-algorithms': parseJwtAlgorithms,
  'http-url': (value: unknown) => parseUrl(value, ['http:', 'https:']),
  'mongodb-url': parseMongoUri,
  'amqp-url': (value: unknown) => parseUrl(value, ['amqp:', 'amqps:']),
  'non-empty': parseNonEmpty,
  /** Dotted words that prefix AMQP names (at most 255 bytes each, so the prefix stays short). */
  'name-prefix': (value: unknown) => {
    const text = String(value);
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(text) || text.length > 100) {
      throw new Error('must be dot-separated words of letters, digits, _ and - (at most 100 characters)');
    }
    return text;
  },
  'optional-string': parseOptionalString,
  'log-level': (value: unknown) => {
    if (!PINO_LEVELS.includes(String(value))) throw new Error(`must be one of ${PINO_LEVELS.join(', ')}`);
    return String(value);
  },
  'node-env': (value: unknown) => {
    if (!['development', 'test', 'production'].includes(String(value))) {
      throw new Error('must be development, test or production');
    }
    return String(value);
  },
} satisfies Record<string, (value: unknown) => unknown>;

export type FormatName = keyof typeof PARSERS;

for (const [name, parse] of Object.entries(PARSERS)) convict.addFormat(format(name, parse));

/** In DISPATCH_BINDINGS, stands for the value of INBOUND_EXCHANGE (no exchange name has `<`). */
export const INBOUND_EXCHANGE_PLACEHOLDER = '<INBOUND_EXCHANGE>';

interface Key {
  doc: string;
  format: FormatName;
  default: unknown;
  env: string;
  sensitive?: boolean;
  nullable?: boolean;
}

const key = (env: string, format: FormatName, defaultValue: unknown, doc: string, extra: Partial<Key> = {}): Key => ({
  doc,
  format,
  default: defaultValue,
  env,
  ...extra,
});

/** The whole configuration: SPEC §2, one key each, in the order of the SPEC's table. */
export const schema = {
  env: key('NODE_ENV', 'node-env', 'development', 'Environment; picks config/<NODE_ENV>.json.'),
  roles: key(
    'HOOKBUS_ROLES',
    'roles',
    'api,ingest,dispatcher',
    'Roles this process runs: api, ingest, dispatcher (comma list).',
  ),
  http: {
    port: key('PORT', 'port', 3000, 'HTTP port for every HTTP endpoint.'),
    host: key('HOST', 'non-empty', '0.0.0.0', 'HTTP bind address.'),
  },
  mongodb: {
    uri: key('MONGODB_URI', 'mongodb-url', 'mongodb://127.0.0.1:27017/hookbus', 'MongoDB connection string.', {
      sensitive: true,
    }),
  },
  amqp: {
    url: key('AMQP_URL', 'amqp-url', 'amqp://guest:guest@127.0.0.1:5672', 'RabbitMQ connection string.', {
      sensitive: true,
    }),
  },
  publicBaseUrl: key('PUBLIC_BASE_URL', 'http-url', 'http://localhost:3000', 'Base of issued hookUrls.'),
  origServerHosts: key(
    'ORIG_SERVER_HOSTS',
    'host-list',
    '',
    'Hosts allowed in X-ORIG-SERVER; an allowed host makes hookUrl https://webhook.<host>/...',
  ),
  jwt: {
    secret: key('JWT_SECRET', 'optional-string', null, 'HS256/384/512 shared secret for config API tokens.', {
      sensitive: true,
      nullable: true,
    }),
    publicKey: key('JWT_PUBLIC_KEY', 'optional-string', null, 'PEM public key for RS*/ES*/PS* tokens.', {
      sensitive: true,
      nullable: true,
    }),
    algorithms: key(
      'JWT_ALGORITHMS',
      'jwt-algorithms',
      'HS256',
      'Accepted JWT algorithms (comma list; none is never accepted).',
    ),
    issuer: key('JWT_ISSUER', 'optional-string', null, 'Required iss claim, when set.', { nullable: true }),
    audience: key('JWT_AUDIENCE', 'optional-string', null, 'Required aud claim, when set.', { nullable: true }),
    tenantClaim: key('JWT_TENANT_CLAIM', 'non-empty', 'tenantId', 'Claim that carries the tenant id.'),
    adminClaim: key('JWT_ADMIN_CLAIM', 'non-empty', 'admin', 'Boolean claim that allows site-wide subscriptions.'),
  },
  inbound: {
    exchange: key('INBOUND_EXCHANGE', 'non-empty', 'events-to-enrich', 'Topic exchange for inbound webhooks.'),
    maxBody: key('INBOUND_MAX_BODY', 'body-size', '1mb', 'Largest inbound body (at most 8mb).'),
    confirmTimeoutMs: key(
      'INBOUND_CONFIRM_TIMEOUT_MS',
      'duration',
      5000,
      "How long to wait for the broker's publish confirm.",
    ),
  },
  dispatch: {
    bindings: key(
      'DISPATCH_BINDINGS',
      'bindings',
      `${INBOUND_EXCHANGE_PLACEHOLDER}:event.#`,
      'exchange:bindingKey pairs the dispatcher consumes (`<INBOUND_EXCHANGE>` stands for its value); `<DISPATCH_QUEUE_PREFIX>.events` is always bound.',
    ),
    prefetch: key('DISPATCH_PREFETCH', 'positive-int', 64, 'Unacknowledged messages per dispatcher.'),
    queuePrefix: key(
      'DISPATCH_QUEUE_PREFIX',
      'name-prefix',
      'hookbus',
      "Prefix of hookbus's own queues and exchanges (`<prefix>.dispatch`, `.deliveries`, `.retry.<ms>`, `.dead`, `.control`, and `.events`, the exchange of POST /api/events); replicas of one deployment share it, another deployment on the broker is refused it.",
    ),
  },
  delivery: {
    timeoutMs: key(
      'DELIVERY_TIMEOUT_MS',
      'duration',
      10000,
      'Per-attempt timeout (a subscription may set a lower one).',
    ),
    maxInFlightPerWebhook: key(
      'DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK',
      'positive-int',
      8,
      'Concurrent attempts per subscription; the rest wait on the broker (or briefly in memory while the endpoint answers 2xx within 1 s and half the prefetch is free).',
    ),
    retrySchedule: key(
      'DELIVERY_RETRY_SCHEDULE',
      'duration-list',
      '5s,30s,2m,10m,30m,1h,3h,6h',
      'Waits between attempts; attempts = schedule length + 1.',
    ),
    allowPrivateTargets: key(
      'DELIVERY_ALLOW_PRIVATE_TARGETS',
      'boolean',
      false,
      'Allow loopback/private/link-local target addresses.',
    ),
  },
  deliveryLog: {
    limit: key('DELIVERY_LOG_LIMIT', 'positive-int', 100, 'Deliveries kept per webhook.'),
    maxAge: key('DELIVERY_LOG_MAX_AGE', 'age', '30d', 'Deliveries older than this are purged.'),
    cleanupInterval: key('DELIVERY_CLEANUP_INTERVAL', 'interval', '1h', 'How often the purge runs.'),
  },
  logLevel: key('LOG_LEVEL', 'log-level', 'info', 'pino log level.'),
};

export interface SchemaKey extends Key {
  path: string;
}

/** Every key of the schema, flattened to its dotted path, in schema order. */
export function schemaKeys(): SchemaKey[] {
  const keys: SchemaKey[] = [];
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${name}` : name;
      if (value && typeof value === 'object' && 'env' in value) keys.push({ ...(value as Key), path });
      else walk(value as Record<string, unknown>, path);
    }
  };
  walk(schema, '');
  return keys;
}

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, effectiveConfig, loadConfig } from '../../src/config/index.js';
import { parseDuration } from '../../src/config/formats.js';
import { PARSERS, schemaKeys } from '../../src/config/schema.js';
import { normalizeTables, README_PATH, replaceConfigTable } from '../../scripts/config-table.js';

const base = { NODE_ENV: 'test' };
const errorOf = (env: Record<string, string>) => {
  try {
    loadConfig({ ...base, ...env });
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the configuration to be refused');
};

describe('configuration', () => {
  it('When nothing is set, then every key has the default of SPEC §2', () => {
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 's' });
    expect(config).toMatchObject({
      env: 'production',
      roles: ['api', 'ingest', 'dispatcher'],
      http: { port: 3000, host: '0.0.0.0' },
      mongodb: { uri: 'mongodb://127.0.0.1:27017/hookbus' },
      amqp: { url: 'amqp://guest:guest@127.0.0.1:5672' },
      publicBaseUrl: 'http://localhost:3000',
      origServerHosts: [],
      jwt: {
        secret: 's',
        publicKey: null,
        algorithms: ['HS256'],
        issuer: null,
        audience: null,
        tenantClaim: 'tenantId',
        adminClaim: 'admin',
      },
      inbound: { exchange: 'events-to-enrich', maxBody: 1024 * 1024, confirmTimeoutMs: 5000 },
      dispatch: {
        bindings: [{ exchange: 'events-to-enrich', bindingKey: 'event.#' }],
        prefetch: 64,
      },
      delivery: {
        timeoutMs: 10_000,
        maxInFlightPerWebhook: 8,
        retrySchedule: [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000],
        allowPrivateTargets: false,
      },
      deliveryLog: { limit: 100, maxAge: 30 * 86_400_000, cleanupInterval: 3_600_000 },
      logLevel: 'info',
    });
  });

  it('When every SPEC §2 variable is set, then each one reaches its key', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      HOOKBUS_ROLES: 'ingest,dispatcher',
      PORT: '8080',
      HOST: '127.0.0.1',
      MONGODB_URI: 'mongodb://db:27017/x',
      AMQP_URL: 'amqps://u:p@mq:5671/vh',
      PUBLIC_BASE_URL: 'https://hooks.example.com',
      ORIG_SERVER_HOSTS: 'example.com, Example.org',
      JWT_ALGORITHMS: 'HS512,HS256',
      JWT_ISSUER: 'iss',
      JWT_AUDIENCE: 'aud',
      JWT_TENANT_CLAIM: 'tid',
      JWT_ADMIN_CLAIM: 'root',
      INBOUND_EXCHANGE: 'in',
      INBOUND_MAX_BODY: '512kb',
      INBOUND_CONFIRM_TIMEOUT_MS: '2s',
      DISPATCH_BINDINGS: 'a:event.#,b:x.*.y',
      DISPATCH_PREFETCH: '10',
      DELIVERY_TIMEOUT_MS: '1500',
      DELIVERY_MAX_IN_FLIGHT_PER_WEBHOOK: '3',
      DELIVERY_RETRY_SCHEDULE: '100ms, 1s',
      DELIVERY_ALLOW_PRIVATE_TARGETS: 'true',
      DELIVERY_LOG_LIMIT: '5',
      DELIVERY_LOG_MAX_AGE: '2d',
      DELIVERY_CLEANUP_INTERVAL: '5m',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      roles: ['ingest', 'dispatcher'],
      http: { port: 8080, host: '127.0.0.1' },
      mongodb: { uri: 'mongodb://db:27017/x' },
      amqp: { url: 'amqps://u:p@mq:5671/vh' },
      publicBaseUrl: 'https://hooks.example.com',
      origServerHosts: ['example.com', 'example.org'],
      jwt: { algorithms: ['HS512', 'HS256'], issuer: 'iss', audience: 'aud', tenantClaim: 'tid', adminClaim: 'root' },
      inbound: { exchange: 'in', maxBody: 512 * 1024, confirmTimeoutMs: 2000 },
      dispatch: {
        bindings: [
          { exchange: 'a', bindingKey: 'event.#' },
          { exchange: 'b', bindingKey: 'x.*.y' },
        ],
        prefetch: 10,
      },
      delivery: { timeoutMs: 1500, maxInFlightPerWebhook: 3, retrySchedule: [100, 1000], allowPrivateTargets: true },
      deliveryLog: { limit: 5, maxAge: 2 * 86_400_000, cleanupInterval: 300_000 },
      logLevel: 'debug',
    });
  });

  it('When the schema is read, then every key has a doc, a format, a default and an env var', () => {
    const keys = schemaKeys();
    expect(keys.map((k) => k.env)).toEqual(expect.arrayContaining(['NODE_ENV', 'PORT', 'DELIVERY_CLEANUP_INTERVAL']));
    // SPEC §2's 28 keys, and DISPATCH_QUEUE_PREFIX (so tests and side-by-side installs keep apart).
    expect(keys).toHaveLength(29);
    for (const key of keys) {
      expect(key.doc.length, key.env).toBeGreaterThan(5);
      // Every default is valid under its own format.
      expect(() => PARSERS[key.format](key.default), key.env).not.toThrow();
    }
  });

  it.each([
    ['300ms', 300],
    ['5s', 5000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['30d', 2_592_000_000],
    ['250', 250],
    [250, 250],
  ])('When a duration is %s, then it is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['soon', '5 parsecs', '-5s', '1.5', '', '5s5'])('When a duration is "%s", then it is refused', (text) => {
    expect(() => parseDuration(text)).toThrow(/duration/);
  });

  it.each([
    [{ PORT: 'abc' }, /^invalid configuration: PORT: must be a port number.*"abc"$/],
    [{ PORT: '3000abc' }, /PORT: must be a port number/],
    [{ PORT: '70000' }, /PORT: must be a port number/],
    [{ HOOKBUS_ROLES: 'foo' }, /HOOKBUS_ROLES: unknown role "foo"/],
    [{ HOOKBUS_ROLES: ',' }, /HOOKBUS_ROLES: must name at least one/],
    [{ DELIVERY_LOG_MAX_AGE: 'soon' }, /DELIVERY_LOG_MAX_AGE: must be a duration/],
    [{ DELIVERY_RETRY_SCHEDULE: '5s,later' }, /DELIVERY_RETRY_SCHEDULE: must be a duration/],
    [{ DELIVERY_ALLOW_PRIVATE_TARGETS: 'maybe' }, /DELIVERY_ALLOW_PRIVATE_TARGETS: must be true or false/],
    [{ DISPATCH_PREFETCH: '0' }, /DISPATCH_PREFETCH: must be a whole number/],
    [{ DISPATCH_QUEUE_PREFIX: 'has space' }, /DISPATCH_QUEUE_PREFIX: must be dot-separated words/],
    [{ DISPATCH_QUEUE_PREFIX: 'a..b' }, /DISPATCH_QUEUE_PREFIX: must be dot-separated words/],
    [{ DISPATCH_BINDINGS: 'no-colon' }, /DISPATCH_BINDINGS: "no-colon" is not an exchange:bindingKey pair/],
    [{ INBOUND_MAX_BODY: 'huge' }, /INBOUND_MAX_BODY: must be a size/],
    [{ JWT_ALGORITHMS: 'none' }, /JWT_ALGORITHMS: "none" is not accepted/],
    [{ AMQP_URL: 'http://x' }, /AMQP_URL: must be a amqp or amqps URL/],
    [{ MONGODB_URI: 'nope' }, /MONGODB_URI: must be a mongodb/],
    [{ PUBLIC_BASE_URL: 'ftp://x' }, /PUBLIC_BASE_URL: must be a http or https URL/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL: must be one of/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV: must be development, test or production/],
    [{ ORIG_SERVER_HOSTS: 'a b' }, /ORIG_SERVER_HOSTS: "a b" is not a host name/],
    [{ INBOUND_CONFIRM_TIMEOUT_MS: '0' }, /INBOUND_CONFIRM_TIMEOUT_MS: must be from 1ms to 2147483647ms/],
    [{ DELIVERY_TIMEOUT_MS: '100y' }, /DELIVERY_TIMEOUT_MS: must be from 1ms to 2147483647ms/],
    [{ DELIVERY_CLEANUP_INTERVAL: '10ms' }, /DELIVERY_CLEANUP_INTERVAL: must be from 100ms/],
    [{ DELIVERY_RETRY_SCHEDULE: '5s,30d' }, /DELIVERY_RETRY_SCHEDULE: every wait must be from 1ms/],
    [{ MONGODB_URI: 'mongodb://' }, /MONGODB_URI: must be a mongodb:\/\/ or mongodb\+srv:\/\/ connection string/],
  ])('When %o, then start-up is refused with one line naming the key', (env, message) => {
    const error = errorOf(env);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
  });

  it.each([
    'mongodb://db1:27017,db2:27017,db3:27017/hookbus?replicaSet=rs0',
    'mongodb+srv://user:pass@cluster0.example.net/hookbus?retryWrites=true',
    'mongodb://127.0.0.1:27017',
  ])('When MONGODB_URI is %s, then it is accepted', (uri) => {
    expect(loadConfig({ ...base, MONGODB_URI: uri }).mongodb.uri).toBe(uri);
  });

  it('When DELIVERY_LOG_MAX_AGE is a year, then it is accepted: it is an age, not a timer', () => {
    expect(loadConfig({ ...base, DELIVERY_LOG_MAX_AGE: '1y' }).deliveryLog.maxAge).toBe(31_557_600_000);
  });

  it('When the configuration in effect is shown, then passwords in connection strings and secrets are masked', () => {
    const shown = effectiveConfig(
      loadConfig({ ...base, MONGODB_URI: 'mongodb://app:s3cret@db1:27017,db2:27017/hookbus?replicaSet=rs0' }),
    );
    expect(shown.MONGODB_URI).toBe('mongodb://app:***@db1:27017,db2:27017/hookbus?replicaSet=rs0');
    expect(JSON.stringify(shown)).not.toContain('s3cret');
    expect(shown.JWT_PUBLIC_KEY).toBeNull();
  });

  it('When INBOUND_EXCHANGE is changed, then the default DISPATCH_BINDINGS follows it; <INBOUND_EXCHANGE> works in a list', () => {
    expect(loadConfig({ ...base, INBOUND_EXCHANGE: 'y' }).dispatch.bindings).toEqual([
      { exchange: 'y', bindingKey: 'event.#' },
    ]);
    expect(
      loadConfig({ ...base, INBOUND_EXCHANGE: 'y', DISPATCH_BINDINGS: '<INBOUND_EXCHANGE>:event.a.#,other:x' }).dispatch
        .bindings,
    ).toEqual([
      { exchange: 'y', bindingKey: 'event.a.#' },
      { exchange: 'other', bindingKey: 'x' },
    ]);
  });

  it('When INBOUND_MAX_BODY is over 8mb, then start-up is refused: such a body would not fit an envelope', () => {
    expect(loadConfig({ ...base, INBOUND_MAX_BODY: '8mb' }).inbound.maxBody).toBe(8 * 1024 * 1024);
    expect(errorOf({ ...base, INBOUND_MAX_BODY: '9mb' }).message).toMatch(
      /INBOUND_MAX_BODY: must be at most 8388608 bytes/,
    );
  });

  it('When the roles include api and no JWT key is set, then start-up is refused naming JWT_SECRET', () => {
    const error = errorOf({ NODE_ENV: 'production' });
    expect(error.message).toMatch(/JWT_SECRET: a JWT key is required when HOOKBUS_ROLES includes api/);
  });

  it('When the roles leave out api, then no JWT key is needed', () => {
    expect(loadConfig({ NODE_ENV: 'production', HOOKBUS_ROLES: 'ingest,dispatcher' }).jwt.secret).toBeNull();
  });

  it('When RS256 is allowed without a public key, then JWT_PUBLIC_KEY is named', () => {
    expect(errorOf({ NODE_ENV: 'production', JWT_SECRET: 's', JWT_ALGORITHMS: 'HS256,RS256' }).message).toMatch(
      /JWT_PUBLIC_KEY: required by JWT_ALGORITHMS RS256/,
    );
  });

  it('When the public key is not PEM, then it is refused without echoing it', () => {
    const error = errorOf({ JWT_PUBLIC_KEY: 'secret-looking-garbage', JWT_ALGORITHMS: 'RS256' });
    expect(error.message).toMatch(/JWT_PUBLIC_KEY: is not a PEM public key/);
    expect(error.message).not.toContain('secret-looking-garbage');
  });

  it('When production runs with the development JWT secret, then start-up is refused', () => {
    const error = errorOf({
      NODE_ENV: 'production',
      JWT_SECRET: 'hookbus-development-secret-do-not-use-in-production',
    });
    expect(error.message).toMatch(/JWT_SECRET: the development secret may not be used in production/);
  });

  it('When a connection string with a password is invalid, then the password is not echoed', () => {
    const error = errorOf({ AMQP_URL: 'http://user:hunter2@x' });
    expect(error.message).toMatch(/AMQP_URL/);
    expect(error.message).not.toContain('hunter2');
  });
});

describe('the README configuration table', () => {
  it('When the README is read, then its table is exactly the one generated from the schema', () => {
    const readme = readFileSync(README_PATH, 'utf8');
    expect(normalizeTables(readme), 'run `npm run config:table -- --write`').toBe(
      normalizeTables(replaceConfigTable(readme)),
    );
  });
});

import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import convict from 'convict';
import type { Binding, JwtAlgorithm, Role } from './formats.js';
import { INBOUND_EXCHANGE_PLACEHOLDER, PARSERS, schema, schemaKeys } from './schema.js';

export type { Binding, JwtAlgorithm, Role } from './formats.js';

export interface Config {
  env: 'development' | 'test' | 'production';
  roles: Role[];
  http: { port: number; host: string };
  mongodb: { uri: string };
  amqp: { url: string };
  publicBaseUrl: string;
  origServerHosts: string[];
  jwt: {
    secret: string | null;
    publicKey: string | null;
    algorithms: JwtAlgorithm[];
    issuer: string | null;
    audience: string | null;
    tenantClaim: string;
    adminClaim: string;
  };
  inbound: { exchange: string; maxBody: number; confirmTimeoutMs: number };
  dispatch: { bindings: Binding[]; prefetch: number; queuePrefix: string };
  delivery: {
    timeoutMs: number;
    maxInFlightPerWebhook: number;
    retrySchedule: number[];
    allowPrivateTargets: boolean;
  };
  deliveryLog: { limit: number; maxAge: number; cleanupInterval: number };
  logLevel: string;
}

/** A configuration problem: its message is one line naming the key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Shipped in config/development.json so the quick start needs no setup; refused in production. */
export const DEVELOPMENT_JWT_SECRET = 'hookbus-development-secret-do-not-use-in-production';

export const CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts.at(-1)!] = value;
}

/**
 * Loads defaults, then config/<NODE_ENV>.json, then the environment; validates strictly.
 * Throws ConfigError with one line naming every bad key by its environment variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const store = convict(schema, { env, args: [] });
  const envName = String(store.get('env'));
  const file = `${CONFIG_DIR}${envName}.json`;
  const problems: string[] = [];
  try {
    if (existsSync(file)) store.loadFile(file);
  } catch (error) {
    throw new ConfigError(`config/${envName}.json: ${(error as Error).message}`);
  }

  const config: Record<string, unknown> = {};
  for (const key of schemaKeys()) {
    // The raw environment string, when set: convict's own coercion would read PORT=3000abc as 3000.
    const raw: unknown = env[key.env] ?? store.get(key.path as never);
    try {
      setPath(config, key.path, PARSERS[key.format](raw));
    } catch (error) {
      const shown = key.sensitive ? '' : `: value was ${JSON.stringify(raw)}`;
      problems.push(`${key.env}: ${(error as Error).message}${shown}`);
    }
  }
  if (problems.length === 0) {
    try {
      store.validate({ allowed: 'strict' });
    } catch (error) {
      problems.push(...(error as Error).message.split('\n'));
    }
  }
  if (problems.length === 0) problems.push(...crossCheck(config as unknown as Config));
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  return withInboundExchange(config as unknown as Config);
}

/** DISPATCH_BINDINGS follows INBOUND_EXCHANGE: its placeholder becomes that exchange's name. */
function withInboundExchange(config: Config): Config {
  const bindings = config.dispatch.bindings.map(({ exchange, bindingKey }) => ({
    exchange: exchange === INBOUND_EXCHANGE_PLACEHOLDER ? config.inbound.exchange : exchange,
    bindingKey,
  }));
  return { ...config, dispatch: { ...config.dispatch, bindings } };
}

/** A URL with the password in its user info masked; works on multi-host MongoDB strings too. */
const maskedUrl = (url: string) => url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');

/**
 * Every key's effective value by its environment variable, for the start-up log: secrets shown as
 * `[redacted]` (or null when unset), connection strings with their password masked.
 */
export function effectiveConfig(config: Config): Record<string, unknown> {
  const shown: Record<string, unknown> = {};
  for (const key of schemaKeys()) {
    const value = key.path.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], config);
    if (typeof value === 'string' && /-url$/.test(key.format)) shown[key.env] = maskedUrl(value);
    else if (key.sensitive && value !== null) shown[key.env] = '[redacted]';
    else shown[key.env] = value;
  }
  return shown;
}

/** Rules that span keys. */
function crossCheck(config: Config): string[] {
  const problems: string[] = [];
  const { jwt } = config;
  if (jwt.publicKey !== null) {
    try {
      createPublicKey(jwt.publicKey);
    } catch {
      problems.push('JWT_PUBLIC_KEY: is not a PEM public key');
    }
  }
  if (config.env === 'production' && jwt.secret === DEVELOPMENT_JWT_SECRET) {
    problems.push('JWT_SECRET: the development secret may not be used in production');
  }
  if (config.roles.includes('api')) {
    const hmac = jwt.algorithms.filter((a) => a.startsWith('HS'));
    const keyed = jwt.algorithms.filter((a) => !a.startsWith('HS'));
    if (jwt.secret === null && jwt.publicKey === null) {
      problems.push(
        'JWT_SECRET: a JWT key is required when HOOKBUS_ROLES includes api (set JWT_SECRET or JWT_PUBLIC_KEY)',
      );
    } else if (hmac.length > 0 && jwt.secret === null) {
      problems.push(`JWT_SECRET: required by JWT_ALGORITHMS ${hmac.join(',')}`);
    } else if (keyed.length > 0 && jwt.publicKey === null) {
      problems.push(`JWT_PUBLIC_KEY: required by JWT_ALGORITHMS ${keyed.join(',')}`);
    }
  }
  return problems;
}

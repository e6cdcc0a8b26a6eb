import { LRUCache } from 'lru-cache';
import type { ControlHandler, ControlMessage } from '../bus/control.js';
import { within } from '../health.js';
import type { HookModel, HookRecord } from './model.js';
import { findHookByToken } from './repository.js';

const MISSING = Symbol('missing');
const LOOKUP_TIMEOUT_MS = 1000;
type Entry = HookRecord | typeof MISSING;

/** MongoDB did not answer a lookup (as opposed to a lookup cut short by an invalidation). */
export class LookupFailed extends Error {
  override name = 'LookupFailed';
}

export interface HookCacheOptions {
  max?: number;
  /** How long a found hook is served from memory; changes clear it sooner, through the bus. */
  ttlMs?: number;
  /** How long "no such token" is remembered, so a flood of made-up tokens does not reach MongoDB. */
  missingTtlMs?: number;
}

/**
 * Inbound hook lookups from memory. Concurrent misses for one token share a single query; an
 * entry is dropped when any process announces a change to its hook, and everything is dropped
 * after a reconnect to the bus (announcements may have been missed meanwhile).
 */
export class HookCache implements ControlHandler {
  private readonly cache: LRUCache<string, Entry>;

  constructor(hooks: HookModel, options: HookCacheOptions = {}) {
    const missingTtl = options.missingTtlMs ?? 5_000;
    this.cache = new LRUCache<string, Entry>({
      max: options.max ?? 50_000,
      // Announcements clear entries at once; the TTL bounds staleness should one be missed.
      ttl: options.ttlMs ?? 10_000,
      fetchMethod: async (token, _stale, { options: fetchOptions }) => {
        // Bounded: with MongoDB unreachable the driver would wait out its server selection.
        const found = await within(
          findHookByToken(hooks, token).then(
            (hook) => ({ hook }),
            (error: Error) => ({ error: error.message }),
          ),
          LOOKUP_TIMEOUT_MS,
          { error: `no answer from MongoDB within ${LOOKUP_TIMEOUT_MS} ms` },
        );
        if ('error' in found) throw new LookupFailed(found.error);
        const { hook } = found;
        if (hook) return hook;
        fetchOptions.ttl = missingTtl;
        return MISSING;
      },
    });
  }

  /**
   * The hook with that token, or undefined. An invalidation that lands while a lookup is in
   * flight aborts it (its answer may predate the change), and the lookup is made again.
   * Rejects with LookupFailed when MongoDB does not answer.
   */
  async get(token: string): Promise<HookRecord | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const entry = await this.cache.fetch(token);
        return entry === MISSING ? undefined : entry;
      } catch (error) {
        if (error instanceof LookupFailed || attempt >= 5) throw error;
      }
    }
  }

  onMessage(message: ControlMessage): void {
    if (message.kind === 'hook.changed') this.cache.delete(message.token);
  }

  onResync(): void {
    this.cache.clear();
  }
}

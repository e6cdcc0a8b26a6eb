import mongoose from 'mongoose';
import type { ControlHandler, ControlMessage } from '../bus/control.js';
import type { Logger } from '../logger.js';
import type { SubscriptionModel, SubscriptionRecord } from '../webhooks/model.js';
import { compileResourceKeyPattern, type ResourceKeyPattern } from '../webhooks/resource-key-pattern.js';
import { Stopped, untilDone } from '../work.js';

/** What matching needs to know of an envelope. */
export interface MatchInput {
  tenantId: string;
  event: string;
  resourceKey: string | null;
}

/** A subscription with its event patterns and resource key filter compiled once. */
export class CompiledSubscription {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly all: boolean;
  private readonly resourceKey: Pick<ResourceKeyPattern, 'matches'> | null;
  /** Why a stored resource key pattern matches nothing (invalid, or stored before today's limits). */
  readonly patternRefused: string | undefined;

  /** `previous`: the same subscription before a reload, whose compiled pattern is reused if unchanged. */
  constructor(
    readonly record: SubscriptionRecord,
    previous?: CompiledSubscription,
  ) {
    for (const pattern of record.events) {
      if (pattern.endsWith('*')) this.prefixes.push(pattern.slice(0, -1));
      else this.exact.add(pattern);
    }
    this.all = this.prefixes.includes('');
    const source = record.filter?.resourceKeyPattern;
    if (source === undefined) {
      this.resourceKey = null;
    } else if (previous && previous.record.filter?.resourceKeyPattern === source) {
      this.resourceKey = previous.resourceKey;
      this.patternRefused = previous.patternRefused;
    } else {
      try {
        this.resourceKey = compileResourceKeyPattern(source);
      } catch (error) {
        // The API refuses such patterns; one stored before (or some other way) matches nothing
        // rather than everything, and never runs unbounded.
        this.resourceKey = MATCHES_NOTHING;
        this.patternRefused = (error as Error).message;
      }
    }
  }

  /** Event exact or by a trailing `*` glob (`github.*` takes `github.a.b`); resourceKey matched whole. */
  matches(input: MatchInput): boolean {
    if (this.record.scope === 'tenant' && this.record.tenantId !== input.tenantId) return false;
    const eventMatches =
      this.all || this.exact.has(input.event) || this.prefixes.some((prefix) => input.event.startsWith(prefix));
    if (!eventMatches) return false;
    if (this.resourceKey === null) return true;
    return input.resourceKey !== null && this.resourceKey.matches(input.resourceKey);
  }
}

const MATCHES_NOTHING = { matches: () => false };

const SITE = Symbol('site');

/**
 * Every subscription, held in memory so dispatch never queries MongoDB per message. A change
 * announced on `<prefix>.control` reloads that one subscription; a reconnect to the bus (when
 * announcements may have been missed) reloads them all.
 */
export class SubscriptionCache implements ControlHandler {
  private byId = new Map<string, CompiledSubscription>();
  /** Enabled subscriptions by the tenant whose events they take (site scope under SITE); rebuilt after changes. */
  private index: Map<string | typeof SITE, CompiledSubscription[]> | undefined;
  private loaded: Promise<void> | undefined;
  private generation = 0;
  private loading = false;
  /** Changes announced while the whole set was being read: re-read once it is in. */
  private readonly changedDuringLoad = new Set<string>();
  private stopped = false;
  /** The latest reload started per id: an older read that lands last must not win. */
  private readonly reloads = new Map<string, Promise<void>>();
  private readonly refresh: NodeJS.Timeout;

  constructor(
    private readonly subscriptions: SubscriptionModel,
    private readonly logger: Logger,
    refreshMs = 60_000,
  ) {
    // Announcements are best effort: a full reload now and then bounds how long a missed one counts.
    this.refresh = setInterval(() => {
      if (this.loaded && !this.loading) this.loaded = this.startLoad();
    }, refreshMs);
    this.refresh.unref();
  }

  /** Resolves once the whole set has been read (retrying while MongoDB is unreachable). */
  ready(): Promise<void> {
    this.loaded ??= this.startLoad();
    return this.loaded;
  }

  private startLoad(): Promise<void> {
    const load = this.loadAll();
    // Rejects only after stop(); callers that await it see that, nobody else must.
    load.catch(() => undefined);
    return load;
  }

  /**
   * The subscription with that id, or undefined once MongoDB confirms it is gone: another process
   * may have fanned out to a subscription whose announcement has not reached this one yet.
   */
  async get(id: string): Promise<CompiledSubscription | undefined> {
    await this.ready();
    if (!this.byId.has(id)) await this.reloadOne(id);
    return this.byId.get(id);
  }

  /** Enabled subscriptions that take this event. */
  match(input: MatchInput): CompiledSubscription[] {
    return this.candidates(input).filter((subscription) => subscription.matches(input));
  }

  /** Enabled subscriptions that may take this tenant's events (its own and site scope), unmatched yet. */
  candidates(input: Pick<MatchInput, 'tenantId'>): CompiledSubscription[] {
    this.index ??= this.buildIndex();
    return [...(this.index.get(input.tenantId) ?? []), ...(this.index.get(SITE) ?? [])];
  }

  private buildIndex(): Map<string | typeof SITE, CompiledSubscription[]> {
    const index = new Map<string | typeof SITE, CompiledSubscription[]>();
    for (const subscription of this.byId.values()) {
      const { enabled, scope, tenantId } = subscription.record;
      if (!enabled) continue;
      const key = scope === 'site' ? SITE : tenantId;
      const list = index.get(key);
      if (list) list.push(subscription);
      else index.set(key, [subscription]);
    }
    return index;
  }

  onMessage(message: ControlMessage): void {
    if (message.kind !== 'subscription.changed') return;
    if (this.loading) this.changedDuringLoad.add(message.id);
    this.reloadOne(message.id).catch(() => undefined);
  }

  onResync(): void {
    // Only once a first load has been asked for: the first ready() does it anyway.
    if (this.loaded) this.loaded = this.startLoad();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.refresh);
  }

  private async loadAll(): Promise<void> {
    const generation = ++this.generation;
    this.loading = true;
    await this.connected();
    // Throws Stopped after stop(): an empty set must never look loaded, or envelopes would be
    // acked as having no subscribers.
    const records = await untilDone(
      () => this.subscriptions.find({}).lean<SubscriptionRecord[]>(),
      () => this.stopped,
      (error, retryInMs) => this.logger.warn({ err: error.message, retryInMs }, 'could not load subscriptions'),
    );
    if (generation !== this.generation) return;
    this.byId = new Map(records.map((record) => [record._id, this.compile(record)]));
    this.index = undefined;
    this.loading = false;
    const changed = [...this.changedDuringLoad];
    this.changedDuringLoad.clear();
    await Promise.all(changed.map((id) => this.reloadOne(id)));
  }

  /** Reuses the compiled pattern while it is unchanged, so a refused one is logged once, not per reload. */
  private compile(record: SubscriptionRecord): CompiledSubscription {
    const previous = this.byId.get(record._id);
    const compiled = new CompiledSubscription(record, previous);
    const pattern = record.filter?.resourceKeyPattern;
    if (compiled.patternRefused !== undefined && pattern !== previous?.record.filter?.resourceKeyPattern) {
      this.logger.warn(
        { id: record._id, tenantId: record.tenantId, reason: compiled.patternRefused },
        'resource key pattern refused: the subscription takes no events until its pattern is changed',
      );
    }
    return compiled;
  }

  /** Before the first connection is open a query fails at once: wait for it quietly. */
  private async connected(): Promise<void> {
    while (this.subscriptions.db.readyState !== mongoose.ConnectionStates.connected) {
      if (this.stopped) throw new Stopped('stopped before the database connected');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private reloadOne(id: string): Promise<void> {
    const reload: Promise<void> = this.read(id, () => this.reloads.get(id) === reload).finally(() => {
      if (this.reloads.get(id) === reload) this.reloads.delete(id);
    });
    this.reloads.set(id, reload);
    return reload;
  }

  /** Reads one subscription; a read overtaken by a newer one waits for that one instead. */
  private async read(id: string, latest: () => boolean): Promise<void> {
    // Throws Stopped after stop(): "not found" must never be concluded from a read that did not happen.
    const record = await untilDone(
      () => this.subscriptions.findById(id).lean<SubscriptionRecord>(),
      () => this.stopped,
      (error, retryInMs) => this.logger.warn({ err: error.message, id, retryInMs }, 'could not reload a subscription'),
    );
    if (!latest()) return this.reloads.get(id);
    if (record) this.byId.set(id, this.compile(record));
    else this.byId.delete(id);
    this.index = undefined;
  }
}

import { expect } from 'vitest';
import { callApi, type ListBody } from './api.js';
import { EVENT_FIELDS, HOOK_FIELDS, INBOUND_FIELDS, REPLAY_FIELDS, subscriptionFields } from './hostile-fields.js';
import type { FieldArbitraries } from './hostile-json.js';
import { createHook, type IssuedHook } from './hooks.js';
import { eventually } from './wait.js';

/** Every endpoint of the SPEC, and the fixtures that real ids in their paths point at. */

/** Owns the fixtures. */
export const FIX = 'hostile-fix';
/** Creates whatever valid bodies create, away from the fixtures. */
export const WRITER = 'hostile-write';
/** Emits events through POST /api/events: no subscription of its own, so no deliveries follow. */
export const EMITTER = 'hostile-emit';
export const KiB = 1024;
export const MiB = 1024 * KiB;

export type Param = 'token' | 'apiToken' | 'webhookId' | 'deliveryId';

export interface Endpoint {
  method: string;
  /** The SPEC's path with `:params`. */
  route: string;
  auth: boolean;
  /** Known body fields, the body limit and who sends, for endpoints that read a JSON body. */
  body?: { fields: FieldArbitraries; limit: number; tenant: string };
  /** Known query parameters. */
  query?: string[];
}

export function endpoints(receiverUrl: () => string): Endpoint[] {
  const subscription = subscriptionFields(receiverUrl);
  return [
    { method: 'POST', route: '/wh/config', auth: true, body: { fields: HOOK_FIELDS, limit: 64 * KiB, tenant: WRITER } },
    { method: 'GET', route: '/wh/config', auth: true },
    { method: 'GET', route: '/wh/config/:token', auth: true },
    { method: 'HEAD', route: '/wh/config/:token', auth: true },
    { method: 'DELETE', route: '/wh/config/:token', auth: true },
    {
      method: 'POST',
      route: '/wh/:apiToken/:token',
      auth: false,
      body: { fields: INBOUND_FIELDS, limit: MiB, tenant: FIX },
    },
    {
      method: 'POST',
      route: '/api/webhooks',
      auth: true,
      body: { fields: subscription, limit: 64 * KiB, tenant: WRITER },
    },
    { method: 'GET', route: '/api/webhooks', auth: true, query: ['scope', 'event', 'limit', 'cursor'] },
    { method: 'GET', route: '/api/webhooks/:webhookId', auth: true },
    {
      method: 'PATCH',
      route: '/api/webhooks/:webhookId',
      auth: true,
      body: { fields: subscription, limit: 64 * KiB, tenant: FIX },
    },
    { method: 'DELETE', route: '/api/webhooks/:webhookId', auth: true },
    { method: 'GET', route: '/api/webhooks/:webhookId/secret', auth: true },
    { method: 'POST', route: '/api/webhooks/:webhookId/secret/rotate', auth: true },
    { method: 'POST', route: '/api/webhooks/:webhookId/test', auth: true },
    { method: 'GET', route: '/api/webhooks/:webhookId/deliveries', auth: true, query: ['status', 'limit', 'cursor'] },
    { method: 'DELETE', route: '/api/webhooks/:webhookId/deliveries', auth: true, query: ['status', 'before'] },
    {
      method: 'POST',
      route: '/api/webhooks/:webhookId/replay',
      auth: true,
      body: { fields: REPLAY_FIELDS, limit: 16 * KiB, tenant: FIX },
    },
    { method: 'GET', route: '/api/deliveries/:deliveryId', auth: true },
    { method: 'POST', route: '/api/deliveries/:deliveryId/retry', auth: true },
    { method: 'DELETE', route: '/api/deliveries/:deliveryId', auth: true },
    { method: 'POST', route: '/api/events', auth: true, body: { fields: EVENT_FIELDS, limit: MiB, tenant: EMITTER } },
    { method: 'GET', route: '/healthz', auth: false },
    { method: 'GET', route: '/readyz', auth: false },
    { method: 'GET', route: '/metrics', auth: false },
  ];
}

export const endpointName = (e: Endpoint) => `${e.method} ${e.route}`;
export const paramsOf = (route: string) => [...route.matchAll(/:(\w+)/g)].map((m) => m[1] as Param);
export const fillRoute = (route: string, values: Partial<Record<Param, string>>) =>
  route.replace(/:(\w+)/g, (_, p: Param) => values[p] ?? '');

export interface Fixtures {
  /** Plain (with tsField), event from a header, event from a body field, GitHub-signed. */
  hooks: IssuedHook[];
  /** Real ids per path parameter, by endpoint name: destructive routes get victims of their own. */
  real: Record<string, Record<Param, string[]>>;
}

/** Hooks, subscriptions and two recorded deliveries of FIX, so that real ids reach every handler. */
export async function createFixtures(
  app: { url: string },
  receiverUrl: string,
  all: readonly Endpoint[],
): Promise<Fixtures> {
  const hooks = [
    await createHook(app, FIX, { datasource: 'github', event: 'push', tsField: 'commits[0].timestamp' }),
    await createHook(app, FIX, { datasource: 'github', event: '*', eventFrom: { header: 'x-github-event' } }),
    await createHook(app, FIX, { datasource: 'stripe', event: '*', eventFrom: { field: 'type' } }),
    await createHook(app, FIX, {
      datasource: 'signed',
      event: 'push',
      verify: { scheme: 'github', secret: 'hostile-secret' },
    }),
  ];
  const victimHook = await createHook(app, FIX, { datasource: 'victim', event: 'deleted' });
  const subscribe = async (events: string[]) => {
    const res = await callApi<{ id: string }>(app, FIX, 'POST', '/api/webhooks', {
      body: { url: receiverUrl, events },
    });
    expect(res.status).toBe(201);
    return res.body.id;
  };
  const kept = await subscribe(['hostile.fixture']);
  const patched = await subscribe(['hostile.patched']);
  const deleted = await subscribe(['hostile.deleted']);
  for (let i = 0; i < 2; i++) {
    const res = await callApi(app, FIX, 'POST', '/api/events', { body: { event: 'hostile.fixture', data: { i } } });
    expect(res.status).toBe(202);
  }
  const deliveries = await eventually(
    async () => {
      const res = await callApi<ListBody>(app, FIX, 'GET', `/api/webhooks/${kept}/deliveries`);
      const settled = res.body.items.length === 2 && res.body.items.every((d) => d.status === 'success');
      return settled ? res.body.items : undefined;
    },
    30_000,
    'two fixture deliveries',
  );
  const [keptDelivery, deletedDelivery] = deliveries.map((d) => d.id) as [string, string];

  const ids: Record<Param, string[]> = {
    token: hooks.map((h) => h.token),
    apiToken: hooks.map((h) => h.apiToken),
    webhookId: [kept, patched],
    deliveryId: [keptDelivery],
  };
  const real = Object.fromEntries(all.map((e) => [endpointName(e), ids]));
  real['DELETE /wh/config/:token'] = { ...ids, token: [victimHook.token] };
  real['PATCH /api/webhooks/:webhookId'] = { ...ids, webhookId: [patched] };
  real['DELETE /api/webhooks/:webhookId'] = { ...ids, webhookId: [deleted] };
  real['DELETE /api/webhooks/:webhookId/deliveries'] = { ...ids, webhookId: [patched] };
  real['DELETE /api/deliveries/:deliveryId'] = { ...ids, deliveryId: [deletedDelivery] };
  return { hooks, real };
}

import { expect } from 'vitest';
import { bearer } from './jwt.js';

export interface IssuedHook {
  token: string;
  apiToken: string;
  tenantId: string;
  hookUrl: string;
  [field: string]: unknown;
}

/** Creates (or updates) a hook through the config API of `app`, as a tenant would. */
export async function createHook(app: { url: string }, tenant: string, body: Record<string, unknown>) {
  const res = await fetch(`${app.url}/wh/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(tenant) },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as IssuedHook;
}

/** The hook's inbound URL on `app` (hookUrl is built on PUBLIC_BASE_URL, not the test's port). */
export const inboundUrl = (app: { url: string }, hook: IssuedHook) => `${app.url}/wh/${hook.apiToken}/${hook.token}`;

export async function postInbound(
  app: { url: string },
  hook: IssuedHook,
  body: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'application/json' },
) {
  return fetch(inboundUrl(app, hook), { method: 'POST', headers, body });
}

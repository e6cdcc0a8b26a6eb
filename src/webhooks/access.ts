import type { Caller } from '../http/auth.js';
import { notFound } from '../http/problem.js';
import type { SubscriptionModel, SubscriptionRecord } from './model.js';

/** A subscription id: `wh_` + a ULID. */
export const SUBSCRIPTION_ID = /^wh_[0-9A-HJKMNP-TV-Z]{26}$/;

/** The caller's own subscriptions; site scope only for admins. Anything else is "not found". */
export function visibleTo(caller: Caller): Record<string, unknown> {
  return caller.admin ? { tenantId: caller.tenantId } : { tenantId: caller.tenantId, scope: 'tenant' };
}

/** The subscription `id` if the caller may see it, else a 404 (never a 403: no existence oracle). */
export async function findVisible(
  subscriptions: SubscriptionModel,
  caller: Caller,
  id: unknown,
): Promise<SubscriptionRecord> {
  const sub =
    typeof id === 'string' && SUBSCRIPTION_ID.test(id)
      ? await subscriptions.findOne({ _id: id, ...visibleTo(caller) }).lean<SubscriptionRecord>()
      : null;
  if (!sub) throw notFound('No subscription with that id.');
  return sub;
}

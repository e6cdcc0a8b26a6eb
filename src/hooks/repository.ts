import { randomBytes, randomUUID } from 'node:crypto';
import type { EventFrom, HookModel, HookRecord, VerifySettings } from './model.js';

/** What a create-or-update may change; an absent field leaves the stored value alone. */
export interface HookChanges {
  tsField?: string | null;
  eventFrom?: EventFrom | null;
  verify?: VerifySettings | null;
}

const TOKEN = /^[0-9a-f]{40}$/;
const isDuplicateKey = (error: unknown) => (error as { code?: unknown }).code === 11000;

/**
 * Creates the tenant's hook for datasource+event, or updates the existing one (same tokens).
 * Two concurrent creates meet at the unique index; the loser updates the winner's hook.
 */
export async function saveHook(
  hooks: HookModel,
  key: { tenantId: string; datasource: string; event: string },
  changes: HookChanges,
): Promise<{ hook: HookRecord; created: boolean }> {
  const set = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await hooks.findOne(key, { _id: 1 }).lean();
    if (existing) {
      const updated = await hooks
        .findOneAndUpdate({ _id: existing._id, tenantId: key.tenantId }, { $set: set }, { new: true })
        .lean();
      if (updated) return { hook: updated, created: false };
      continue; // deleted in between: create it afresh
    }
    try {
      const created = await hooks.create({
        _id: randomBytes(20).toString('hex'),
        apiToken: randomUUID(),
        ...key,
        tsField: changes.tsField ?? null,
        eventFrom: changes.eventFrom ?? null,
        verify: changes.verify ?? null,
      });
      return { hook: created.toObject(), created: true };
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
  }
  throw new Error('the hook kept changing while it was being saved');
}

export async function listHooks(hooks: HookModel, tenantId: string): Promise<HookRecord[]> {
  return hooks.find({ tenantId }).sort({ createdAt: 1, _id: 1 }).lean();
}

/** The tenant's hook with that token; another tenant's hook is as absent as a missing one. */
export async function findTenantHook(hooks: HookModel, tenantId: string, token: string): Promise<HookRecord | null> {
  if (!TOKEN.test(token)) return null;
  return hooks.findOne({ _id: token, tenantId }).lean();
}

export async function deleteTenantHook(hooks: HookModel, tenantId: string, token: string): Promise<boolean> {
  if (!TOKEN.test(token)) return false;
  return (await hooks.deleteOne({ _id: token, tenantId })).deletedCount === 1;
}

/** The inbound lookup: by `_id` alone, the one filter every MongoDB-wire server answers from an index. */
export async function findHookByToken(hooks: HookModel, token: string): Promise<HookRecord | null> {
  if (!TOKEN.test(token)) return null;
  return hooks.findById(token).lean();
}

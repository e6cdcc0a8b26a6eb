import express, { Router, type Request } from 'express';
import { monotonicFactory } from 'ulid';
import type { Control } from '../bus/control.js';
import type { Config } from '../config/index.js';
import { callerOf, requireCaller } from '../http/auth.js';
import { findVisible, SUBSCRIPTION_ID, visibleTo } from './access.js';
import { HttpProblem, notFound, validationProblem, type FieldError } from '../http/problem.js';
import { parseOrThrow } from '../http/validation.js';
import type { SubscriptionModel, SubscriptionRecord } from './model.js';
import { newSigningSecret, rotated } from './secrets.js';
import { isSensitiveHeader, REDACTED } from './sensitive-headers.js';
import { assertPublicHost, PrivateTargetError } from './ssrf.js';
import { createInput, EVENT_PATTERN, isReservedHeader, updateInput } from './validation.js';

const ulid = monotonicFactory();

/** The API's view: never a signing secret, bearer token or password. */
/**
 * Headers as sent on update, where a masked value sent back as it was read (`[redacted]`) keeps
 * the stored one, so a read-modify-write does not overwrite a credential with the mask.
 */
function keptMasked(input: Record<string, string>, current: readonly { name: string; value: string }[]) {
  const errors: FieldError[] = [];
  const headers = Object.entries(input).map(([name, value]) => {
    if (value !== REDACTED || !isSensitiveHeader(name)) return { name, value };
    const stored = current.find((h) => h.name.toLowerCase() === name.toLowerCase());
    if (!stored) errors.push({ path: `headers.${name}`, message: 'is the mask of a value; send the value itself' });
    return { name, value: stored?.value ?? value };
  });
  if (errors.length > 0) throw validationProblem(errors);
  return headers;
}

export function subscriptionResponse(sub: SubscriptionRecord) {
  return {
    id: sub._id,
    name: sub.name,
    description: sub.description,
    url: sub.url,
    events: sub.events,
    scope: sub.scope,
    filter: sub.filter,
    // Credential-like values are masked: a list or read answer is no place to read a secret from.
    headers: Object.fromEntries(sub.headers.map((h) => [h.name, isSensitiveHeader(h.name) ? REDACTED : h.value])),
    auth:
      sub.auth === null
        ? null
        : 'bearer' in sub.auth
          ? { type: 'bearer' }
          : { type: 'basic', username: sub.auth.basic.username },
    sslVerification: sub.sslVerification,
    enabled: sub.enabled,
    payload: sub.payload,
    retry: sub.retry,
    createdAt: new Date(sub.createdAt).toISOString(),
    createdBy: sub.createdBy,
    updatedAt: new Date(sub.updatedAt).toISOString(),
    updatedBy: sub.updatedBy,
  };
}

const forbiddenSite = () =>
  new HttpProblem(403, 'Only tokens with the admin claim may use site scope.', { type: 'forbidden' });

export function subscriptionRoutes(config: Config, subscriptions: SubscriptionModel, control: Control): Router {
  const router = Router();
  // On each route rather than router.use(), so a 401 is counted under its route pattern.
  const auth = requireCaller(config.jwt);
  const json = express.json({ type: () => true, limit: '64kb' });
  const maxAttempts = config.delivery.retrySchedule.length + 1;

  const checkLimits = async (value: {
    url?: string | undefined;
    retry?: { maxAttempts?: number; timeoutMs?: number } | null | undefined;
  }) => {
    const errors: { path: string; message: string }[] = [];
    if (value.retry?.maxAttempts !== undefined && value.retry.maxAttempts > maxAttempts) {
      errors.push({ path: 'retry.maxAttempts', message: `may lower the attempts, at most ${maxAttempts}` });
    }
    if (value.retry?.timeoutMs !== undefined && value.retry.timeoutMs > config.delivery.timeoutMs) {
      errors.push({ path: 'retry.timeoutMs', message: `may lower the timeout, at most ${config.delivery.timeoutMs}` });
    }
    if (value.url !== undefined && errors.length === 0 && !config.delivery.allowPrivateTargets) {
      try {
        await assertPublicHost(new URL(value.url).hostname);
      } catch (error) {
        const message =
          error instanceof PrivateTargetError
            ? 'must not point at a private or internal address'
            : 'has a host that does not resolve';
        errors.push({ path: 'url', message });
      }
    }
    if (errors.length > 0) throw validationProblem(errors);
  };

  const load = (req: Request) => findVisible(subscriptions, callerOf(req), req.params.id);
  const changed = (id: string) => control.announce({ kind: 'subscription.changed', id });

  router.post('/api/webhooks', auth, json, async (req, res) => {
    const caller = callerOf(req);
    const input = parseOrThrow(createInput, req.body);
    if (input.scope === 'site' && !caller.admin) throw forbiddenSite();
    await checkLimits(input);
    const secret = newSigningSecret();
    const created = await subscriptions.create({
      _id: `wh_${ulid()}`,
      tenantId: caller.tenantId,
      name: input.name ?? null,
      description: input.description ?? null,
      url: input.url,
      events: [...new Set(input.events)],
      scope: input.scope,
      filter: input.filter,
      headers: Object.entries(input.headers).map(([name, value]) => ({ name, value })),
      auth: input.auth ?? null,
      sslVerification: input.sslVerification,
      enabled: input.enabled,
      payload: input.payload,
      retry: input.retry,
      secrets: [{ value: secret, expiresAt: null }],
      createdBy: caller.subject,
      updatedBy: caller.subject,
    });
    await changed(created._id);
    res
      .status(201)
      .location(`/api/webhooks/${created._id}`)
      .json({ ...subscriptionResponse(created.toObject()), secret });
  });

  router.get('/api/webhooks', auth, async (req, res) => {
    const caller = callerOf(req);
    const query = req.query as Record<string, unknown>;
    const errors: { path: string; message: string }[] = [];
    const limitText = typeof query.limit === 'string' ? query.limit : '20';
    const limit = /^\d{1,3}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= 100)) errors.push({ path: 'limit', message: 'must be a whole number from 1 to 100' });
    const filter: Record<string, unknown> = visibleTo(caller);
    if (query.scope !== undefined) {
      if (query.scope !== 'tenant' && query.scope !== 'site')
        errors.push({ path: 'scope', message: 'must be tenant or site' });
      else if (query.scope === 'site' && !caller.admin) throw forbiddenSite();
      else filter.scope = query.scope;
    }
    if (query.event !== undefined) {
      if (typeof query.event !== 'string' || !EVENT_PATTERN.test(query.event)) {
        errors.push({ path: 'event', message: 'must be an event name' });
      } else filter.events = query.event;
    }
    if (query.cursor !== undefined) {
      const after = typeof query.cursor === 'string' ? Buffer.from(query.cursor, 'base64url').toString() : '';
      if (!SUBSCRIPTION_ID.test(after)) errors.push({ path: 'cursor', message: 'is not a cursor this API returned' });
      else filter._id = { $gt: after };
    }
    if (errors.length > 0) throw validationProblem(errors);
    const page = await subscriptions
      .find(filter)
      .sort({ _id: 1 })
      .limit(limit + 1)
      .lean();
    const items = page.slice(0, limit);
    const last = items.at(-1);
    res.json({
      items: items.map(subscriptionResponse),
      nextCursor: page.length > limit && last ? Buffer.from(last._id).toString('base64url') : null,
    });
  });

  router.get('/api/webhooks/:id', auth, async (req, res) => {
    res.json(subscriptionResponse(await load(req)));
  });

  router.patch('/api/webhooks/:id', auth, json, async (req, res) => {
    const caller = callerOf(req);
    const input = parseOrThrow(updateInput, req.body);
    const current = await load(req);
    if (input.scope === 'site' && !caller.admin) throw forbiddenSite();
    const auth = input.auth === undefined ? current.auth : input.auth;
    const headers = input.headers === undefined ? current.headers : keptMasked(input.headers ?? {}, current.headers);
    const reserved = headers.filter((h) => isReservedHeader(h.name, auth !== null));
    if (reserved.length > 0) {
      throw validationProblem(
        reserved.map((h) => ({ path: `headers.${h.name}`, message: 'is set by hookbus and cannot be overridden' })),
      );
    }
    await checkLimits({ url: input.url, retry: input.retry });
    const set: Record<string, unknown> = { updatedBy: caller.subject, headers, auth };
    for (const key of ['name', 'description', 'url', 'scope', 'sslVerification', 'enabled', 'payload'] as const) {
      if (input[key] !== undefined) set[key] = input[key];
    }
    if (input.events !== undefined) set.events = [...new Set(input.events)];
    if (input.filter !== undefined) set.filter = input.filter ?? {};
    if (input.retry !== undefined) set.retry = input.retry ?? {};
    const updated = await subscriptions.findOneAndUpdate({ _id: current._id }, { $set: set }, { new: true }).lean();
    if (!updated) throw notFound('No subscription with that id.');
    await changed(updated._id);
    res.json(subscriptionResponse(updated));
  });

  router.delete('/api/webhooks/:id', auth, async (req, res) => {
    const current = await load(req);
    await subscriptions.deleteOne({ _id: current._id });
    await changed(current._id);
    res.status(204).end();
  });

  router.get('/api/webhooks/:id/secret', auth, async (req, res) => {
    const current = await load(req);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ secret: current.secrets.find((s) => s.expiresAt === null)?.value });
  });

  router.post('/api/webhooks/:id/secret/rotate', auth, async (req, res) => {
    const current = await load(req);
    const secrets = rotated(current.secrets);
    await subscriptions.updateOne({ _id: current._id }, { $set: { secrets, updatedBy: callerOf(req).subject } });
    await changed(current._id);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ secret: secrets[0]!.value });
  });

  return router;
}

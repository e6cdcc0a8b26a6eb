import express, { Router, type Request } from 'express';
import type { Control } from '../bus/control.js';
import type { Config } from '../config/index.js';
import { callerOf, requireCaller } from '../http/auth.js';
import { notFound } from '../http/problem.js';
import { parseOrThrow } from '../http/validation.js';
import { hookIdOf, type HookModel, type HookRecord } from './model.js';
import { deleteTenantHook, findTenantHook, listHooks, saveHook } from './repository.js';
import { hookInput } from './validation.js';

/** The API's view of a hook (seed 001's fields); the verify secret is write-only. */
export function hookResponse(hook: HookRecord, baseUrl: string) {
  return {
    hookId: hookIdOf(hook._id),
    datasource: hook.datasource,
    event: hook.event,
    createdAt: new Date(hook.createdAt).getTime(),
    apiToken: hook.apiToken,
    tenantId: hook.tenantId,
    token: hook._id,
    tsField: hook.tsField,
    hookUrl: `${baseUrl}/wh/${hook.apiToken}/${hook._id}`,
    ...(hook.eventFrom ? { eventFrom: hook.eventFrom } : {}),
    ...(hook.verify
      ? {
          verify: {
            scheme: hook.verify.scheme,
            ...('header' in hook.verify ? { header: hook.verify.header, encoding: hook.verify.encoding } : {}),
          },
        }
      : {}),
  };
}

const tokenOf = (req: Request): string => (typeof req.params.token === 'string' ? req.params.token : '');

/** `https://webhook.<host>` when X-ORIG-SERVER names an allowed host (seed 001), else PUBLIC_BASE_URL. */
function baseUrlFor(req: Request, config: Config): string {
  const host = req.get('x-orig-server')?.trim().toLowerCase();
  if (host && config.origServerHosts.includes(host)) return `https://webhook.${host}`;
  return config.publicBaseUrl.replace(/\/+$/, '');
}

export function hookConfigRoutes(config: Config, hooks: HookModel, control: Control): Router {
  const router = Router();
  // On each route rather than router.use(), so a 401 is counted under its route pattern.
  const auth = requireCaller(config.jwt);
  // Any body is read as JSON whatever its Content-Type: a body that is not JSON is a 400.
  const json = express.json({ type: () => true, limit: '64kb' });

  router.post('/wh/config', auth, json, async (req, res) => {
    const { tenantId } = callerOf(req);
    const { datasource, event, ...changes } = parseOrThrow(hookInput, req.body);
    const { hook, created } = await saveHook(hooks, { tenantId, datasource, event }, changes);
    if (!created) await control.announce({ kind: 'hook.changed', token: hook._id });
    res.status(200).json(hookResponse(hook, baseUrlFor(req, config)));
  });

  router.get('/wh/config', auth, async (req, res) => {
    const base = baseUrlFor(req, config);
    res.json((await listHooks(hooks, callerOf(req).tenantId)).map((hook) => hookResponse(hook, base)));
  });

  // Before the GET route, which Express would otherwise also use for HEAD.
  router.head('/wh/config/:token', auth, async (req, res) => {
    const hook = await findTenantHook(hooks, callerOf(req).tenantId, tokenOf(req));
    if (!hook) throw notFound('No hook with that token.');
    res.status(200).end();
  });

  router.get('/wh/config/:token', auth, async (req, res) => {
    const hook = await findTenantHook(hooks, callerOf(req).tenantId, tokenOf(req));
    if (!hook) throw notFound('No hook with that token.');
    res.json(hookResponse(hook, baseUrlFor(req, config)));
  });

  router.delete('/wh/config/:token', auth, async (req, res) => {
    const { tenantId } = callerOf(req);
    if (!(await deleteTenantHook(hooks, tenantId, tokenOf(req)))) throw notFound('No hook with that token.');
    await control.announce({ kind: 'hook.changed', token: tokenOf(req) });
    res.status(204).end();
  });

  return router;
}

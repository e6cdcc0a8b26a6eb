import { Router } from 'express';
import { checkAll, type Dependency } from '../health.js';
import type { Metrics } from '../metrics.js';

/** /healthz, /readyz and /metrics: served by every process, whatever its roles. */
export function healthRoutes(dependencies: readonly Dependency[], metrics: Metrics): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const results = await checkAll(dependencies);
    const down = Object.entries(results)
      .filter(([, up]) => !up)
      .map(([name]) => name);
    const checks = Object.fromEntries(Object.entries(results).map(([name, up]) => [name, up ? 'up' : 'down']));
    res.setHeader('Cache-Control', 'no-store');
    res.status(down.length === 0 ? 200 : 503).json({
      status: down.length === 0 ? 'ready' : 'unavailable',
      checks,
      ...(down.length > 0 ? { detail: `not connected: ${down.join(', ')}` } : {}),
    });
  });

  router.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });

  return router;
}

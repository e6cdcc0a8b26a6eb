import type { IncomingMessage, ServerResponse } from 'node:http';
import onHeaders from 'on-headers';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { HttpProblem, sendProblem } from './problem.js';
import { requestIdOf } from './request-context.js';

/**
 * A route served on node:http directly, without Express's per-request work: the inbound webhook
 * endpoint, where throughput matters. Request ids, metrics, logs, problem+json and shutdown
 * behaviour are the same as on Express routes.
 */
export interface FastRoute {
  method: string;
  /** The route pattern: the metrics' `route` label and what logs show instead of the path. */
  route: string;
  match(pathname: string): Record<string, string> | undefined;
  /** Answers the request; resolves to a word for the log line (e.g. the inbound outcome). */
  handle(req: IncomingMessage, res: ServerResponse, params: Record<string, string>): Promise<string>;
}

export interface FastRouter {
  /** Serves the request and returns true when a fast route matches it. */
  serve(req: IncomingMessage, res: ServerResponse): boolean;
}

export function fastRouter(
  routes: FastRoute[],
  deps: { logger: Logger; metrics: Metrics; isShuttingDown: () => boolean },
): FastRouter {
  const { logger, metrics } = deps;
  return {
    serve(req, res) {
      if (routes.length === 0) return false;
      const path = (req.url ?? '').split('?')[0] ?? '';
      for (const route of routes) {
        if (req.method !== route.method) continue;
        const params = route.match(path);
        if (params) {
          void run(route, params, req, res);
          return true;
        }
      }
      return false;
    },
  };

  async function run(route: FastRoute, params: Record<string, string>, req: IncomingMessage, res: ServerResponse) {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(req);
    res.setHeader('X-Request-Id', requestId);
    onHeaders(res, () => {
      if (deps.isShuttingDown()) res.setHeader('Connection', 'close');
    });
    let outcome = 'error';
    try {
      outcome = await route.handle(req, res, params);
    } catch (error) {
      logger.error({ err: error, requestId, route: route.route }, 'request failed');
      if (!res.headersSent) {
        sendProblem(
          res,
          new HttpProblem(500, 'Something went wrong on our side; the error is logged with this request id.'),
        );
      } else res.destroy();
    }
    const finish = () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = res.writableFinished ? res.statusCode : 499;
      const labels = { method: route.method, route: route.route, status_code: String(status) };
      metrics.httpRequests.inc(labels);
      metrics.httpRequestDuration.observe(labels, seconds);
      const level = status >= 500 ? 'warn' : status >= 400 ? 'info' : 'debug';
      logger[level](
        {
          req: { id: requestId, method: route.method, path: route.route },
          res: { statusCode: status },
          outcome,
          responseTime: Math.round(seconds * 1000),
        },
        'request completed',
      );
    };
    if (res.writableFinished) finish();
    else res.once('finish', finish).once('close', () => res.writableFinished || finish());
  }
}

import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
  type Router,
} from 'express';
import onHeaders from 'on-headers';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { HttpProblem, notFound, sendProblem } from './problem.js';
import { loggablePath, requestIdOf } from './request-context.js';

export interface HttpAppOptions {
  logger: Logger;
  metrics: Metrics;
  /** Mounted in order: health and metrics first, then each role's routes. */
  routers: Router[];
  /** True once shutdown began: answers then ask the client to close the connection. */
  isShuttingDown: () => boolean;
}

const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** The route pattern a request matched (never the raw path, which holds tokens). */
function routeOf(req: Request): string {
  const route = req.route as { path?: unknown } | undefined;
  if (route && typeof route.path === 'string') return `${req.baseUrl}${route.path}`;
  return 'unmatched';
}

function instrument(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    // 'close' also fires when the client goes away before the response is complete.
    res.once('close', () => {
      // 499: the client went away before the response was complete (nginx's convention).
      const status = res.writableFinished ? String(res.statusCode) : '499';
      const labels = { method: req.method, route: routeOf(req), status_code: status };
      metrics.httpRequests.inc(labels);
      metrics.httpRequestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };
}

const DATABASE_UNAVAILABLE = new Set([
  'MongoNotConnectedError',
  'MongoServerSelectionError',
  'MongooseServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoTopologyClosedError',
]);
const isDatabaseUnavailable = (error: unknown) =>
  DATABASE_UNAVAILABLE.has((error as Error).name) ||
  ((error as Error).name === 'MongooseError' &&
    /buffering|not connected|before initial connection/i.test((error as Error).message));

/** Maps what express and its body parsers throw to problems; anything unknown is a 500. */
function problemOf(error: unknown): HttpProblem {
  if (error instanceof HttpProblem) return error;
  const status =
    (error as { status?: unknown; statusCode?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  const type = (error as { type?: unknown }).type;
  if (isDatabaseUnavailable(error)) {
    return new HttpProblem(503, 'The database is unreachable; retry later.', {
      type: 'database-unavailable',
      headers: { 'Retry-After': '5' },
    });
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (type === 'entity.parse.failed')
      return new HttpProblem(400, 'The body is not valid JSON.', { type: 'invalid-json' });
    if (type === 'entity.too.large')
      return new HttpProblem(413, 'The body is larger than allowed.', { type: 'too-large' });
    return new HttpProblem(status, (error as Error).message || 'The request was not accepted.');
  }
  return new HttpProblem(500, 'Something went wrong on our side; the error is logged with this request id.');
}

export function createHttpApp(options: HttpAppOptions): Express {
  const { logger, metrics } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use(
    pinoHttp({
      logger,
      genReqId: (req, res) => {
        const id = requestIdOf(req);
        res.setHeader('X-Request-Id', id);
        return id;
      },
      autoLogging: { ignore: (req) => PROBE_PATHS.has(loggablePath(req.url)) },
      customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : 'info'),
      serializers: {
        req: (req: { id: unknown; method: string; url: string }) => ({
          id: req.id,
          method: req.method,
          path: loggablePath(req.url),
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    }),
  );
  app.use(instrument(metrics));
  // Decided when the headers go out, so requests already in flight at SIGTERM close their connection too.
  app.use((_req, res, next) => {
    onHeaders(res, () => {
      if (options.isShuttingDown()) res.setHeader('Connection', 'close');
    });
    next();
  });

  for (const router of options.routers) app.use(router);

  app.use((req) => {
    throw notFound(`No route for ${req.method} ${loggablePath(req.originalUrl)}.`);
  });
  const onError: ErrorRequestHandler = (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const problem = problemOf(error);
    if (problem.status >= 500) req.log.error({ err: error }, 'request failed');
    sendProblem(res, problem);
  };
  app.use(onError);
  return app;
}

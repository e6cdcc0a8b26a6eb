import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import getRawBody from 'raw-body';
import { getProperty } from 'dot-prop';
import { ConfirmPublisher, PublishError } from '../bus/publisher.js';
import type { Config } from '../config/index.js';
import {
  envelopeWithRawData,
  inboundRoutingKey,
  MAX_ENVELOPE_BYTES,
  newEventId,
  readPayload,
  type Envelope,
} from '../envelope.js';
import type { FastRoute } from '../http/fast-route.js';
import { HttpProblem, sendProblem } from '../http/problem.js';
import type { InboundOutcome, Metrics } from '../metrics.js';
import type { HookCache } from './cache.js';
import { eventNameOf, keptHeaders, occurredAtOf } from './inbound-envelope.js';
import { hookIdOf, type HookRecord } from './model.js';
import { verifySignature } from './signatures.js';

export interface InboundDeps {
  config: Config;
  cache: HookCache;
  publisher: ConfirmPublisher;
  metrics: Metrics;
}

const HOOK_PATH = /^\/wh\/([^/]+)\/([^/]+)\/?$/;
const RETRY_AFTER_SECONDS = '5';

/** `POST /wh/:apiToken/:token`: SPEC §4.2, its checks in the table's order. */
export function inboundRoute(deps: InboundDeps): FastRoute {
  return {
    method: 'POST',
    route: '/wh/:apiToken/:token',
    match(path) {
      const m = HOOK_PATH.exec(path);
      return m && m[1] !== 'config' ? { apiToken: m[1]!, token: m[2]! } : undefined;
    },
    async handle(req, res, params) {
      const outcome = await receive(deps, req, res, params as { apiToken: string; token: string });
      deps.metrics.inboundRequests.inc({ outcome });
      return outcome;
    },
  };
}

class Refusal extends HttpProblem {
  constructor(
    readonly outcome: InboundOutcome,
    status: number,
    detail: string,
    extra: ConstructorParameters<typeof HttpProblem>[2] = {},
  ) {
    super(status, detail, { type: outcome.replaceAll('_', '-'), ...extra });
  }
}

const unavailable = (detail: string) =>
  new Refusal('broker_unavailable', 503, detail, { headers: { 'Retry-After': RETRY_AFTER_SECONDS } });

const sameToken = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

async function receive(
  deps: InboundDeps,
  req: IncomingMessage,
  res: ServerResponse,
  params: { apiToken: string; token: string },
): Promise<InboundOutcome> {
  try {
    const receivedAt = new Date();
    const hook = await lookUp(deps, params);
    checkContentType(req);
    const raw = await readBody(req, deps.config.inbound.maxBody, res);
    if (hook.verify && !verifySignature(hook.verify, raw, req.headers)) {
      throw new Refusal('bad_signature', 401, `The request's ${hook.verify.scheme} signature is missing or invalid.`);
    }
    const payload = readPayload(raw);
    if (!payload.ok) throw new Refusal('invalid_json', 400, payload.problem);
    const data = payload.value;
    const event = eventOf(hook, req, data);
    const routingKey = inboundRoutingKey(hook.tenantId, hook.datasource, event);
    if (Buffer.byteLength(routingKey) > ConfirmPublisher.MAX_ROUTING_KEY_BYTES) {
      throw new Refusal('invalid_json', 400, 'The event name is too long for a routing key.');
    }
    // The body may have taken a while: a hook deleted or changed meanwhile must not publish.
    const current = await lookUp(deps, params);
    if (new Date(current.updatedAt).getTime() !== new Date(hook.updatedAt).getTime())
      throw unavailable('The hook changed while the request was read; retry.');
    const id = newEventId();
    const envelope: Omit<Envelope, 'data'> = {
      id,
      event: `${hook.datasource}.${event}`,
      tenantId: hook.tenantId,
      source: { kind: 'webhook', hookId: hookIdOf(hook._id), datasource: hook.datasource, event },
      resourceKey: null,
      occurredAt: occurredAtOf(data, hook.tsField) ?? receivedAt.toISOString(),
      receivedAt: receivedAt.toISOString(),
      headers: keptHeaders(req.headers),
    };
    const content = envelopeWithRawData(envelope, payload.bytes);
    if (content.length > MAX_ENVELOPE_BYTES) {
      throw new Refusal(
        'too_large',
        413,
        `The body and its headers make an envelope larger than ${MAX_ENVELOPE_BYTES} bytes.`,
      );
    }
    await publish(deps, { id, content }, hook, event, routingKey, receivedAt);
    const body = JSON.stringify({ id });
    res.writeHead(202, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
    return 'published';
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    // A body left unread (refused before reading it) ends the connection: the server reads and
    // drops the rest for a bounded while first, so the client still reads this answer (src/http/server.ts).
    if (!req.complete) res.setHeader('Connection', 'close');
    sendProblem(res, error);
    return error.outcome;
  }
}

async function lookUp(deps: InboundDeps, params: { apiToken: string; token: string }): Promise<HookRecord> {
  let hook: HookRecord | undefined;
  try {
    hook = await deps.cache.get(params.token);
  } catch {
    throw unavailable('Hooks cannot be looked up right now; retry later.');
  }
  if (!hook || !sameToken(hook.apiToken, params.apiToken)) {
    throw new Refusal('unknown_hook', 404, 'No hook at this URL.');
  }
  return hook;
}

function checkContentType(req: IncomingMessage): void {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().includes('json')) {
    throw new Refusal('unsupported_media_type', 415, 'The Content-Type must be JSON, e.g. application/json.');
  }
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity') {
    throw new Refusal('unsupported_media_type', 415, `Content-Encoding ${encoding} is not accepted.`);
  }
}

async function readBody(req: IncomingMessage, limit: number, res: ServerResponse): Promise<Buffer> {
  try {
    return await getRawBody(req, { limit, length: req.headers['content-length'] });
  } catch (error) {
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large') {
      // The rest of the body is not read as a request: the connection ends (after a bounded linger).
      res.setHeader('Connection', 'close');
      throw new Refusal('too_large', 413, `The body is larger than ${limit} bytes.`);
    }
    throw new Refusal('invalid_json', 400, 'The body could not be read completely.');
  }
}

function eventOf(hook: HookRecord, req: IncomingMessage, data: unknown): string {
  if (hook.event !== '*') return hook.event;
  const from = hook.eventFrom!;
  const value: unknown =
    'header' in from
      ? req.headers[from.header]
      : typeof data === 'object' && data !== null
        ? getProperty(data as Record<string, unknown>, from.field)
        : undefined;
  const event = eventNameOf(value);
  if (!event) {
    const where = 'header' in from ? `header ${from.header}` : `body field ${from.field}`;
    throw new Refusal('invalid_json', 400, `The ${where} must hold an event name of words of A-Z, a-z, 0-9, _ and -.`);
  }
  return event;
}

async function publish(
  deps: InboundDeps,
  message: { id: string; content: Buffer },
  hook: HookRecord,
  event: string,
  routingKey: string,
  receivedAt: Date,
): Promise<void> {
  const { config, publisher, metrics } = deps;
  const stopTimer = metrics.inboundPublishDuration.startTimer();
  try {
    await publisher.publish(
      config.inbound.exchange,
      routingKey,
      message.content,
      {
        messageId: message.id,
        mandatory: true,
        persistent: true,
        contentType: 'application/json',
        timestamp: Math.floor(receivedAt.getTime() / 1000),
        headers: { tenantId: hook.tenantId, datasource: hook.datasource, event },
      },
      config.inbound.confirmTimeoutMs,
    );
    stopTimer();
  } catch (error) {
    if (!(error instanceof PublishError)) throw error;
    throw unavailable(
      error.reason === 'returned'
        ? 'No queue is bound for this event yet; it was not accepted. Retry later.'
        : 'The message broker did not confirm the message; it was not accepted. Retry later.',
    );
  }
}

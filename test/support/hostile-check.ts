import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { chunkedBytes, type BodyCase } from './hostile-json.js';
import type { HeaderList } from './hostile-http.js';
import { rawRequest, sendRaw, type RawOutcome, type RawRequest } from './raw-http.js';

/** Every answer must come within this bound; the raw client gives up (a failure) after it. */
export const ANSWER_WITHIN_MS = 10_000;

/** One hostile request: either parts for rawRequest or bytes sent as they are. */
export interface HostileCase {
  /** The endpoint it aims at, as the SPEC names it (or `(raw)`), for the tally. */
  endpoint: string;
  /** What makes it hostile, for the tally and failure messages. */
  kind: string;
  request: RawRequest | Buffer;
}

const show = (value: string | Buffer | undefined, max: number) => {
  if (value === undefined) return '(none)';
  const text = Buffer.isBuffer(value) ? value.toString('latin1') : value;
  const cut = text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
  return JSON.stringify(cut);
};

/** A short, exact-enough description of a case: what fast-check prints as the counterexample. */
export function describeCase(c: HostileCase): string {
  if (Buffer.isBuffer(c.request)) return `[${c.kind}] raw bytes ${show(c.request, 600)}`;
  const { method, target, headers = [], body } = c.request;
  const head = headers.map(([n, v]) => `${show(n, 60)}: ${show(v, 120)}`).join(', ');
  return `[${c.kind}] ${show(method, 40)} ${show(target, 300)} headers {${head}} body ${show(body, 400)}`;
}

/** Wraps a case so fast-check reports it by its description instead of dumping megabytes. */
export const described = (c: HostileCase): HostileCase =>
  Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) });

export function send(url: string, c: HostileCase): Promise<RawOutcome> {
  if (Buffer.isBuffer(c.request)) {
    return sendRaw(url, c.request, {
      timeoutMs: ANSWER_WITHIN_MS,
      head: c.request.subarray(0, 5).toString() === 'HEAD ',
    });
  }
  return rawRequest(url, { timeoutMs: ANSWER_WITHIN_MS, ...c.request });
}

/** Headers and body of a JSON request carrying `body` (its type, encoding and framing as the case says). */
export function bodyRequest(
  method: string,
  target: string,
  authorization: string | Buffer | undefined,
  body: BodyCase,
  extra: HeaderList = [],
): RawRequest {
  const headers: HeaderList = [];
  if (authorization !== undefined) headers.push(['Authorization', authorization]);
  if (body.contentType !== null) headers.push(['Content-Type', body.contentType]);
  if (body.contentEncoding !== undefined) headers.push(['Content-Encoding', body.contentEncoding]);
  if (body.chunked) headers.push(['Transfer-Encoding', 'chunked']);
  headers.push(...extra);
  return {
    method,
    target,
    headers,
    body: body.chunked ? chunkedBytes(body.body) : body.body,
    readAfterWrite: body.readAfterWrite,
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const STACK_TRACE = /\bat [^\s]+ \(?[^\s]*:\d+:\d+\)?/;

/**
 * Why the answer breaks the contract, or undefined when it keeps it: a 2xx, or a 4xx
 * application/problem+json `{type, title, status, detail}` (HEAD: the type only, there is no
 * body); never a 5xx, a 3xx, a reset, a close without an answer or a hang; no stack trace, no
 * injected header, a sane X-Request-Id.
 */
export function breach(c: HostileCase, outcome: RawOutcome): string | undefined {
  if (outcome.kind !== 'answer') return `no answer: ${outcome.kind} (${outcome.detail}) after ${outcome.ms} ms`;
  const { status, headers, body } = outcome;
  const said = `answered ${status} ${headers['content-type'] ?? '(no type)'} ${show(body, 300)}`;
  if (status >= 500) return `a server error: ${said}`;
  if (status < 200 || (status >= 300 && status < 400)) return `an unexpected status: ${said}`;
  if ('x-injected' in headers) return `an injected header came back: ${said}`;
  const requestId = headers['x-request-id'];
  if (requestId !== undefined && !REQUEST_ID.test(requestId)) return `an unsafe X-Request-Id ${show(requestId, 200)}`;
  if (STACK_TRACE.test(body.toString('latin1'))) return `a stack trace in the body: ${said}`;
  if (status < 400) return undefined;
  if (!headers['content-type']?.startsWith('application/problem+json'))
    return `a 4xx that is not problem+json: ${said}`;
  const head = !Buffer.isBuffer(c.request)
    ? c.request.method === 'HEAD'
    : c.request.subarray(0, 5).toString() === 'HEAD ';
  if (head) return body.length === 0 ? undefined : `a body on a HEAD answer: ${said}`;
  let problem: Record<string, unknown>;
  try {
    problem = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return `a problem body that is not JSON: ${said}`;
  }
  if (
    problem.status !== status ||
    typeof problem.title !== 'string' ||
    typeof problem.detail !== 'string' ||
    typeof problem.type !== 'string'
  ) {
    return `a problem without type/title/status/detail: ${said}`;
  }
  return undefined;
}

/** Answers per property and endpoint, by status: the figures of docs/hostile-input.md. */
export class Tally {
  private readonly properties = new Map<
    string,
    {
      inputs: number;
      ms: number;
      slowestMs: number;
      healthzSlowestMs: number;
      statuses: Record<string, number>;
      endpoints: Record<string, number>;
      kinds: Record<string, number>;
    }
  >();

  count(property: string, c: HostileCase, outcome: RawOutcome): void {
    let entry = this.properties.get(property);
    if (!entry) {
      entry = { inputs: 0, ms: 0, slowestMs: 0, healthzSlowestMs: 0, statuses: {}, endpoints: {}, kinds: {} };
      this.properties.set(property, entry);
    }
    entry.inputs++;
    entry.slowestMs = Math.max(entry.slowestMs, outcome.ms);
    const status = outcome.kind === 'answer' ? String(outcome.status) : outcome.kind;
    entry.statuses[status] = (entry.statuses[status] ?? 0) + 1;
    entry.endpoints[c.endpoint] = (entry.endpoints[c.endpoint] ?? 0) + 1;
    entry.kinds[c.kind] = (entry.kinds[c.kind] ?? 0) + 1;
  }

  /** The slowest /healthz answer while the property ran. */
  probed(property: string, ms: number): void {
    const entry = this.properties.get(property);
    if (entry) entry.healthzSlowestMs = ms;
  }

  took(property: string, ms: number): void {
    const entry = this.properties.get(property);
    if (entry) entry.ms += ms;
  }

  /** Writes the tally as JSON to `path` (HOSTILE_REPORT), for the docs. */
  write(path: string | undefined): void {
    if (!path) return;
    const properties = Object.fromEntries(this.properties);
    const inputs = [...this.properties.values()].reduce((sum, p) => sum + p.inputs, 0);
    writeFileSync(path, JSON.stringify({ inputs, properties }, null, 2));
  }

  /** One line per property: inputs, time, slowest answer, answers by status. */
  summary(): string {
    const lines = [...this.properties].map(
      ([name, p]) =>
        `${name}: ${p.inputs} inputs, ${(p.ms / 1000).toFixed(1)} s, slowest ${p.slowestMs} ms, ` +
        `/healthz meanwhile ≤ ${p.healthzSlowestMs} ms, ` +
        Object.entries(p.statuses)
          .map(([status, n]) => `${status}×${n}`)
          .join(' '),
    );
    const inputs = [...this.properties.values()].reduce((sum, p) => sum + p.inputs, 0);
    return [...lines, `total: ${inputs} inputs`].join('\n');
  }
}

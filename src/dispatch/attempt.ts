import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { readFileSync } from 'node:fs';
import got, { type Headers } from 'got';
import ipaddr from 'ipaddr.js';
import { isSensitiveHeader, REDACTED } from '../webhooks/sensitive-headers.js';
import { isPrivateAddress, PrivateTargetError } from '../webhooks/ssrf.js';
import type { SubscriptionRecord } from '../webhooks/model.js';
import type { AttemptRecord, HeaderPair } from '../deliveries/model.js';
import { signatureHeader, signingSecrets } from './signing.js';

/** Response bodies are read up to this many bytes (SPEC §5.2); the rest is discarded unread. */
export const MAX_RESPONSE_BODY = 64 * 1024;

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
export const USER_AGENT = `hookbus/${VERSION}`;

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A DNS lookup for outgoing connections that refuses a host when any address it resolves to is
 * internal. The connection is made to exactly the addresses vetted here, so a DNS answer that
 * changes between the check and the connect (rebinding) cannot slip through.
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    if (addresses.length === 0 || addresses.some((a) => isPrivateAddress(a.address))) {
      return callback(Object.assign(new PrivateTargetError(hostname), { code: 'EPRIVATETARGET' }), []);
    }
    if (options.all) return callback(null, addresses);
    const [first] = addresses;
    callback(null, first!.address, first!.family);
  });
}

export interface AttemptRequest {
  subscription: SubscriptionRecord;
  deliveryId: string;
  eventId: string;
  event: string;
  attempt: number;
  body: string;
  timeoutMs: number;
}

export interface AttemptResult {
  record: AttemptRecord;
  /** 2xx within the timeout. */
  ok: boolean;
  status: number | null;
  /** Milliseconds asked for by a Retry-After on a 429 or 503, if any. */
  retryAfterMs: number | null;
}

/** Seconds or an HTTP date, as milliseconds from now; null when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function pairsOf(headers: Record<string, string | string[] | undefined>): HeaderPair[] {
  const pairs: HeaderPair[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) pairs.push({ name, value: one });
  }
  return pairs;
}

/**
 * Makes HTTP attempts: one keep-alive pool per process, no redirects, no retries of its own (the
 * broker's delay queues do that), TLS verification per subscription, the SSRF rule at connect time.
 */
export class Sender {
  private readonly http = new HttpAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256, scheduling: 'lifo' });
  private readonly https = new HttpsAgent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 256,
    scheduling: 'lifo',
  });

  constructor(private readonly allowPrivateTargets: boolean) {}

  /** The exact headers of SPEC §5.2, and their redacted copy for the delivery log. */
  headersFor(request: AttemptRequest, timestamp: number): { sent: Headers; logged: HeaderPair[] } {
    const { subscription } = request;
    const sent: Headers = {};
    const logged: HeaderPair[] = [];
    const add = (name: string, value: string, redact = false) => {
      sent[name] = value;
      logged.push({ name, value: redact ? REDACTED : value });
    };
    add('content-type', 'application/json');
    add('user-agent', USER_AGENT);
    add('webhook-id', request.deliveryId);
    add('webhook-timestamp', String(timestamp));
    add(
      'webhook-signature',
      signatureHeader(signingSecrets(subscription.secrets), request.deliveryId, timestamp, request.body),
      true,
    );
    add('x-hookbus-event', request.event);
    add('x-hookbus-event-id', request.eventId);
    add('x-hookbus-attempt', String(request.attempt));
    for (const { name, value } of subscription.headers) add(name, value, isSensitiveHeader(name));
    const { auth } = subscription;
    if (auth && 'bearer' in auth) add('authorization', `Bearer ${auth.bearer}`, true);
    if (auth && 'basic' in auth) {
      const token = Buffer.from(`${auth.basic.username}:${auth.basic.password}`).toString('base64');
      add('authorization', `Basic ${token}`, true);
    }
    return { sent, logged };
  }

  async send(request: AttemptRequest): Promise<AttemptResult> {
    const startedAt = new Date();
    const started = performance.now();
    const timestamp = Math.floor(startedAt.getTime() / 1000);
    const { sent, logged } = this.headersFor(request, timestamp);
    const finish = (
      response: AttemptRecord['response'],
      error: string | null,
      retryAfter: number | null = null,
    ): AttemptResult => {
      const status = response?.status ?? null;
      return {
        record: {
          n: request.attempt,
          at: startedAt,
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
          request: { headers: logged },
          response,
          error,
        },
        ok: error === null && status !== null && status >= 200 && status < 300,
        status,
        retryAfterMs: status === 429 || status === 503 ? retryAfter : null,
      };
    };

    const url = new URL(request.subscription.url);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // An address written into the URL is never looked up, so it is checked here.
    if (!this.allowPrivateTargets && ipaddr.isValid(host) && isPrivateAddress(host)) {
      return finish(null, new PrivateTargetError(url.hostname).message);
    }

    const stream = got.stream.post(url, {
      body: request.body,
      headers: sent,
      agent: { http: this.http, https: this.https },
      https: { rejectUnauthorized: request.subscription.sslVerification },
      dnsLookup: this.allowPrivateTargets ? undefined : publicOnlyLookup,
      followRedirect: false,
      throwHttpErrors: false,
      retry: { limit: 0 },
      timeout: { request: request.timeoutMs },
      // No Accept-Encoding: the request carries exactly the headers of SPEC §5.2.
      decompress: false,
    });
    try {
      const response = await new Promise<{
        statusCode: number;
        headers: Record<string, string | string[] | undefined>;
      }>((resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let bodyError: string | null = null;
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          const room = MAX_RESPONSE_BODY - size;
          if (chunk.length > room) {
            chunks.push(chunk.subarray(0, room));
            size += room;
            truncated = true;
            break;
          }
          chunks.push(chunk);
          size += chunk.length;
        }
      } catch (error) {
        bodyError = `response body: ${errorText(error)}`;
      }
      stream.destroy();
      const retryAfter = retryAfterMs(headerValue(response.headers['retry-after']));
      return finish(
        {
          status: response.statusCode,
          headers: pairsOf(response.headers),
          body: Buffer.concat(chunks).toString('utf8'),
          bodyTruncated: truncated,
        },
        // A 2xx whose body did not finish in time is still a 2xx within the timeout.
        response.statusCode >= 200 && response.statusCode < 300 ? null : bodyError,
        retryAfter,
      );
    } catch (error) {
      stream.destroy();
      return finish(null, errorText(error));
    }
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** An error's message without anything from the request (no URL query, no headers). */
function errorText(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const text = message ?? String(error);
  return code && !text.includes(code) ? `${code}: ${text}` : text;
}

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { createHook, inboundUrl } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { rawRequest } from '../support/raw-http.js';
import { endlessPost, streamingPost } from '../support/uploads.js';
import { eventually } from '../support/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** INBOUND_MAX_BODY here (the default). */
const MAX_BODY = MiB;
/** What a closing connection reads at most (src/http/server.ts), and for how long. */
const LINGER_BYTES = 4 * MAX_BODY;
const LINGER_MS = 5_000;
const UNKNOWN_HOOK = '/wh/00000000-0000-4000-8000-000000000000/nope';

/** Runs `attempt` `times` times, a few at once, and returns what each gave. */
async function repeat<T>(times: number, attempt: () => Promise<T>): Promise<T[]> {
  const atOnce = 5;
  const outcomes: T[] = [];
  while (outcomes.length < times) outcomes.push(...(await Promise.all(Array.from({ length: atOnce }, attempt))));
  return outcomes.slice(0, times);
}

describe('the HTTP server', () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ INBOUND_MAX_BODY: '1mb' });
    await waitReady(app);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('When a request is pipelined after an early refusal that closes the connection, then it is not run', async () => {
    const { port } = new URL(app.url);
    const tenant = 'pipelined';
    const hookBody = JSON.stringify({ datasource: 'pipe', event: 'lined' });
    // Half-open allowed: like a client still uploading, it keeps sending after the server's FIN.
    const socket = connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    // An unknown hook is refused (404, Connection: close) before its 100-byte body is read.
    socket.write(
      'POST /wh/00000000-0000-4000-8000-000000000000/nope HTTP/1.1\r\nHost: x\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n',
    );
    await eventually(() => Buffer.concat(received).includes('\r\n\r\n'), 5_000, 'the early answer');
    // The rest of that body, then a second request that would create a hook.
    const create =
      `POST /wh/config HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer(tenant).Authorization}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(hookBody)}\r\n\r\n${hookBody}`;
    socket.write(`${' '.repeat(100)}${create}`);
    // Long enough for whatever the server was going to run to have run.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    socket.destroy();

    const text = Buffer.concat(received).toString();
    expect(text).toMatch(/^HTTP\/1\.1 404 /);
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    const hooks = await fetch(`${app.url}/wh/config`, { headers: bearer(tenant) });
    expect(await hooks.json()).toEqual([]);
  });

  describe('When a request is refused before its body is read', () => {
    const json = { 'Content-Type': 'application/json' };
    /** Like Python's requests: the whole body first, then it reads. Its status, or how it failed. */
    const uploadFirst = async (target: string, size: number) => {
      const outcome = await rawRequest(app.url, {
        method: 'POST',
        target,
        headers: Object.entries(json),
        body: Buffer.alloc(size, 0x20),
        readAfterWrite: true,
      });
      return outcome.kind === 'answer' ? outcome.status : `${outcome.kind} ${outcome.detail}`;
    };

    it('then the 413 for 2 MiB over a 1 MiB INBOUND_MAX_BODY reaches a client 50 times of 50, streaming or not', async () => {
      const hook = await createHook(app, 'lingering', { datasource: 'big', event: 'body' });
      const streaming = () =>
        streamingPost(inboundUrl(app, hook), { size: 2 * MiB, chunkSize: 64 * KiB, headers: json });
      expect(await repeat(50, streaming)).toEqual(Array(50).fill(413));
      const target = new URL(inboundUrl(app, hook)).pathname;
      expect(await repeat(50, () => uploadFirst(target, 2 * MiB))).toEqual(Array(50).fill(413));
    });

    it('then the 404 for 512 KiB to an unknown hook reaches a client 50 times of 50, streaming or not', async () => {
      const streaming = () =>
        streamingPost(`${app.url}${UNKNOWN_HOOK}`, { size: 512 * KiB, chunkSize: 64 * KiB, headers: json });
      expect(await repeat(50, streaming)).toEqual(Array(50).fill(404));
      expect(await repeat(50, () => uploadFirst(UNKNOWN_HOOK, 512 * KiB))).toEqual(Array(50).fill(404));
    });

    it('then a client that never stops sending is cut off once the server has read 4 × INBOUND_MAX_BODY', async () => {
      const upload = await endlessPost(app.url, UNKNOWN_HOOK, { chunkSize: 64 * KiB, intervalMs: 0 });
      expect(upload.status).toBe(404);
      expect(upload.bytesSent).toBeGreaterThan(LINGER_BYTES);
      // Cut by the byte bound, long before the time bound: locally 4 MiB take a few milliseconds.
      expect(upload.msAfterAnswer).toBeLessThan(LINGER_MS / 5);
    });

    it.each([
      ['a 401 from the config API (no token)', '/api/webhooks', 401],
      ['a 404 for no route', '/no/such/route', 404],
    ])('then %s to a client that never stops sending is cut off at the bound too', async (_, target, status) => {
      const upload = await endlessPost(app.url, target, { chunkSize: 64 * KiB, intervalMs: 0 });
      expect(upload.status).toBe(status);
      expect(upload.bytesSent).toBeGreaterThan(LINGER_BYTES);
      expect(upload.msAfterAnswer).toBeLessThan(LINGER_MS / 5);
    });

    it('then a client that sends slowly without end is cut off after 5 s', async () => {
      const upload = await endlessPost(app.url, UNKNOWN_HOOK, { chunkSize: KiB, intervalMs: 50 });
      expect(upload.status).toBe(404);
      expect(upload.bytesSent).toBeLessThan(LINGER_BYTES);
      expect(upload.msAfterAnswer).toBeGreaterThan(LINGER_MS - 500);
      expect(upload.msAfterAnswer).toBeLessThan(3 * LINGER_MS);
    });
  });
});

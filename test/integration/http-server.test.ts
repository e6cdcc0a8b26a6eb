import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { bearer } from '../support/jwt.js';
import { eventually } from '../support/wait.js';

describe('the HTTP server', () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
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
    // Past the server's linger (2 s): whatever it was going to run, it has run.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    socket.destroy();

    const text = Buffer.concat(received).toString();
    expect(text).toMatch(/^HTTP\/1\.1 404 /);
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    const hooks = await fetch(`${app.url}/wh/config`, { headers: bearer(tenant) });
    expect(await hooks.json()).toEqual([]);
  });
});

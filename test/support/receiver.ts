import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { eventually } from './wait.js';

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

/** Answers one request: status, headers and body; or 'hang' to never answer. */
export type Responder = (
  request: Received,
  count: number,
) => { status: number; headers?: Record<string, string>; body?: string; delayMs?: number } | 'hang';

/** A subscriber endpoint for tests: records every request and answers as told. */
export class Receiver {
  readonly requests: Received[] = [];
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    public respond: Responder,
  ) {}

  static async start(
    respond: Responder = () => ({ status: 200 }),
    tls?: { key: string; cert: string },
  ): Promise<Receiver> {
    const server = tls ? createHttpsServer(tls) : createHttpServer();
    server.keepAliveTimeout = 30_000;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const receiver = new Receiver(server, `${tls ? 'https' : 'http'}://127.0.0.1:${port}/hook`, respond);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => receiver.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    return receiver;
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const request: Received = { method: req.method!, path: req.url!, headers: req.headers, body, at: Date.now() };
    this.requests.push(request);
    const answer = this.respond(request, this.requests.length);
    if (answer === 'hang') {
      this.hanging.add(res);
      return;
    }
    const send = () => {
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body ?? '');
    };
    if (answer.delayMs) setTimeout(send, answer.delayMs);
    else send();
  }

  async waitFor(count: number, timeoutMs = 20_000): Promise<Received[]> {
    await eventually(
      () => this.requests.length >= count,
      timeoutMs,
      `${count} requests at the receiver (have ${this.requests.length})`,
    );
    return this.requests;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

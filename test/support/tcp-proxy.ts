import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

/**
 * A TCP relay in front of a real server, to break a dependency the way a network would.
 * `cut()` drops every relayed connection and refuses new ones (a partition or a crashed server);
 * `freeze()` keeps the connections open but relays nothing (a hung server) until `thaw()`.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private frozen = false;
  private held: [Socket, Buffer][] = [];
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** A started relay in front of the server a connection string points at. */
  static async before(url: string): Promise<TcpProxy> {
    const { hostname, port, protocol } = new URL(url);
    const fallback = protocol.startsWith('amqp') ? 5672 : 27017;
    return new TcpProxy(hostname.replace(/^\[|\]$/g, ''), Number(port || fallback)).start();
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.sockets.add(from);
        from.on('close', () => this.sockets.delete(from));
        from.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
        from.on('data', (chunk: Buffer) => {
          if (this.frozen) this.held.push([to, chunk]);
          else to.write(chunk);
        });
        from.on('end', () => to.end());
      }
    });
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  async restore(): Promise<void> {
    await this.start(this.port);
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    for (const [to, chunk] of this.held) if (!to.destroyed) to.write(chunk);
    this.held = [];
  }

  async stop(): Promise<void> {
    this.thaw();
    await this.cut();
  }
}

/** `url` with its host and port replaced by the relay's. */
export function relayed(url: string, proxy: TcpProxy): string {
  const relayedUrl = new URL(url);
  relayedUrl.host = `127.0.0.1:${proxy.port}`;
  return relayedUrl.toString();
}

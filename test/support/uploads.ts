import { request } from 'node:http';
import { connect } from 'node:net';

/**
 * POSTs `size` bytes with that Content-Length through Node's HTTP client, `chunkSize` at a time,
 * waiting for each write like a streaming client, until the body is sent or the answer comes.
 * Resolves to the status of the complete answer, or to the code of the error that ended it first
 * (EPIPE, ECONNRESET...).
 */
export async function streamingPost(
  url: string,
  { size, chunkSize, headers = {} }: { size: number; chunkSize: number; headers?: Record<string, string> },
): Promise<number | string> {
  const req = request(url, { method: 'POST', headers: { ...headers, 'Content-Length': String(size) } });
  req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
  const outcome = new Promise<number | string>((resolve) => {
    const failed = (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message);
    req.on('error', failed);
    req.on('response', (res) => {
      res.on('error', failed);
      res.on('end', () => resolve(res.statusCode!));
      res.resume();
    });
  });
  let settled = false;
  void outcome.then(() => (settled = true));
  const chunk = Buffer.alloc(chunkSize, 0x20);
  for (let sent = 0; sent < size && !settled; sent += chunkSize) {
    const written = new Promise<void>((resolve) => req.write(chunk.subarray(0, size - sent), () => resolve()));
    await Promise.race([written, outcome]);
  }
  if (!settled) req.end();
  const result = await outcome;
  req.destroy();
  return result;
}

export interface EndlessUpload {
  /** The status of the answer the server gave before closing, if any. */
  status: number | undefined;
  /** Body bytes the connection took before the server closed it. */
  bytesSent: number;
  /** From the answer to the connection's close. */
  msAfterAnswer: number;
}

/**
 * POSTs a chunked body that never ends on a raw connection that keeps sending after the server's
 * answer and its FIN: `chunkSize` bytes every `intervalMs`, or as fast as the connection takes
 * them when 0. Resolves once the server closes the connection.
 */
export function endlessPost(
  url: string,
  target: string,
  { chunkSize, intervalMs }: { chunkSize: number; intervalMs: number },
): Promise<EndlessUpload> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port), allowHalfOpen: true });
  let received = '';
  let answeredAt: number | undefined;
  let bytesSent = 0;
  socket.setEncoding('latin1');
  socket.on('data', (text: string) => {
    received += text;
    answeredAt ??= received.includes('\r\n\r\n') ? performance.now() : undefined;
  });
  socket.on('error', () => undefined);
  socket.write(
    `POST ${target} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
      'Transfer-Encoding: chunked\r\n\r\n',
  );
  const frame = Buffer.concat([
    Buffer.from(`${chunkSize.toString(16)}\r\n`),
    Buffer.alloc(chunkSize, 0x20),
    Buffer.from('\r\n'),
  ]);
  const send = () => {
    if (socket.destroyed) return;
    const more = socket.write(frame, (error) => {
      if (!error) bytesSent += frame.length;
    });
    if (intervalMs > 0) setTimeout(send, intervalMs);
    else if (more) setImmediate(send);
    else socket.once('drain', send);
  };
  send();
  return new Promise((resolve) => {
    socket.on('close', () => {
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(received)?.[1];
      resolve({
        status: status === undefined ? undefined : Number(status),
        bytesSent,
        msAfterAnswer: answeredAt === undefined ? NaN : performance.now() - answeredAt,
      });
    });
  });
}

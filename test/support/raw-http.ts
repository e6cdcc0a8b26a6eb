import { connect } from 'node:net';

/** One HTTP/1.1 answer as read off the wire. */
export interface RawAnswer {
  status: number;
  /** Header names lower-cased; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  ms: number;
}

/** What happened to a request: an answer, or how the connection ended without one. */
export type RawOutcome =
  | ({ kind: 'answer' } & RawAnswer)
  | { kind: 'reset' | 'closed' | 'timeout' | 'malformed'; detail: string; ms: number; bytes: number };

export interface RawRequest {
  method: string;
  /** The request target exactly as sent (may be anything, including bytes fetch refuses). */
  target: string | Buffer;
  /** Sent as given: names and values are not checked, so CR, LF and NUL reach the server. */
  headers?: [string | Buffer, string | Buffer][];
  body?: Buffer | string;
  /** Adds `Host`, `Connection: close` and `Content-Length` unless false. */
  defaults?: boolean;
  timeoutMs?: number;
  /** Reads nothing until the whole request is written (see sendRaw). */
  readAfterWrite?: boolean;
}

const CRLF = Buffer.from('\r\n');

/** Serialises a request without any of the checks an HTTP client makes. */
export function rawRequestBytes(host: string, request: RawRequest): Buffer {
  const body = typeof request.body === 'string' ? Buffer.from(request.body) : request.body;
  const headers = [...(request.headers ?? [])];
  if (request.defaults !== false) {
    const has = (name: string) => headers.some(([n]) => n.toString().toLowerCase() === name);
    if (!has('host')) headers.unshift(['Host', host]);
    if (!has('connection')) headers.push(['Connection', 'close']);
    if (body && !has('content-length') && !has('transfer-encoding'))
      headers.push(['Content-Length', String(body.length)]);
  }
  const parts: Buffer[] = [
    Buffer.from(`${request.method} `),
    Buffer.from(request.target),
    Buffer.from(' HTTP/1.1\r\n'),
  ];
  for (const [name, value] of headers) parts.push(Buffer.from(name), Buffer.from(': '), Buffer.from(value), CRLF);
  parts.push(CRLF);
  if (body) parts.push(body);
  return Buffer.concat(parts);
}

/**
 * Sends `bytes` on a fresh TCP connection and reads one answer. Resolves as soon as the answer
 * is complete (by Content-Length, chunked framing, or the connection closing), so an answer given
 * before the whole request was written still counts; never rejects.
 */
export function sendRaw(
  url: string,
  bytes: Buffer,
  options: { timeoutMs?: number; head?: boolean; readAfterWrite?: boolean } = {},
) {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise<RawOutcome>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (outcome: RawOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(
      () => finish({ kind: 'timeout', detail: 'no complete answer', ms: elapsed(), bytes: received.length }),
      options.timeoutMs ?? 10_000,
    );
    const tryParse = (ended: boolean) => {
      const parsed = parseAnswer(received, ended, options.head ?? false);
      if (parsed === 'incomplete') {
        if (ended)
          finish({ kind: 'closed', detail: 'closed before a complete answer', ms: elapsed(), bytes: received.length });
        return;
      }
      if (parsed === 'malformed') {
        finish({
          kind: 'malformed',
          detail: received.subarray(0, 200).toString('latin1'),
          ms: elapsed(),
          bytes: received.length,
        });
        return;
      }
      finish({ kind: 'answer', ...parsed, ms: elapsed() });
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // The server may answer and close before reading everything we send (e.g. a 413): what
      // arrived before the reset is still the answer.
      const parsed = parseAnswer(received, true, options.head ?? false);
      if (typeof parsed === 'object') finish({ kind: 'answer', ...parsed, ms: elapsed() });
      else finish({ kind: 'reset', detail: error.code ?? error.message, ms: elapsed(), bytes: received.length });
    });
    socket.on('close', () => tryParse(true));
    if (!options.readAfterWrite) {
      socket.write(bytes);
      return;
    }
    // Like a client that uploads the whole request before it reads: the head first, the rest a
    // moment later (after the server has answered), in pieces; then it reads.
    socket.pause();
    const end = Math.min(bytes.length, bytes.indexOf('\r\n\r\n') + 4 || bytes.length);
    socket.write(bytes.subarray(0, end));
    let at = end;
    const pump = () => {
      while (at < bytes.length && !socket.destroyed) {
        const piece = bytes.subarray(at, at + 64 * 1024);
        at += piece.length;
        if (!socket.write(piece)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.resume();
    };
    setTimeout(pump, 50);
  });
}

/** Builds and sends one request; see rawRequestBytes and sendRaw. */
export function rawRequest(url: string, request: RawRequest): Promise<RawOutcome> {
  return sendRaw(url, rawRequestBytes(new URL(url).host, request), {
    timeoutMs: request.timeoutMs,
    head: request.method === 'HEAD',
    readAfterWrite: request.readAfterWrite,
  });
}

function parseAnswer(data: Buffer, ended: boolean, head: boolean): Omit<RawAnswer, 'ms'> | 'incomplete' | 'malformed' {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) {
    const start = data.subarray(0, 9).toString('latin1');
    return 'HTTP/1.1 '.startsWith(start) || 'HTTP/1.0 '.startsWith(start) ? 'incomplete' : 'malformed';
  }
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
  if (!match) return 'malformed';
  const status = Number(match[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'malformed';
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const rest = data.subarray(end + 4);
  // 1xx answers (100 Continue) precede the real one.
  if (status >= 100 && status < 200) return parseAnswer(rest, ended, head);
  if (head || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
  if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
    const body = dechunk(rest);
    return body ?? (ended ? 'malformed' : 'incomplete');
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (!Number.isSafeInteger(length) || length < 0) return 'malformed';
    if (rest.length < length) return 'incomplete';
    return { status, headers, body: rest.subarray(0, length) };
  }
  return ended ? { status, headers, body: rest } : 'incomplete';

  function dechunk(input: Buffer): Omit<RawAnswer, 'ms'> | undefined {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = input.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(input.subarray(at, lineEnd).toString('latin1'), 16);
      if (Number.isNaN(size)) return undefined;
      if (size === 0) return { status, headers, body: Buffer.concat(chunks) };
      if (input.length < lineEnd + 2 + size + 2) return undefined;
      chunks.push(input.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
}

/** Sends `bytes` and returns everything the server sends back until it closes the connection. */
export function exchange(url: string, bytes: Buffer, timeoutMs = 5_000): Promise<Buffer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', done);
    socket.on('error', done);
    socket.write(bytes);
  });
}

import { randomUUID } from 'node:crypto';
import {
  createServer,
  maxHeaderSize,
  STATUS_CODES,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import onHeaders from 'on-headers';
import type { Logger } from '../logger.js';
import { HttpProblem, problemBody, sendProblem } from './problem.js';
import { requestIdOf } from './request-context.js';

/**
 * A closing connection goes on reading (and dropping) what the client still sends for this long,
 * and no longer: ample for a client on a slow link to finish its upload, then read the answer.
 */
const LINGER_MS = 5000;
/**
 * ...and at most this many times INBOUND_MAX_BODY, whichever comes first: a client that sends a
 * body several times too large whole before reading still reads its 413; one that never ends does not.
 */
const LINGER_MAX_BODIES = 4;

/**
 * What Node answers itself when it cannot parse a request (the same statuses as its defaults);
 * any other parse error is a 400.
 */
const PARSE_ERRORS: Record<string, HttpProblem> = {
  HPE_HEADER_OVERFLOW: new HttpProblem(431, `The request line and headers are larger than ${maxHeaderSize} bytes.`, {
    type: 'headers-too-large',
  }),
  HPE_CHUNK_EXTENSIONS_OVERFLOW: new HttpProblem(413, 'The chunk extensions are larger than allowed.', {
    type: 'too-large',
  }),
  HPE_PAUSED_H2_UPGRADE: new HttpProblem(400, 'HTTP/2 is not served here: send HTTP/1.1.', {
    type: 'malformed-request',
  }),
  ERR_HTTP_REQUEST_TIMEOUT: new HttpProblem(408, 'The request was not received in time.', {
    type: 'request-timeout',
  }),
};

const malformed = (detail: string) => new HttpProblem(400, detail, { type: 'malformed-request' });

export interface HttpServerOptions {
  /** INBOUND_MAX_BODY: what a closing connection still reads is bounded by it (LINGER_MAX_BODIES). */
  maxBody: number;
}

/**
 * The node:http server: `handle` serves every parsed request. Node's own answers to requests it
 * cannot serve (a parse error, oversized headers, a missing Host, CONNECT, an unknown Expect) are
 * plain text or a dropped connection by default; here they are problem+json like every other error.
 */
export function createHttpServer(handle: RequestListener, logger: Logger, { maxBody }: HttpServerOptions): Server {
  const linger = (socket: Duplex) => lingeringClose(socket, LINGER_MAX_BODIES * maxBody);
  /** The request each connection serves last, to know whether its body was read whole. */
  const lastRequest = new WeakMap<Socket, IncomingMessage>();
  const serving = (req: IncomingMessage, res: ServerResponse) => {
    lastRequest.set(req.socket, req);
    // An answer given before the body is read (a refusal: 401, 404, 413, 415...) ends the
    // connection, whichever route gave it, so what is left of the body is read within the linger
    // bounds, not for as long as the client sends.
    onHeaders(res, () => {
      if (hasUnreadBody(req)) res.setHeader('Connection', 'close');
    });
    // A body still unread once the answer is out is read and dropped, and counted (see
    // lingeringClose). Ahead of Node's own listener, which would drop it where nothing can count it.
    res.prependOnceListener('finish', () => {
      if (!req.complete) req.on('data', () => checkLinger(req.socket)).resume();
    });
  };

  // Host is checked below, so that its absence is a problem+json answer too.
  const server = createServer({ requireHostHeader: false }, (req, res) => {
    // A connection that answered `Connection: close` serves nothing more (RFC 9112 §9.6), though
    // its parser still reads what the client sends while it lingers.
    if (lingerBounds.has(req.socket)) {
      req.socket.destroy();
      return;
    }
    serving(req, res);
    if (req.httpVersion === '1.1' && req.headers.host === undefined) {
      refuse(req, res, malformed('An HTTP/1.1 request needs a Host header.'));
      return;
    }
    handle(req, res);
  });

  // Node closes a connection right after an answer that ends it (`Connection: close`). If the
  // client is still sending the request body then, the kernel answers the rest with a reset, which
  // can destroy the answer before the client reads it: any client that uploads the whole body
  // before reading (413, 415, 401 or 404 given early) would see a reset instead. So such a
  // connection stops writing, reads and drops the rest for a while (a bounded amount), then closes
  // (a lingering close).
  server.on('connection', (socket: Socket) => {
    const destroySoon = socket.destroySoon.bind(socket);
    socket.destroySoon = () => {
      const req = lastRequest.get(socket);
      if (!req || req.complete) destroySoon();
      else linger(socket);
    };
  });

  // Listening replaces Node's answer (a bodiless 417) and the request is not served.
  server.on('checkExpectation', (req, res) => {
    if (lingerBounds.has(req.socket)) {
      req.socket.destroy();
      return;
    }
    serving(req, res);
    refuse(req, res, new HttpProblem(417, 'Only "Expect: 100-continue" is supported.', { type: 'expectation-failed' }));
  });

  // Without a listener Node drops the connection without a word.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const problem = new HttpProblem(405, 'hookbus is not a proxy: CONNECT is not served.', {
      type: 'method-not-allowed',
      headers: { Allow: 'GET, HEAD, POST, PATCH, DELETE' },
    });
    answerOnSocket(socket, problem, requestIdOf(req));
    linger(socket);
    logger.info({ requestId: requestIdOf(req), method: 'CONNECT', status: 405 }, 'request refused');
  });

  const answered = new WeakSet<Duplex>();
  server.on('clientError', (error: NodeJS.ErrnoException & { reason?: string }, socket: Duplex) => {
    // Node reports every later chunk of a connection it could not parse again: answer once, and
    // count the rest against the linger bound.
    if (answered.has(socket)) {
      checkLinger(socket);
      return;
    }
    answered.add(socket);
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const problem =
      PARSE_ERRORS[error.code ?? ''] ??
      malformed(`The request is not valid HTTP/1.1${error.reason ? `: ${error.reason}` : ''}.`);
    const answer = () => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const requestId = randomUUID();
      answerOnSocket(socket, problem, requestId);
      linger(socket);
      logger.info({ requestId, code: error.code, status: problem.status }, 'malformed request refused');
    };
    // The response Node is writing on this connection, if any (what its own default checks too).
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!inFlight || inFlight.writableEnded) answer();
    else if (!inFlight.req.complete && !inFlight.headersSent) {
      // The error is in the body of the request being served: it can never be answered otherwise.
      answer();
    } else if (!inFlight.req.complete) socket.destroy();
    // A pipelined request after a complete one: answer it once the earlier answer is out, never inside it.
    else inFlight.once('finish', answer);
  });

  return server;
}

function refuse(req: IncomingMessage, res: ServerResponse, problem: HttpProblem): void {
  res.setHeader('X-Request-Id', requestIdOf(req));
  // The body (if any) is not read: the connection cannot carry another request.
  res.setHeader('Connection', 'close');
  sendProblem(res, problem);
}

/** Writes the problem as a whole HTTP/1.1 response on a socket that has no response object. */
function answerOnSocket(socket: Duplex, problem: HttpProblem, requestId: string): void {
  const body = problemBody(problem);
  const headers = {
    'Content-Type': 'application/problem+json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Request-Id': requestId,
    Connection: 'close',
    ...problem.extra.headers,
  };
  const head = [
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ].join('\r\n');
  socket.on('error', () => socket.destroy());
  socket.write(`${head}\r\n\r\n${body}`);
}

/** A request with a body (a length over 0, or chunked) that has not been read to its end. */
const hasUnreadBody = (req: IncomingMessage) =>
  !req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0);

/**
 * Connections closing, by the `bytesRead` past which they are cut: they read and drop what still
 * comes, and serve no further request.
 */
const lingerBounds = new WeakMap<Duplex, number>();

/** Called as a closing connection reads: past its bound, it is cut. */
function checkLinger(socket: Duplex): void {
  const bound = lingerBounds.get(socket);
  if (bound !== undefined && (socket as Socket).bytesRead > bound) socket.destroy();
}

/**
 * Stops writing, reads and drops what the client still sends (for up to LINGER_MS and `maxBytes`),
 * then closes.
 */
function lingeringClose(socket: Duplex, maxBytes: number): void {
  if (socket.destroyed) return;
  lingerBounds.set(socket, (socket as Socket).bytesRead + maxBytes);
  if (socket.writable) socket.end();
  const close = () => {
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };
  if (socket.readableEnded) {
    close();
    return;
  }
  const cut = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(cut));
  socket.once('end', close);
  // A socket Node's parser still reads is left to it: what it reads comes as the body of the
  // request it serves, or as clientError once unparsable, and each is checked. One it let go of
  // (CONNECT) is drained and checked here.
  if (socket.listenerCount('data') === 0) socket.on('data', () => checkLinger(socket)).resume();
}

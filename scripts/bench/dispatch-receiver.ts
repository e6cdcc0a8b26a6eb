/**
 * The dispatch benchmark's receiver: a bare node:http server that answers every POST 200 with an
 * empty body and tallies the envelopes it gets (distinct ids, duplicates, first and last arrival,
 * `arrival - data.sentAt` when the event carries one). Driven over IPC by scripts/bench-dispatch.ts
 * (see dispatch-protocol.ts); it runs in its own process so that it competes with hookbus and the
 * baselines alike, never with one of them in-process. Prints `listening <port>` once it listens.
 */
import { createServer } from 'node:http';
import {
  ID_PATTERN,
  now,
  SENT_AT_PATTERN,
  type FromReceiver,
  type Latency,
  type PhaseStats,
  type ToReceiver,
} from './dispatch-protocol.js';

interface Phase {
  prefix: string;
  count: number;
  seen: Set<string>;
  requests: number;
  firstAt: number;
  lastAt: number;
  latencies: number[];
}

let phase: Phase | undefined;

const send = (message: FromReceiver) => process.send?.(message);

function percentiles(values: number[]): Latency | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

/** Counts one body towards the current phase; bodies of an earlier phase (late duplicates) are ignored. */
function tally(body: string, arrivedAt: number): void {
  const id = ID_PATTERN.exec(body)?.[1];
  if (!phase || !id?.startsWith(phase.prefix)) return;
  phase.requests++;
  if (phase.seen.has(id)) return;
  phase.seen.add(id);
  if (phase.seen.size === 1) {
    phase.firstAt = arrivedAt;
    send({ type: 'first', prefix: phase.prefix });
  }
  phase.lastAt = arrivedAt;
  const sentAt = SENT_AT_PATTERN.exec(body)?.[1];
  if (sentAt) phase.latencies.push(arrivedAt - Number(sentAt));
  if (phase.seen.size === phase.count) send({ type: 'done', prefix: phase.prefix, stats: statsOf(phase) });
}

function statsOf({ seen, requests, firstAt, lastAt, latencies }: Phase): PhaseStats {
  return { distinct: seen.size, requests, firstAt, lastAt, latency: percentiles(latencies) };
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    // Arrival is when the whole body is in, before any of the receiver's own work.
    const arrivedAt = now();
    res.writeHead(200).end();
    tally(Buffer.concat(chunks).toString('latin1'), arrivedAt);
  });
});
// Senders keep their connections for the whole run: never close an idle one under them.
server.keepAliveTimeout = 10 * 60_000;
server.headersTimeout = server.keepAliveTimeout + 1000;
server.requestTimeout = 0;

process.on('message', (message: ToReceiver) => {
  if (message.type === 'expect') {
    const { prefix, count } = message;
    phase = { prefix, count, seen: new Set(), requests: 0, firstAt: 0, lastAt: 0, latencies: [] };
  } else if (phase) {
    send({ type: 'status', prefix: phase.prefix, stats: statsOf(phase) });
  }
});
// The benchmark's exit closes the IPC channel: go with it, whatever way it went. Ctrl-C reaches
// the whole process group; the benchmark decides when the receiver goes.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => undefined);

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});

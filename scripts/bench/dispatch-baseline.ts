/**
 * The dispatch benchmark's baselines: a bare amqplib consumer with DISPATCH_PREFETCH unacked
 * messages that POSTs each message's body, as is, with node:http and a keep-alive agent, and acks
 * after the 2xx.
 *
 *   (a) without MONGODB_URI: nothing else — the physical limit of broker + HTTP on this machine.
 *   (b) with MONGODB_URI: also one record per delivery, written with the driver's insertMany in
 *       batches (64 pending, or what one turn of the event loop gathered); each message is acked
 *       only once its record's batch is written.
 *
 * Usage: AMQP_URL=… QUEUE=… PREFETCH=64 TARGET=http://… [MONGODB_URI=… COLLECTION=…] tsx dispatch-baseline.ts
 * Prints `consuming` once its consumer is registered.
 */
import { Agent, request } from 'node:http';
import amqplib, { type ConsumeMessage } from 'amqplib';
import mongoose from 'mongoose';

const QUEUE = process.env.QUEUE!;
const PREFETCH = Number(process.env.PREFETCH ?? 64);
const TARGET = new URL(process.env.TARGET!);
const BATCH = 64;

interface Attempt {
  n: number;
  at: Date;
  durationMs: number;
  status: number;
}

/** Shaped like one of hookbus's delivery records, less what only hookbus knows. */
interface DeliveryDoc {
  _id: string;
  eventId: string;
  status: 'success';
  attempts: Attempt[];
  payload: string;
}

/** Gathers records into insertMany calls; each write resolves when its batch is stored. */
class BatchWriter {
  private pending: { record: DeliveryDoc; resolve: () => void; reject: (error: Error) => void }[] = [];
  private scheduled = false;

  constructor(private readonly collection: mongoose.mongo.Collection<DeliveryDoc>) {}

  write(record: DeliveryDoc): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      if (this.pending.length >= BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.collection
      .insertMany(
        batch.map((p) => p.record),
        { ordered: false },
      )
      .then(
        () => batch.forEach((p) => p.resolve()),
        (error: Error) => batch.forEach((p) => p.reject(error)),
      );
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: PREFETCH });

/** POSTs the body; resolves with the status once the (empty) response body is read. */
function post(body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      TARGET,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

async function openWriter(uri: string): Promise<BatchWriter> {
  const client = await new mongoose.mongo.MongoClient(uri).connect();
  return new BatchWriter(client.db().collection<DeliveryDoc>(process.env.COLLECTION ?? 'deliveries'));
}

const writer = process.env.MONGODB_URI ? await openWriter(process.env.MONGODB_URI) : undefined;
const connection = await amqplib.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const channel = await connection.createChannel();
await channel.prefetch(PREFETCH);

async function handle(message: ConsumeMessage): Promise<void> {
  const at = new Date();
  const started = performance.now();
  try {
    const status = await post(message.content);
    if (status < 200 || status >= 300) throw new Error(`answered ${status}`);
    if (writer) {
      // The id is read only where a record needs it: (a) stays a pure relay.
      const { id } = JSON.parse(message.content.toString('utf8')) as { id: string };
      await writer.write({
        _id: `msg_${id}`,
        eventId: id,
        status: 'success',
        attempts: [{ n: 1, at, durationMs: performance.now() - started, status }],
        payload: message.content.toString('utf8'),
      });
    }
    channel.ack(message);
  } catch (error) {
    process.stderr.write(`baseline: ${(error as Error).message}; requeued\n`);
    channel.nack(message);
  }
}

await channel.consume(QUEUE, (message) => message && void handle(message));
process.stdout.write('consuming\n');
process.on('SIGTERM', () => {
  void connection.close().finally(() => process.exit(0));
});

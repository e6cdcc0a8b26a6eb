/**
 * The ingest benchmark's baseline: a bare node:http server that parses the JSON body, publishes
 * it on one amqplib confirm channel (persistent, mandatory, many publishes in flight) and answers
 * 202 after the broker's confirm. Usage: PORT=… AMQP_URL=… EXCHANGE=… tsx ingest-baseline.ts
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import amqplib from 'amqplib';

const exchange = process.env.EXCHANGE ?? 'bench.inbound';
const connection = await amqplib.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const channel = await connection.createConfirmChannel();
await channel.assertExchange(exchange, 'topic', { durable: true });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    try {
      JSON.parse(raw.toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    const id = randomUUID();
    const envelope = Buffer.concat([Buffer.from(`{"id":"${id}","data":`), raw, Buffer.from('}')]);
    channel.publish(
      exchange,
      'event.bench.baseline.ping',
      envelope,
      { persistent: true, mandatory: true, messageId: id, contentType: 'application/json' },
      (err) => {
        if (err) res.writeHead(503).end();
        else res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
      },
    );
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void connection.close().then(() => process.exit(0));
});

import { execFileSync } from 'node:child_process';
import amqp from 'amqplib';
import { AMQP_URL, TEST_QUEUE_PREFIX } from './env.js';

/** Vitest globalSetup: the process tests run dist/main.js, so build it first, every run. */
export default function build(): () => Promise<void> {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  return deleteTestQueues;
}

const named = (what: 'queues' | 'exchanges') =>
  execFileSync('rabbitmqctl', [`list_${what}`, '-q', '--no-table-headers', 'name'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.startsWith(`${TEST_QUEUE_PREFIX}_`));

/** Durable queues and exchanges that tests' hookbus declared would otherwise pile up in the broker. */
async function deleteTestQueues(): Promise<void> {
  const queues = named('queues');
  const exchanges = named('exchanges');
  if (queues.length === 0 && exchanges.length === 0) return;
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  for (const name of queues) await channel.deleteQueue(name);
  for (const name of exchanges) await channel.deleteExchange(name);
  await channel.close();
  await connection.close();
}

import { execFileSync } from 'node:child_process';
import amqp from 'amqplib';
import { AMQP_URL, TEST_QUEUE_PREFIX } from './env.js';

/** Vitest globalSetup: the process tests run dist/main.js, so build it first, every run. */
export default function build(): () => Promise<void> {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  return deleteTestQueues;
}

/** Durable queues that tests' dispatchers declared would otherwise pile up in the broker. */
async function deleteTestQueues(): Promise<void> {
  const names = execFileSync('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', 'name'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.startsWith(`${TEST_QUEUE_PREFIX}_`));
  if (names.length === 0) return;
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  for (const name of names) await channel.deleteQueue(name);
  await channel.close();
  await connection.close();
}

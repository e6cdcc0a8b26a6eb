/**
 * Ingest benchmark: hookbus's POST /wh/:apiToken/:token against a baseline measured in the same
 * run (scripts/bench/ingest-baseline.ts: node:http + JSON.parse + one confirm channel), both
 * publishing to the same exchange and durable queue on the local RabbitMQ.
 *
 *   npm run build && npx tsx scripts/bench-ingest.ts [--duration 10] [--connections 50]
 *
 * Prints req/s, p50/p99 latency and non-2xx counts of each, and the ratios. Target on two cores:
 * hookbus >= 0.7x the baseline's req/s, p99 <= 2x the baseline's, zero non-2xx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import amqplib from 'amqplib';
import autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import { numberArg } from './bench/args.js';

const DURATION = numberArg('duration', 10);
const CONNECTIONS = numberArg('connections', 50);
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const MONGODB_URI = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/hookbus_bench';
const EXCHANGE = `bench.inbound.${randomBytes(3).toString('hex')}`;
const QUEUE = `${EXCHANGE}.sink`;
const root = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));

/** A JSON body of exactly 1 KiB shaped like a small GitHub push. */
const BODY = (() => {
  const shape = (message: string) =>
    JSON.stringify({
      ref: 'refs/heads/main',
      commits: [{ id: randomBytes(20).toString('hex'), timestamp: new Date().toISOString(), message }],
      repository: { full_name: 'acme/widgets' },
    });
  return shape('x'.repeat(1024 - Buffer.byteLength(shape(''))));
})();
/** --profile DIR: write a V8 CPU profile of the hookbus process there (see scripts/bench/profile-summary.ts). */
const PROFILE_DIR = process.argv.includes('--profile')
  ? process.argv[process.argv.indexOf('--profile') + 1]
  : undefined;

/** Starts a server and resolves with it and the port it printed (matched by `port`'s group). */
function startChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  port: RegExp,
  children: ChildProcess[],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = port.exec(out);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${out}`)));
  });
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await fetch(url).catch(() => undefined))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(name: string, url: string, duration = DURATION): Promise<Result> {
  const result = await autocannon({
    url,
    method: 'POST',
    connections: CONNECTIONS,
    duration,
    headers: { 'content-type': 'application/json' },
    body: BODY,
  });
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

const amqp = await amqplib.connect(AMQP_URL);
const admin = await amqp.createChannel();
await admin.assertExchange(EXCHANGE, 'topic', { durable: true });
// A durable queue, capped so a long run cannot fill the disk; both servers publish into it.
await admin.assertQueue(QUEUE, { durable: true, arguments: { 'x-max-length': 100_000, 'x-overflow': 'drop-head' } });
await admin.bindQueue(QUEUE, EXCHANGE, 'event.#');

const children: ChildProcess[] = [];
try {
  const { port: baselinePort } = await startChild(
    ['--import', 'tsx', root('scripts/bench/ingest-baseline.ts')],
    { EXCHANGE, AMQP_URL, PORT: '0' },
    /listening (\d+)/,
    children,
  );
  const secret = randomBytes(16).toString('hex');
  const { port: hookbusPort } = await startChild(
    [...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), root('dist/main.js')],
    {
      NODE_ENV: 'production',
      HOOKBUS_ROLES: 'api,ingest',
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: secret,
      INBOUND_EXCHANGE: EXCHANGE,
      AMQP_URL,
      MONGODB_URI,
      LOG_LEVEL: 'info',
    },
    /"port":(\d+),"roles":.*"msg":"hookbus listening"/,
    children,
  );

  await waitFor(`http://127.0.0.1:${hookbusPort}/readyz`);
  const token = jwt.sign({ tenantId: 'bench' }, secret);
  const created = await fetch(`http://127.0.0.1:${hookbusPort}/wh/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ datasource: 'github', event: 'push', tsField: 'commits[0].timestamp' }),
  });
  const hook = (await created.json()) as { apiToken: string; token: string };
  const hookUrl = `http://127.0.0.1:${hookbusPort}/wh/${hook.apiToken}/${hook.token}`;
  const baselineUrl = `http://127.0.0.1:${baselinePort}/`;

  process.stdout.write(`body ${Buffer.byteLength(BODY)} bytes, ${CONNECTIONS} connections, ${DURATION} s each\n`);
  await load('warm-up baseline', baselineUrl, 2);
  await load('warm-up hookbus', hookUrl, 2);
  const results = [await load('baseline', baselineUrl), await load('hookbus', hookUrl)];

  const row = (r: Result) =>
    `${r.name.padEnd(10)} ${r.rps.toFixed(0).padStart(8)} req/s   p50 ${String(r.p50).padStart(4)} ms   p99 ${String(r.p99).padStart(4)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`;
  for (const r of results) process.stdout.write(`${row(r)}\n`);
  const [base, ours] = results as [Result, Result];
  const rpsRatio = ours.rps / base.rps;
  const p99Ratio = ours.p99 / Math.max(base.p99, 1);
  const pass = rpsRatio >= 0.7 && p99Ratio <= 2 && ours.non2xx === 0 && ours.errors === 0;
  process.stdout.write(
    `hookbus/baseline: req/s ${rpsRatio.toFixed(2)}x (target >= 0.70), p99 ${p99Ratio.toFixed(2)}x (target <= 2.00), non-2xx ${ours.non2xx} (target 0): ${pass ? 'PASS' : 'FAIL'}\n`,
  );
  process.exitCode = pass ? 0 : 1;
} finally {
  for (const child of children) child.kill('SIGTERM');
  await admin.deleteQueue(QUEUE).catch(() => undefined);
  await admin.deleteExchange(EXCHANGE).catch(() => undefined);
  await amqp.close();
}

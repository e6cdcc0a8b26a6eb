import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';
import { testEnv } from './env.js';
import { eventually } from './wait.js';

/** Starts hookbus in-process on port 0 with the test environment plus `overrides`. */
export async function startTestApp(overrides: Record<string, string> = {}): Promise<App> {
  const config = loadConfig(testEnv(overrides));
  return startApp(config, { logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), httpDrainMs: 2000 });
}

export async function readiness(app: { url: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${app.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function waitReady(app: { url: string }, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => (await readiness(app)).status === 200, timeoutMs, 'readyz 200');
}

/** The value of one sample in the Prometheus text exposition, or undefined. */
export async function metricValue(app: { url: string }, sample: string): Promise<number | undefined> {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

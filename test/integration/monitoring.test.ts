import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startTestApp, waitReady } from '../support/app.js';
import { subscribe } from '../support/dispatch.js';
import { uniqueName } from '../support/env.js';
import { createHook, postInbound, type IssuedHook } from '../support/hooks.js';
import { bearer } from '../support/jwt.js';
import { Receiver } from '../support/receiver.js';
import { eventually } from '../support/wait.js';

const run = promisify(execFile);
const CONFIG = fileURLToPath(new URL('../../config/', import.meta.url));
const RULES = join(CONFIG, 'prometheus/alerts.yml');
const DASHBOARD = join(CONFIG, 'grafana/dashboards/hookbus.json');

interface Dashboard {
  templating: { list: { name: string }[] };
  panels: { type: string; title: string; targets?: { expr: string }[] }[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
/** Every panel query, with Grafana's variables as a dashboard user would have them: all instances. */
const panelQueries = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({
    panel: p.title,
    expr: t.expr.replaceAll('$instance', '.*').replaceAll('$__rate_interval', '1m'),
  })),
);
/** Each rule's `expr`: its value up to the next key of the rule (`for:`, `labels:`, ...). */
const ruleExprs = [...readFileSync(RULES, 'utf8').matchAll(/^( +)expr: (?:>-\n)?([\s\S]*?)(?=\n\1\w+:)/gm)].map((m) =>
  m[2]!.replace(/\s+/g, ' ').trim(),
);

/** Metric names in PromQL text: hookbus's own, the Node.js and process defaults, and `up`. */
const metricNames = (expr: string) =>
  [...expr.matchAll(/\b(hookbus_[a-z_]+|nodejs_[a-z0-9_]+|process_[a-z_]+|up)\b/g)].map((m) => m[1]!);

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A missing tool is a failure with a way out, not a skipped test. */
async function requireTool(name: string): Promise<void> {
  await run(name, ['--version']).catch(() => {
    throw new Error(`${name} is not installed: apt-get install prometheus (Debian's package has both tools)`);
  });
}

describe("monitoring, checked by Prometheus's own tools against a running hookbus", () => {
  let app: App;
  let receiver: Receiver;
  let prometheus: ChildProcess;
  let promUrl: string;
  let dir: string;
  let scrape: string;
  let hook: IssuedHook;
  const tenant = uniqueName('t');

  const query = async (expr: string) => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };

  /** How many times Prometheus has scraped hookbus in the last minute. */
  const scrapes = async () => {
    const up = await query('count_over_time(up{job="hookbus"}[1m])').catch(() => undefined);
    return Number((up?.data?.result[0] as { value?: [number, string] } | undefined)?.value?.[1] ?? 0);
  };

  beforeAll(async () => {
    await requireTool('promtool');
    await requireTool('prometheus');
    app = await startTestApp({ DELIVERY_RETRY_SCHEDULE: '100ms', DELIVERY_TIMEOUT_MS: '2000' });
    await waitReady(app);
    receiver = await Receiver.start((req) => (req.body.includes('"fail"') ? { status: 500 } : { status: 200 }));
    await subscribe(app, tenant, { url: receiver.url, events: ['github.*'] });
    hook = await createHook(app, tenant, { datasource: 'github', event: 'push' });
    // A little traffic through every stage: inbound published and refused, deliveries that
    // succeed, retry and fail, an API call.
    const traffic = async (round: number) => {
      for (let i = 0; i < 5; i++) {
        await postInbound(app, hook, JSON.stringify({ n: i, result: i === 0 ? 'fail' : 'ok' }));
      }
      await postInbound(app, { ...hook, token: 'nope' }, '{}');
      await fetch(`${app.url}/api/webhooks`, { headers: bearer(tenant) });
      await eventually(() => receiver.requests.length >= 6 * round, 15_000, 'deliveries to arrive');
    };
    // Once before Prometheus starts, so that every labelled series exists before its first scrape
    // (a series that appears with its first increment has no rate yet), and once between scrapes.
    await traffic(1);

    dir = mkdtempSync(join(tmpdir(), 'hookbus-prometheus-'));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: {scrape_interval: 1s, evaluation_interval: 1s}',
        `rule_files: ['${RULES}']`,
        'scrape_configs:',
        '  - job_name: hookbus',
        `    static_configs: [{targets: ['${new URL(app.url).host}']}]`,
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    // Scraped before the traffic, so every rate starts from a sample taken before it.
    await eventually(async () => (await scrapes()) >= 2, 30_000, 'Prometheus to scrape hookbus twice');

    await traffic(2);
    // Scraped after it (the panels' rate windows, 1 m here, then hold samples from before and after).
    const before = await scrapes();
    await eventually(async () => (await scrapes()) >= before + 3, 30_000, 'three scrapes after the traffic');
    scrape = await (await fetch(`${app.url}/metrics`)).text();
  });

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await app?.stop();
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('When /metrics is scraped, then every metric of SPEC §6 has its name, type and labels, and moved with the traffic', () => {
    const contract: Record<string, [string, string[]]> = {
      hookbus_http_requests_total: ['counter', ['method', 'route', 'status_code']],
      hookbus_http_request_duration_seconds: ['histogram', ['method', 'route', 'status_code']],
      hookbus_inbound_requests_total: ['counter', ['outcome']],
      hookbus_inbound_publish_duration_seconds: ['histogram', []],
      hookbus_dispatch_messages_total: ['counter', ['outcome']],
      hookbus_delivery_attempts_total: ['counter', ['outcome']],
      hookbus_delivery_attempt_duration_seconds: ['histogram', ['outcome']],
      hookbus_deliveries_in_flight: ['gauge', []],
      hookbus_deliveries_retrying: ['gauge', []],
      hookbus_dependency_up: ['gauge', ['dependency']],
    };
    const types = new Map(
      [...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)]
        .filter((m) => m[1]!.startsWith('hookbus_'))
        .map((m) => [m[1]!, m[2]!]),
    );
    expect(Object.fromEntries(types)).toEqual(Object.fromEntries(Object.entries(contract).map(([n, [t]]) => [n, t])));
    const samples = scrape
      .split('\n')
      .filter((line) => line.startsWith('hookbus_'))
      .map((line) => {
        const [, name, labels, value] = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)!;
        const pairs = [...(labels ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!] as const);
        return { name: name!, labels: Object.fromEntries(pairs), value: Number(value) };
      });
    const base = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    for (const sample of samples) {
      const [, labelNames] = contract[base(sample.name)] ?? contract[sample.name]!;
      const own = Object.keys(sample.labels).filter((l) => !(l === 'le' && sample.name.endsWith('_bucket')));
      expect(own.sort(), sample.name).toEqual([...labelNames].sort());
      // No label value is a tenant, a token, a URL or an id.
      for (const value of Object.values(sample.labels)) {
        for (const secret of [tenant, hook.token, hook.apiToken, receiver.url]) expect(value).not.toContain(secret);
      }
    }
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0);
    // Two rounds of traffic.
    expect(value('hookbus_http_requests_total', { route: '/wh/:apiToken/:token', status_code: '202' })).toBe(10);
    expect(value('hookbus_http_request_duration_seconds_count', { route: '/wh/:apiToken/:token' })).toBe(12);
    expect(value('hookbus_inbound_requests_total', { outcome: 'published' })).toBe(10);
    expect(value('hookbus_inbound_requests_total', { outcome: 'unknown_hook' })).toBe(2);
    expect(value('hookbus_inbound_publish_duration_seconds_count')).toBe(10);
    expect(value('hookbus_dispatch_messages_total', { outcome: 'dispatched' })).toBe(10);
    expect(value('hookbus_delivery_attempts_total', { outcome: 'success' })).toBe(8);
    expect(value('hookbus_delivery_attempts_total', { outcome: 'retry' })).toBe(2);
    expect(value('hookbus_delivery_attempts_total', { outcome: 'failed' })).toBe(2);
    expect(value('hookbus_delivery_attempt_duration_seconds_count')).toBe(12);
    expect(value('hookbus_dependency_up', { dependency: 'mongodb' })).toBe(1);
    expect(value('hookbus_dependency_up', { dependency: 'rabbitmq' })).toBe(1);
    // (hookbus_deliveries_in_flight and hookbus_deliveries_retrying move in dispatch-retries.test.ts.)

    // Buckets fit what they measure: publish from 0.1 ms, attempts up to DELIVERY_TIMEOUT_MS (2 s here).
    const les = (name: string) => [
      ...new Set(samples.filter((s) => s.name === `${name}_bucket`).map((s) => s.labels.le!)),
    ];
    expect(les('hookbus_inbound_publish_duration_seconds')[0]).toBe('0.0001');
    expect(les('hookbus_delivery_attempt_duration_seconds').slice(-2)).toEqual(['2', '+Inf']);
  });

  it('When promtool checks the alert rules, then they are valid', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', RULES]);
    expect(stdout).toContain('SUCCESS: 6 rules found');
  });

  it('When promtool runs the alert rules unit tests, then each alert fires when it should and only then', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', join(CONFIG, 'prometheus/alerts.test.yml')]);
    expect(stdout).toContain('SUCCESS');
    // Every alert has a test case.
    const tests = readFileSync(join(CONFIG, 'prometheus/alerts.test.yml'), 'utf8');
    for (const alert of readFileSync(RULES, 'utf8').matchAll(/- alert: (\w+)/g)) {
      expect(tests, alert[1]).toContain(`alertname: ${alert[1]}`);
    }
  });

  it('When promtool checks a live /metrics scrape, then it has nothing to say', async () => {
    const child = execFile('promtool', ['check', 'metrics']);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin!.end(scrape);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(output).toBe('');
    expect(code).toBe(0);
  });

  it('When the dashboard and the rules name a metric, then a running hookbus exports it', () => {
    const exported = new Set(
      scrape
        .split('\n')
        .filter((line) => line && !line.startsWith('#'))
        .map((line) => line.split(/[{ ]/)[0]!),
    );
    const used = new Set([...panelQueries.map((q) => q.expr), ...ruleExprs].flatMap(metricNames));
    expect(ruleExprs).toHaveLength(6);
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) {
      if (name === 'up') continue; // Prometheus's own
      expect(exported.has(name), `${name} in /metrics`).toBe(true);
    }
  });

  it('When Prometheus evaluates each dashboard panel query, then it returns data, and the traffic shows', async () => {
    expect(panelQueries.length).toBeGreaterThanOrEqual(15);
    // Panels that the traffic above must move; every panel must at least have a number.
    const moved = new Set([
      'hookbus up',
      'Dependencies',
      'Ingest rate by outcome',
      'Ingest latency',
      'Publish-confirm latency',
      'Dispatch rate by outcome',
      'Delivery success ratio',
      'Attempt latency',
      'Retries and failures',
      'Heap',
    ]);
    for (const { panel, expr } of panelQueries) {
      const answer = await query(expr);
      expect(answer.status, `${panel}: ${expr} ${answer.error ?? ''}`).toBe('success');
      const values = (answer.data!.result as { value: [number, string] }[]).map((r) => Number(r.value[1]));
      expect(values.length, `${panel}: ${expr} returned no series`).toBeGreaterThan(0);
      expect(values.some(Number.isFinite), `${panel}: ${expr} gave ${values.join(', ')}`).toBe(true);
      if (moved.has(panel)) expect(Math.max(...values.filter(Number.isFinite)), `${panel}: ${expr}`).toBeGreaterThan(0);
    }
  });

  it('When Prometheus loads the alert rules, then each evaluates without error and none fires', async () => {
    const rules = await eventually(
      async () => {
        const res = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
          data: { groups: { rules: { name: string; health: string; lastError?: string; state: string }[] }[] };
        };
        const all = res.data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined;
      },
      15_000,
      'the rules to be evaluated',
    );
    expect(rules.map((r) => r.name).sort()).toEqual([
      'HookbusDeliveryFailureRatioHigh',
      'HookbusDependencyDown',
      'HookbusDown',
      'HookbusEventLoopLagHigh',
      'HookbusInbound5xxRatioHigh',
      'HookbusRetryBacklogGrowing',
    ]);
    for (const rule of rules) {
      expect(rule.health, `${rule.name}: ${rule.lastError ?? ''}`).toBe('ok');
      // Each waits its `for:` (a minute or more): nothing can be firing yet.
      expect(rule.state, rule.name).not.toBe('firing');
    }
    const text = readFileSync(RULES, 'utf8');
    expect(text.match(/summary:/g)).toHaveLength(6);
    expect(text.match(/description:/g)).toHaveLength(6);
    expect(dashboard.templating.list.map((v) => v.name)).toContain('instance');
  });

  it('When the dashboard is read, then every panel has a unit, thresholds, a query per instance and a description', () => {
    const panels = dashboard.panels.filter((p) => p.type !== 'row') as unknown as {
      title: string;
      description: string;
      datasource: { uid: string };
      fieldConfig: { defaults: { unit?: string; thresholds?: { steps: unknown[] } } };
      targets: { expr: string }[];
    }[];
    expect(panels.length).toBeGreaterThanOrEqual(15);
    for (const panel of panels) {
      expect(panel.fieldConfig.defaults.unit, panel.title).toBeTruthy();
      expect(panel.fieldConfig.defaults.thresholds?.steps.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource.uid, panel.title).toBe('prometheus');
      expect(panel.description, panel.title).toBeTruthy();
      for (const target of panel.targets) expect(target.expr, panel.title).toContain('$instance');
    }
  });
});

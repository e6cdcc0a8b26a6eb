/**
 * The dispatch benchmark's child processes (scripts/bench-dispatch.ts): starting and stopping
 * them, reading their CPU time, and the receiver seen from the benchmark's side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { now, type FromReceiver, type PhaseStats, type ToReceiver } from './dispatch-protocol.js';

export interface Started {
  child: ChildProcess;
  /** Resolves with the match of `ready` on the child's stdout; rejects if the child exits first. */
  ready: Promise<RegExpExecArray>;
  /** pino lines at warn and above, counted by level and message. */
  warnings: Map<string, number>;
}

const LEVELS: Record<string, string> = { '40': 'warn', '50': 'error', '60': 'fatal' };

/**
 * Spawns a node process. Its stdout is read for `ready` and kept drained (a full pipe would stall
 * the child). pino lines at warn and above are counted, and the first of each message is echoed
 * to stderr: a run that goes wrong says why without one line per failed write.
 */
export function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp, ipc = false): Started {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit', ...(ipc ? ['ipc' as const] : [])],
  });
  const warnings = new Map<string, number>();
  const count = (line: string) => {
    const level = /"level":(\d+)/.exec(line)?.[1];
    if (!level || !LEVELS[level]) return;
    const key = `${LEVELS[level]}: ${/"msg":"([^"]*)"/.exec(line)?.[1] ?? line}`;
    if (!warnings.has(key)) process.stderr.write(`[${name}] ${line}\n`);
    warnings.set(key, (warnings.get(key) ?? 0) + 1);
  };
  const readyPromise = new Promise<RegExpExecArray>((resolve, reject) => {
    let partial = '';
    let matched = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        count(line);
        const match = matched ? null : ready.exec(line);
        if (match) {
          matched = true;
          resolve(match);
        }
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`${name} exited (${signal ?? code}) before it was ready`)));
  });
  readyPromise.catch(() => undefined); // awaited by the caller; a later exit must not crash the run
  return { child, ready: readyPromise, warnings };
}

/** SIGTERM, then SIGKILL after 15 s; resolves once the process has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** User + system CPU seconds of a process so far, from /proc (Linux only; undefined elsewhere). */
export function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of proc(5), in clock ticks: USER_HZ is 100 on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

export async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await fetch(url).catch(() => undefined))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

export interface Collected {
  stats: PhaseStats;
  /** False when the time limit came first. */
  complete: boolean;
  /** Distinct arrivals once a second: how the rate evolved. */
  timeline: { at: number; distinct: number }[];
}

export interface CollectOptions {
  /** The process sending: its exit fails the phase. */
  sender: ChildProcess;
  /** Give up (resolving, incomplete) this long after the phase began. */
  limitMs: number;
  /** A phase fails when nothing new arrived for this long. */
  stallMs: number;
  onFirst?: () => void;
}

/** The receiver child (scripts/bench/dispatch-receiver.ts), and the phases it tallies. */
export class Receiver {
  private readonly listeners = new Set<(message: FromReceiver) => void>();

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on('message', (message: FromReceiver) => this.listeners.forEach((listener) => listener(message)));
    // A send after the receiver died emits 'error' on the child: its exit fails the phase instead.
    child.on('error', () => undefined);
  }

  static async start(script: string): Promise<Receiver> {
    const { child, ready } = startChild('receiver', ['--import', 'tsx', script], {}, /^listening (\d+)/, true);
    const [, port] = await ready;
    return new Receiver(child, `http://127.0.0.1:${port}/hooks/bench`);
  }

  /** Tallies the envelopes whose id starts with `prefix` until `count` distinct ones arrived. */
  collect(prefix: string, count: number, options: CollectOptions): Promise<Collected> {
    const { sender, limitMs, stallMs, onFirst } = options;
    this.send({ type: 'expect', prefix, count });
    const startedAt = now();
    const timeline: Collected['timeline'] = [];
    return new Promise((resolve, reject) => {
      let changedAt = startedAt;
      const poll = setInterval(() => this.send({ type: 'status' }), 1000);
      const finish = (settle: () => void) => {
        clearInterval(poll);
        this.listeners.delete(listener);
        sender.off('exit', exited);
        this.child.off('exit', exited);
        settle();
      };
      const exited = () => finish(() => reject(new Error(`a child exited before ${count} events arrived`)));
      const listener = (message: FromReceiver) => {
        if (message.prefix !== prefix) return;
        if (message.type === 'first') return onFirst?.();
        const { stats } = message;
        if (message.type === 'done') return finish(() => resolve({ stats, complete: true, timeline }));
        const at = now();
        if (stats.distinct !== timeline.at(-1)?.distinct) changedAt = at;
        timeline.push({ at, distinct: stats.distinct });
        if (at - startedAt > limitMs) finish(() => resolve({ stats, complete: false, timeline }));
        else if (at - changedAt > stallMs) {
          finish(() => reject(new Error(`${stats.distinct} of ${count} arrived, then none for ${stallMs / 1000} s`)));
        }
      };
      this.listeners.add(listener);
      sender.once('exit', exited);
      this.child.once('exit', exited);
    });
  }

  /** Resolves once nothing new of the current phase arrived for `quietMs`, or after `limitMs`. */
  async quiet(quietMs: number, limitMs: number): Promise<void> {
    const startedAt = now();
    let distinct = -1;
    let changedAt = startedAt;
    while (now() - startedAt < limitMs) {
      const stats = await this.status();
      if (stats.distinct !== distinct) [distinct, changedAt] = [stats.distinct, now()];
      else if (now() - changedAt >= quietMs) return;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The current phase's tally; rejects when no answer comes within 5 s (the receiver died). */
  private status(): Promise<PhaseStats> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error('the receiver does not answer'));
      }, 5000);
      const listener = (message: FromReceiver) => {
        if (message.type !== 'status') return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(message.stats);
      };
      this.listeners.add(listener);
      this.send({ type: 'status' });
    });
  }

  private send(message: ToReceiver): void {
    if (this.child.connected) this.child.send(message);
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from './wait.js';

/** The built entry point: the same file the Dockerfile runs (`npm run build` makes it). */
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export interface HookbusProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnHookbus(env: NodeJS.ProcessEnv): HookbusProcess {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, ...env }, stdio: 'pipe' });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** The port a spawned hookbus logged when it began listening. */
export async function listeningPort(proc: HookbusProcess): Promise<number> {
  return eventually(
    () => {
      const line = proc
        .output()
        .split('\n')
        .find((l) => l.includes('"msg":"hookbus listening"'));
      return line ? (JSON.parse(line) as { port: number }).port : 0;
    },
    20_000,
    'hookbus to listen',
  );
}

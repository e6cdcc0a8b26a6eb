import { execFileSync } from 'node:child_process';
import { createRunVhost, removeRunState } from './run-state.js';

/**
 * Vitest globalSetup: builds dist/main.js (the process tests run it) and makes this run's
 * throwaway vhost; the teardown deletes the vhost and the run's databases, whatever the tests did.
 */
export default async function setup(): Promise<() => Promise<void>> {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  await createRunVhost();
  return removeRunState;
}

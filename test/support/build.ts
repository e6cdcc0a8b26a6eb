import { execFileSync } from 'node:child_process';

/** Vitest globalSetup: the process tests run dist/main.js, so build it first, every run. */
export default function build(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}

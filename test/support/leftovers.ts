/**
 * `tsx test/support/leftovers.ts snapshot FILE` records the test-named state on the broker and the
 * database server; `… check FILE` lists what has appeared since and exits 1 if anything has:
 * scripts/test.sh runs it around the suite, so a test that leaves state behind fails the run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { testState } from './run-state.js';

const [mode, file] = process.argv.slice(2);
if ((mode !== 'snapshot' && mode !== 'check') || !file) {
  process.stderr.write('usage: leftovers.ts snapshot|check FILE\n');
  process.exit(2);
}
const now = await testState();
if (mode === 'snapshot') {
  writeFileSync(file, JSON.stringify(now));
} else {
  const before = new Set(JSON.parse(readFileSync(file, 'utf8')) as string[]);
  const left = now.filter((item) => !before.has(item));
  for (const item of left) process.stderr.write(`left behind by the tests: ${item}\n`);
  if (left.length > 0) process.exit(1);
  process.stdout.write('tests left nothing behind on the broker or the database server\n');
}

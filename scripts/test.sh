#!/usr/bin/env bash
# The whole test suite, from any state of the machine: installs dependencies when they are missing
# or stale, makes RabbitMQ and a MongoDB-wire server reachable, then runs the unit and integration
# tests (the integration project builds first: its process tests run dist/main.js, as the image does).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
fi
bash scripts/services.sh up

# One id for this run: its vhost and databases are named by it, and deleted by the global teardown.
HOOKBUS_TEST_RUN=$(node -e 'console.log(require("crypto").randomBytes(4).toString("hex"))')
export HOOKBUS_TEST_RUN
state=$(mktemp)
npx tsx test/support/leftovers.ts snapshot "$state"

report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# Anything test-named that was not on the broker or the database server before the run fails it.
npx tsx test/support/leftovers.ts check "$state" || status=1
# One plain closing line, whatever the runner printed above it.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || true
rm -f "$report" "$state"
exit $status

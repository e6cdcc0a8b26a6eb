#!/usr/bin/env bash
# Quick start: dependencies, local RabbitMQ and MongoDB-wire server, a build, then hookbus with all
# roles on http://localhost:3000 (NODE_ENV=development: config/development.json). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
fi
bash scripts/services.sh up
npm run build
exec node dist/main.js

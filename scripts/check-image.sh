#!/usr/bin/env bash
# What the Dockerfile's final stage holds, assembled here without a Docker engine: production
# dependencies only (`npm ci --omit=dev`), dist/ and config/, started with the image's CMD and
# checked with its HEALTHCHECK command, then stopped with SIGTERM. Fails if the image would.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/main.js ] || npm run build

image=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$image"' EXIT
cp package.json package-lock.json "$image/"
(cd "$image" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
cp -r dist config "$image/"

port=$(node -e 's=require("net").createServer().listen(0,()=>{console.log(s.address().port);s.close()})')
healthcheck=$(sed -n 's/^HEALTHCHECK .*CMD \["node", "-e", "\(.*\)"\]$/\1/p' Dockerfile | sed 's/\\"/"/g')
[ -n "$healthcheck" ] || { echo "check-image: no HEALTHCHECK found in the Dockerfile" >&2; exit 1; }

(cd "$image" && NODE_ENV=production PORT=$port JWT_SECRET=check-image-secret \
  MONGODB_URI=${MONGODB_URI:-mongodb://127.0.0.1:27017/hookbus_image_check} \
  exec node dist/main.js) >"$image/out.log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
  if (cd "$image" && PORT=$port node -e "$healthcheck") &&
    node -e "fetch('http://127.0.0.1:$port/readyz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "${ready:-}" ]; then
  cat "$image/out.log"
  echo "check-image: the production build did not become healthy and ready" >&2
  exit 1
fi
kill -TERM $pid
code=0
wait $pid || code=$?
if [ $code -ne 0 ]; then
  cat "$image/out.log"
  echo "check-image: exit code $code after SIGTERM" >&2
  exit 1
fi
echo "check-image: production dependencies start hookbus, HEALTHCHECK and /readyz pass, SIGTERM exits 0"

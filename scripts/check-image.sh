#!/usr/bin/env bash
# What the Dockerfile's final stage holds, assembled here without a Docker engine: production
# dependencies only (`npm ci --omit=dev`), dist/ and config/, started with the image's CMD and
# checked with its HEALTHCHECK command, then stopped with SIGTERM. Fails if the image would.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/main.js ] || npm run build

image=$(mktemp -d)
# Its own vhost and database, deleted afterwards: it leaves nothing on a shared broker or server,
# and no queues of a deployment of its own on the quick start's prefix.
run=hbimage_$(node -e 'console.log(require("crypto").randomBytes(4).toString("hex"))')
database=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' \
  "${MONGODB_URI:-mongodb://127.0.0.1:27017/}" "$run")
cleanup() {
  [ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true
  rabbitmqctl -q delete_vhost "$run" 2>/dev/null || true
  if [ -d "$image/node_modules/mongoose" ]; then
    (cd "$image" && node -e '
      const m = require("mongoose");
      m.connect(process.argv[1]).then(() => m.connection.dropDatabase()).finally(() => m.disconnect());
    ' "$database") || true
  fi
  rm -rf "$image"
}
trap cleanup EXIT
rabbitmqctl -q add_vhost "$run"
rabbitmqctl -q set_permissions -p "$run" guest '.*' '.*' '.*'
cp package.json package-lock.json "$image/"
(cd "$image" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
cp -r dist config "$image/"

port=$(node -e 's=require("net").createServer().listen(0,()=>{console.log(s.address().port);s.close()})')
healthcheck=$(sed -n 's/^HEALTHCHECK .*CMD \["node", "-e", "\(.*\)"\]$/\1/p' Dockerfile | sed 's/\\"/"/g')
[ -n "$healthcheck" ] || { echo "check-image: no HEALTHCHECK found in the Dockerfile" >&2; exit 1; }

(cd "$image" && NODE_ENV=production PORT=$port JWT_SECRET=check-image-secret \
  MONGODB_URI=$database AMQP_URL=amqp://guest:guest@127.0.0.1:5672/$run \
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

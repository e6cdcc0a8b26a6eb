#!/usr/bin/env bash
# Makes RabbitMQ and a MongoDB-wire server reachable on loopback for development and tests.
#
#   MongoDB: MONGODB_URI if set (used as is), else `mongod` if on PATH, else FerretDB 1.24.2
#   (SQLite backend, or the local PostgreSQL with HOOKBUS_FERRETDB_BACKEND=postgresql), built
#   with `go install` once and reused.
#   RabbitMQ: started with `rabbitmq-server -detached` when 127.0.0.1:5672 does not answer.
#
# Idempotent: services that already answer are left alone (a FerretDB already on 27017 is used
# whatever its backend). The MongoDB-wire server started here keeps its state in a temporary
# directory (HOOKBUS_SERVICES_DIR, default /tmp/hookbus-services), and its data there on SQLite or
# in a new `hookbus_ferretdb_*` database of the local PostgreSQL, which nothing drops.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
# FerretDB's storage: sqlite (the default; measured against postgresql in docs/ferretdb-backends.md).
FERRETDB_BACKEND=${HOOKBUS_FERRETDB_BACKEND:-sqlite}
STATE_DIR=${HOOKBUS_SERVICES_DIR:-/tmp/hookbus-services}
MONGO_PORT=27017
mkdir -p "$STATE_DIR"

log() { printf 'services: %s\n' "$*" >&2; }

port_open() { timeout 1 bash -c "</dev/tcp/$1/$2" 2>/dev/null; }

wait_port() { # host port seconds what
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.1
  done
  log "$4 did not open $1:$2 within $3 s"
  return 1
}

TOOLS_DIR=${HOOKBUS_TOOLS_DIR:-$HOME/.cache/hookbus}

ferretdb_bin() { printf '%s/bin/ferretdb-%s' "$TOOLS_DIR" "$FERRETDB_VERSION"; }

# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary that panics at
# start: the module zip lacks the generated build/version/version.txt. So the same module source,
# fetched through the Go module proxy, is copied, given that file, and built.
install_ferretdb() {
  local bin src work
  bin=$(ferretdb_bin)
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^version: $FERRETDB_VERSION"; then
    return 0
  fi
  command -v go >/dev/null || {
    log "no MongoDB-wire server: MONGODB_URI is unset, mongod is not on PATH, and go (needed to build FerretDB) is not either"
    return 1
  }
  log "building FerretDB $FERRETDB_VERSION (takes a minute or more on two cores the first time)"
  src=$(cd /tmp && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { log "go mod download did not yield the FerretDB source"; return 1; }
  work=$(mktemp -d)
  cp -r "$src/." "$work"
  chmod -R u+w "$work"
  echo "$FERRETDB_VERSION" >"$work/build/version/version.txt"
  mkdir -p "$(dirname "$bin")"
  (cd "$work" && go build -buildvcs=false -o "$bin.tmp" ./cmd/ferretdb)
  mv "$bin.tmp" "$bin"
  rm -rf "$work"
  "$bin" --version | head -1 >&2
}

start_mongodb_wire() {
  case "$FERRETDB_BACKEND" in
    sqlite | postgresql) ;;
    *) log "HOOKBUS_FERRETDB_BACKEND must be sqlite or postgresql"; return 1 ;;
  esac
  if [ -n "${MONGODB_URI:-}" ]; then
    log "MONGODB_URI is set: using it as is"
    return 0
  fi
  if port_open 127.0.0.1 $MONGO_PORT; then
    log "a MongoDB-wire server already answers on 127.0.0.1:$MONGO_PORT"
    return 0
  fi
  if command -v mongod >/dev/null; then
    mkdir -p "$STATE_DIR/mongod"
    log "starting mongod"
    mongod --dbpath "$STATE_DIR/mongod" --bind_ip 127.0.0.1 --port $MONGO_PORT \
      --fork --logpath "$STATE_DIR/mongod.log" >/dev/null
    wait_port 127.0.0.1 $MONGO_PORT 60 mongod
    return
  fi
  install_ferretdb
  local data backend
  data=$(mktemp -d "$STATE_DIR/ferretdb-data.XXXXXX")
  case "$FERRETDB_BACKEND" in
    sqlite) backend=(--handler=sqlite --sqlite-url="file:$data/") ;;
    postgresql)
      # A database of its own on the local PostgreSQL (trust auth on loopback).
      local database
      database=hookbus_ferretdb_$(basename "$data" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')
      psql -X -w -h 127.0.0.1 -U postgres -q -c "create database $database" >/dev/null
      backend=(--handler=postgresql --postgresql-url="postgres://postgres@127.0.0.1:5432/$database")
      ;;
    *) log "HOOKBUS_FERRETDB_BACKEND must be sqlite or postgresql"; return 1 ;;
  esac
  log "starting FerretDB ($FERRETDB_BACKEND backend, state in $data)"
  nohup "$(ferretdb_bin)" "${backend[@]}" --state-dir="$data" \
    --listen-addr=127.0.0.1:$MONGO_PORT --telemetry=disable --debug-addr=- \
    --log-level=warn >"$STATE_DIR/ferretdb.log" 2>&1 &
  echo $! >"$STATE_DIR/ferretdb.pid"
  wait_port 127.0.0.1 $MONGO_PORT 60 FerretDB || { tail -20 "$STATE_DIR/ferretdb.log" >&2; return 1; }
}

start_rabbitmq() {
  if port_open 127.0.0.1 5672; then
    log "RabbitMQ already answers on 127.0.0.1:5672"
    return 0
  fi
  if ! command -v rabbitmq-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "rabbitmq-server is not installed: installing Debian's package"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    else
      log "rabbitmq-server is not installed and cannot be installed here: install RabbitMQ 3, or point AMQP_URL at one"
      return 1
    fi
  fi
  log "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 127.0.0.1 5672 120 RabbitMQ
}

case "${1:-up}" in
  install) [ -n "${MONGODB_URI:-}" ] || command -v mongod >/dev/null || install_ferretdb ;;
  up)
    start_rabbitmq &
    rabbit=$!
    start_mongodb_wire
    wait $rabbit
    ;;
  *) log "usage: services.sh [up|install]"; exit 2 ;;
esac

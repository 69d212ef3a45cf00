#!/usr/bin/env bash
# Owner and mode of what the compose stack's api and worker containers read from the platform
# server (deploy/coolify/docker-compose.yml). Both run as uid/gid 10001 (deploy/docker/Dockerfile)
# and see only the files mounted into them, never the folder around them, so the folder stays
# root's alone and each mounted file or folder is group 10001, read-only:
#
#   ROOT/restic-password      made here once; both (the worker backs up, the API lists snapshots)
#   ROOT/certs/worker/        the worker's Docker client certificate: every engine operation
#   ROOT/certs/api/           the API's own client certificate: exec and terminals only use it
#                             (make-certs.sh client DIR worker|api; ca.pem, cert.pem, key.pem)
#
#   podex-secrets.sh [ROOT]   default /etc/podex; idempotent (bootstrap.sh runs it every time)
set -euo pipefail
ROOT=${1:-/etc/podex}
PODEX_GID=10001
log() { printf '[podex-secrets] %s\n' "$*" >&2; }

install -d -m 0700 -o root -g root "$ROOT" "$ROOT/certs"
[ -s "$ROOT/restic-password" ] || (umask 077; openssl rand -hex 32 >"$ROOT/restic-password")
chown "root:$PODEX_GID" "$ROOT/restic-password"
chmod 0640 "$ROOT/restic-password"

for who in worker api; do
  dir=$ROOT/certs/$who
  if ! [ -s "$dir/ca.pem" ] || ! [ -s "$dir/cert.pem" ] || ! [ -s "$dir/key.pem" ]; then
    log "missing $dir/{ca,cert,key}.pem: make-certs.sh client CA_DIR $who where the CA lives, then deploy/servers/deliver-certs.sh platform … CA_DIR"
    continue
  fi
  chown "root:$PODEX_GID" "$dir" "$dir/key.pem"
  chmod 0750 "$dir"
  chmod 0640 "$dir/key.pem"
  chown root:root "$dir/ca.pem" "$dir/cert.pem"
  chmod 0644 "$dir/ca.pem" "$dir/cert.pem"
done
# The layout before the split: one key for both. Nothing mounts it any more.
[ ! -e "$ROOT/certs/key.pem" ] || log "$ROOT/certs/key.pem is no longer used (certs/api and certs/worker are): remove it"

#!/usr/bin/env bash
# Delivers a server's private keys over SSH, never through cloud-init: user data stays readable
# on the server (and, on most clouds, from its metadata service) long after the first boot.
# Run from the operator's machine, where the CA and the keys were made; the bootstrap waits for
# the files (CERT_WAIT_SECONDS in its cloud-init) before it enables the firewall.
#
#   deliver-certs.sh [--dry-run] workspace DEST DIR
#       DIR from make-certs.sh server CA_DIR NAME … (CA_DIR/NAME: ca.pem, cert.pem, key.pem), to where
#       workspace/daemon.json reads them; then Docker restarts (live-restore keeps workspaces running).
#   deliver-certs.sh [--dry-run] platform DEST ORIGIN_DIR CA_DIR
#       ORIGIN_DIR: the Cloudflare origin certificate (cert.pem, key.pem) to /etc/podex-origin;
#       CA_DIR/api and CA_DIR/worker (make-certs.sh client CA_DIR api|worker) to /etc/podex/certs,
#       with podex-secrets.sh's owners and modes. Redeploy the compose stack afterwards.
#
# DEST is an ssh destination that logs in as root (root@203.0.113.9). The files are checked here
# first (each key opens its certificate, each certificate chains to its CA), copied with scp into
# a 0700 folder, then installed in place root-owned with their modes, the key last (a waiting
# bootstrap starts once the key is there). --dry-run checks the files and prints the commands.
set -euo pipefail

die() { printf 'deliver-certs: %s\n' "$*" >&2; exit 2; }

DRY=0
if [ "${1:-}" = --dry-run ]; then DRY=1; shift; fi
usage="usage: $0 [--dry-run] workspace DEST DIR | platform DEST ORIGIN_DIR CA_DIR"
role=${1:-}; dest=${2:-}
[ -n "$dest" ] || die "$usage"
[[ $dest =~ ^[A-Za-z0-9._@-]+$ ]] || die "DEST is not an ssh destination: $(printf %q "$dest")"
# Only this script writes here, and removes it when done.
STAGE=/root/podex-certs.incoming
PODEX_GID=10001

has() { [ -s "$1" ] || die "missing $1"; }
# The key opens the certificate and the certificate chains to the CA: a mismatch would only show at
# the first handshake, on the server.
pair() { # cert key [ca purpose(sslserver|sslclient)]
  has "$1"; has "$2"
  [ "$(openssl x509 -noout -pubkey -in "$1")" = "$(openssl pkey -pubout -in "$2" 2>/dev/null)" ] || die "$2 is not the key of $1"
  if [ -n "${3:-}" ]; then
    has "$3"
    openssl verify -purpose "$4" -CAfile "$3" "$1" >/dev/null 2>&1 || die "$1 is not a $4 certificate signed by $3"
  fi
}

run() {
  if [ "$DRY" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
# The remote part goes to a shell on its stdin, so no word of it is parsed twice.
remote() { # script
  if [ "$DRY" = 1 ]; then printf '+ ssh %s sh -eu <<EOF\n%s\nEOF\n' "$dest" "$1"; else ssh "$dest" sh -eu <<<"$1"; fi
}

copies=() # local file → name in STAGE
installs=() # install lines, run on the server in this order
after=""

case $role in
  workspace)
    [ $# -eq 3 ] || die "$usage"
    dir=$3
    pair "$dir/cert.pem" "$dir/key.pem" "$dir/ca.pem" sslserver
    # workspace/daemon.json: tlscacert, tlscert, tlskey.
    copies=("$dir/ca.pem:ca.pem" "$dir/cert.pem:server-cert.pem" "$dir/key.pem:server-key.pem")
    installs=(
      "install -d -m 0755 -o root -g root /etc/docker"
      "install -m 0644 -o root -g root $STAGE/ca.pem /etc/docker/ca.pem"
      "install -m 0644 -o root -g root $STAGE/server-cert.pem /etc/docker/server-cert.pem"
      "install -m 0600 -o root -g root $STAGE/server-key.pem /etc/docker/server-key.pem"
    )
    after="if systemctl is-active --quiet docker; then systemctl restart docker; fi"
    ;;
  platform)
    [ $# -eq 4 ] || die "$usage"
    origin=$3 ca=$4
    pair "$origin/cert.pem" "$origin/key.pem"
    for who in api worker; do pair "$ca/$who/cert.pem" "$ca/$who/key.pem" "$ca/$who/ca.pem" sslclient; done
    installs=("install -d -m 0700 -o root -g root /etc/podex /etc/podex/certs")
    # podex-secrets.sh: each folder and key readable by the containers' group alone.
    for who in api worker; do
      copies+=("$ca/$who/ca.pem:$who-ca.pem" "$ca/$who/cert.pem:$who-cert.pem" "$ca/$who/key.pem:$who-key.pem")
      installs+=(
        "install -d -m 0750 -o root -g $PODEX_GID /etc/podex/certs/$who"
        "install -m 0644 -o root -g root $STAGE/$who-ca.pem /etc/podex/certs/$who/ca.pem"
        "install -m 0644 -o root -g root $STAGE/$who-cert.pem /etc/podex/certs/$who/cert.pem"
        "install -m 0640 -o root -g $PODEX_GID $STAGE/$who-key.pem /etc/podex/certs/$who/key.pem"
      )
    done
    copies+=("$origin/cert.pem:origin-cert.pem" "$origin/key.pem:origin-key.pem")
    installs+=(
      "install -d -m 0755 -o root -g root /etc/podex-origin"
      "install -m 0644 -o root -g root $STAGE/origin-cert.pem /etc/podex-origin/cert.pem"
      "install -m 0600 -o root -g root $STAGE/origin-key.pem /etc/podex-origin/key.pem"
    )
    ;;
  *) die "$usage" ;;
esac

remote "rm -rf $STAGE
install -d -m 0700 -o root -g root $STAGE"
for c in "${copies[@]}"; do
  run scp -q "${c%%:*}" "$dest:$STAGE/${c#*:}"
done
script=$(printf '%s\n' "${installs[@]}" "rm -rf $STAGE")
[ -z "$after" ] || script+=$'\n'"$after"
remote "$script"
[ "$DRY" = 0 ] || exit 0
printf 'deliver-certs: %s: %s delivered\n' "$dest" "$role" >&2
[ "$role" != platform ] || printf 'deliver-certs: redeploy the compose stack (Coolify) so the proxy, the API and the worker read them\n' >&2

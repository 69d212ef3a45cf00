#!/usr/bin/env bash
# Bootstraps a Podex workspace server (seed Tasks 4.1, 5.1–5.4, 5.8): Docker + gVisor, the
# hardened daemon.json with mutual TLS, UFW (the Docker API only from the platform's private
# address), fail2ban, sshd hardening, unattended upgrades. Idempotent: run it again at will.
#
#   PLATFORM_PRIVATE_IP=10.0.0.2 PRIVATE_CIDR=10.0.0.0/16 CERT_DIR=/root/podex-certs ./bootstrap.sh
#
# CERT_DIR holds ca.pem, server-cert.pem and server-key.pem for this server, made on the
# operator's machine with deploy/certs/make-certs.sh (the CA key never leaves it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../common/harden.sh
source "$here/../common/harden.sh"

: "${PLATFORM_PRIVATE_IP:?set PLATFORM_PRIVATE_IP: the platform server private address, the only source allowed to reach SSH and the Docker API}"
PRIVATE_CIDR=${PRIVATE_CIDR:-10.0.0.0/16}
CERT_DIR=${CERT_DIR:-/root/podex-certs}
[ "$(id -u)" = 0 ] || { log "run as root"; exit 2; }

apt_install docker.io runsc ufw ca-certificates

log "Docker TLS material"
for f in ca.pem server-cert.pem server-key.pem; do
  [ -s "$CERT_DIR/$f" ] || { log "missing $CERT_DIR/$f (deploy/certs/make-certs.sh server …)"; exit 2; }
done
install -m 0644 "$CERT_DIR/ca.pem" /etc/docker/ca.pem
install -m 0644 "$CERT_DIR/server-cert.pem" /etc/docker/server-cert.pem
install -m 0600 "$CERT_DIR/server-key.pem" /etc/docker/server-key.pem

log "hardened daemon.json"
# The unit's own -H flag would conflict with "hosts" in daemon.json.
MODE=0644 write_if_changed /etc/systemd/system/docker.service.d/podex.conf <<'CONF' || true
[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock
CONF
mkdir -p /etc/docker
if MODE=0644 write_if_changed /etc/docker/daemon.json <"$here/daemon.json"; then
  systemctl daemon-reload
  systemctl restart docker
fi
systemctl enable --now docker
docker info --format '{{.DefaultRuntime}}' | grep -qx runsc || { log "runsc is not Docker's default runtime"; exit 1; }

log "UFW: deny in; SSH and the Docker API from the platform only; the private network"
ufw --force default deny incoming
ufw --force default allow outgoing
ufw allow from "$PLATFORM_PRIVATE_IP" to any port 22 proto tcp
ufw allow from "$PLATFORM_PRIVATE_IP" to any port 2376 proto tcp
ufw allow from "$PLATFORM_PRIVATE_IP" to any port 9323 proto tcp
ufw allow from "$PRIVATE_CIDR"
ufw --force enable

harden_sshd
harden_fail2ban
harden_updates
log "workspace server ready: register it with POST /servers (its private address, port 2376)"

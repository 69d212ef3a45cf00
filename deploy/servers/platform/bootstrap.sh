#!/usr/bin/env bash
# Bootstraps the Podex platform server (seed Tasks 4.1, 4.2, 5.1–5.3, 5.8): Docker for Coolify
# and the compose stack, UFW (HTTP/HTTPS from anywhere, Coolify's UI from the operator, the
# private network), fail2ban, sshd hardening, unattended upgrades. Idempotent.
#
#   OPERATOR_IP=203.0.113.7 PRIVATE_CIDR=10.0.0.0/16 ./bootstrap.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../common/harden.sh
source "$here/../common/harden.sh"

: "${OPERATOR_IP:?set OPERATOR_IP: the address the Coolify UI on port 8000 is opened to}"
PRIVATE_CIDR=${PRIVATE_CIDR:-10.0.0.0/16}
[ "$(id -u)" = 0 ] || { log "run as root"; exit 2; }

apt_install docker.io docker-compose ufw restic postgresql-client ca-certificates
systemctl enable --now docker

log "UFW: SSH, HTTP(S), Coolify from the operator, the private network"
ufw --force default deny incoming
ufw --force default allow outgoing
ufw allow 22/tcp
ufw allow 80/tcp
ufw allow 443/tcp
ufw allow from "$OPERATOR_IP" to any port 8000 proto tcp
ufw allow from "$PRIVATE_CIDR"
ufw --force enable

harden_sshd
harden_fail2ban
harden_updates

install -d -m 0700 /etc/podex
[ -s /etc/podex/restic-password ] || (umask 077; openssl rand -hex 32 >/etc/podex/restic-password)
log "platform server ready: install Coolify, then deploy deploy/coolify/docker-compose.yml"

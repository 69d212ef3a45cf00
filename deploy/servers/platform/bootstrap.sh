#!/usr/bin/env bash
# Bootstraps the Podex platform server (seed Tasks 4.1, 4.2, 5.1–5.3, 5.8): Docker for Coolify
# and the compose stack, UFW (HTTP/HTTPS from anywhere, Coolify's UI from the operator, the
# private network), the Workspace Proxy's origin certificate and DOCKER-USER rules (its 443 from
# Cloudflare only), fail2ban, sshd hardening, unattended upgrades. Idempotent.
#
#   OPERATOR_IP=203.0.113.7 WORKSPACE_PROXY_IP=203.0.113.8 PRIVATE_CIDR=10.0.0.0/16 ./bootstrap.sh
#
# The Workspace Proxy itself is the compose stack's workspace-proxy service (Coolify deploys
# deploy/coolify/docker-compose.yml with the same WORKSPACE_PROXY_IP, and PODEX_ORIGIN_CERT and
# PODEX_ORIGIN_KEY naming the two files below). Those and the Docker client certificates come
# over SSH from deploy/servers/deliver-certs.sh; the bootstrap waits CERT_WAIT_SECONDS (0 by
# default) for the origin key.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../common/harden.sh
source "$here/../common/harden.sh"

: "${OPERATOR_IP:?set OPERATOR_IP: the address the Coolify UI on port 8000 is opened to}"
: "${WORKSPACE_PROXY_IP:?set WORKSPACE_PROXY_IP: the IPv4 address *.podex.dev resolves to at Cloudflare, where the Workspace Proxy publishes 443}"
PRIVATE_CIDR=${PRIVATE_CIDR:-10.0.0.0/16}
# Outside /etc/podex, which the compose file mounts into the API and the worker.
ORIGIN_DIR=${ORIGIN_DIR:-/etc/podex-origin}
[ "$(id -u)" = 0 ] || { log "run as root"; exit 2; }

apt_install docker.io docker-compose ufw restic postgresql-client ca-certificates openssl

log "Cloudflare origin certificate for the Workspace Proxy"
# Delivered over SSH with the API's and the worker's client certificates, never in cloud-init.
wait_for_files "${CERT_WAIT_SECONDS:-0}" "SSL/TLS → Origin Server in Cloudflare's dashboard (*.podex.dev, PEM), then deploy/servers/deliver-certs.sh platform root@THIS-SERVER ORIGIN_DIR CA_DIR" \
  "$ORIGIN_DIR/cert.pem" "$ORIGIN_DIR/key.pem"
chmod 0644 "$ORIGIN_DIR/cert.pem"
chmod 0600 "$ORIGIN_DIR/key.pem"
# A key that does not match would only show at the first handshake from Cloudflare (a 525).
[ "$(openssl x509 -noout -pubkey -in "$ORIGIN_DIR/cert.pem")" = "$(openssl pkey -pubout -in "$ORIGIN_DIR/key.pem")" ] \
  || { log "$ORIGIN_DIR/key.pem is not the key of $ORIGIN_DIR/cert.pem"; exit 2; }
# Docker can publish on an address only once the server has it (an extra IP is configured by hand).
[ -n "$(ip -4 -o addr show to "$WORKSPACE_PROXY_IP/32")" ] || { log "WORKSPACE_PROXY_IP $WORKSPACE_PROXY_IP is not an address of this server"; exit 2; }

install -d -m 0700 /etc/podex
MODE=0644 write_if_changed /etc/podex/cloudflare-ips-v4.txt <"$here/cloudflare-ips-v4.txt" || true
harden_docker_user platform WORKSPACE_PROXY_IP="$WORKSPACE_PROXY_IP" CLOUDFLARE_IPS_FILE=/etc/podex/cloudflare-ips-v4.txt
systemctl enable --now docker

# UFW filters what the host itself listens on. Ports Docker publishes (Coolify's proxy, the
# Workspace Proxy) are rewritten before UFW sees them: the proxy's 443 is filtered by the
# DOCKER-USER rules above instead.
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
# The platform is the client of the workspace servers, never of itself: only loopback to spare.
harden_fail2ban
harden_updates

# What the api and worker containers (uid 10001) read: the restic password, each its own Docker client key.
"$here/podex-secrets.sh" /etc/podex
log "platform server ready: install Coolify, then deploy deploy/coolify/docker-compose.yml"

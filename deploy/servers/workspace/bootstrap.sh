#!/usr/bin/env bash
# Bootstraps a Podex workspace server (seed Tasks 4.1, 5.1–5.4, 5.8): Docker + gVisor, the
# hardened daemon.json with mutual TLS, UFW (the Docker API only from the platform's private
# address), DOCKER-USER rules (the ports workspaces publish only from the platform's private
# address), fail2ban, sshd hardening, unattended upgrades. Idempotent: run it again at will.
#
#   PLATFORM_PRIVATE_IP=10.0.0.2 PRIVATE_CIDR=10.0.0.0/16 CERT_WAIT_SECONDS=3600 ./bootstrap.sh
#
# The server's TLS certificate and key, made on the operator's machine with
# deploy/certs/make-certs.sh (the CA key never leaves it), are delivered over SSH by
# deploy/servers/deliver-certs.sh; the bootstrap waits CERT_WAIT_SECONDS (0 by default) for them.
# A hand run may instead set CERT_DIR to a folder with ca.pem, server-cert.pem and server-key.pem.
# SERVER_PRIVATE_IP, this server's address on the private network, is found on PRIVATE_CIDR
# unless given; register the server with it (POST /servers): workspaces publish their ports there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../common/harden.sh
source "$here/../common/harden.sh"

: "${PLATFORM_PRIVATE_IP:?set PLATFORM_PRIVATE_IP: the platform server private address, the only source allowed to reach SSH, the Docker API and workspace ports}"
PRIVATE_CIDR=${PRIVATE_CIDR:-10.0.0.0/16}
[ "$(id -u)" = 0 ] || { log "run as root"; exit 2; }
if [ -z "${SERVER_PRIVATE_IP:-}" ]; then
  SERVER_PRIVATE_IP=$(ip -4 -o addr show to "$PRIVATE_CIDR" | awk '{ sub("/.*", "", $4); print $4 }')
  [ "$(wc -w <<<"$SERVER_PRIVATE_IP")" = 1 ] || { log "set SERVER_PRIVATE_IP: found '${SERVER_PRIVATE_IP//$'\n'/ }' on $PRIVATE_CIDR"; exit 2; }
fi
# The rules admit the platform to this address alone: one this server does not have would lock it out.
[ -n "$(ip -4 -o addr show to "$SERVER_PRIVATE_IP/32")" ] || { log "SERVER_PRIVATE_IP $SERVER_PRIVATE_IP is not an address of this server"; exit 2; }
# Published ports are filtered for IPv4 only (docker-user.sh): Docker's IPv6 must stay off.
if grep -Eq '"ip(v)?6(tables)?"[[:space:]]*:[[:space:]]*true' "$here/daemon.json"; then
  log "daemon.json enables IPv6: its published ports would need ip6tables rules too"; exit 2
fi

apt_install docker.io runsc ufw ca-certificates jq openssl

# Workspace disk limits (lib/volume-disk.ts): each workspace volume is its own ext4 image on a
# loop device, made and mounted by the platform's helper through the Docker API with these
# tools; mounts are made again at boot before Docker starts. Without them volumes would be
# unlimited, so the bootstrap stops here.
apt_install e2fsprogs mount util-linux
echo loop | MODE=0644 write_if_changed /etc/modules-load.d/podex-loop.conf || true
modprobe loop 2>/dev/null || true
losetup -f >/dev/null || { log "no loop device can be had (losetup -f): workspace disk limits need the loop driver"; exit 1; }
MODE=0755 write_if_changed /usr/local/sbin/podex-volume-disks <<'SH' || true
#!/bin/sh
# Mounts every workspace volume's disk on its _data folder (lib/volume-disk.ts); run before Docker.
for img in /var/lib/docker/volumes/*/disk.img; do
  [ -e "$img" ] || continue
  d=${img%/disk.img}/_data
  mountpoint -q "$d" || mount -o loop,nosuid,nodev "$img" "$d"
done
SH
if MODE=0644 write_if_changed /etc/systemd/system/podex-volume-disks.service <<'UNIT'; then
[Unit]
Description=Podex workspace volume disks
Before=docker.service
RequiresMountsFor=/var/lib/docker
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/podex-volume-disks
[Install]
WantedBy=multi-user.target docker.service
UNIT
  systemctl daemon-reload
fi
systemctl enable podex-volume-disks.service

# Workspace egress (docker-user.sh) is matched on the pools workspace networks are cut from,
# so it is read from the daemon.json that makes them; the resolvers are those Docker hands
# containers (systemd-resolved's upstreams when the stub is in /etc/resolv.conf).
WORKSPACE_POOLS=$(jq -r '[."default-address-pools"[].base] | join(",")' "$here/daemon.json")
resolv=/etc/resolv.conf
[ -s /run/systemd/resolve/resolv.conf ] && grep -q '^nameserver 127\.' /etc/resolv.conf && resolv=/run/systemd/resolve/resolv.conf
WORKSPACE_DNS=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ { print $2 }' "$resolv" | paste -sd, -)

log "Docker TLS material"
# Where daemon.json reads them. deliver-certs.sh puts them there over SSH (never cloud-init); a
# hand run may give CERT_DIR instead. SSH is still open to the operator while this waits: the
# firewall comes after.
tls=(); for k in tlscacert tlscert tlskey; do tls+=("$(jq -r ".$k" "$here/daemon.json")"); done
if [ -n "${CERT_DIR:-}" ]; then
  for f in ca.pem server-cert.pem server-key.pem; do
    [ -s "$CERT_DIR/$f" ] || { log "missing $CERT_DIR/$f (deploy/certs/make-certs.sh server …)"; exit 2; }
  done
  install -d -m 0755 "$(dirname "${tls[2]}")"
  install -m 0644 "$CERT_DIR/ca.pem" "${tls[0]}"
  install -m 0644 "$CERT_DIR/server-cert.pem" "${tls[1]}"
  install -m 0600 "$CERT_DIR/server-key.pem" "${tls[2]}"
fi
wait_for_files "${CERT_WAIT_SECONDS:-0}" "deliver them: deploy/servers/deliver-certs.sh workspace root@THIS-SERVER CA_DIR/NAME" "${tls[@]}"
[ "$(openssl x509 -noout -pubkey -in "${tls[1]}")" = "$(openssl pkey -pubout -in "${tls[2]}")" ] \
  || { log "${tls[2]} is not the key of ${tls[1]}"; exit 2; }

harden_docker_user workspace PLATFORM_PRIVATE_IP="$PLATFORM_PRIVATE_IP" SERVER_PRIVATE_IP="$SERVER_PRIVATE_IP" \
  WORKSPACE_POOLS="$WORKSPACE_POOLS" WORKSPACE_DNS="$WORKSPACE_DNS"

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
harden_fail2ban "$PLATFORM_PRIVATE_IP"
harden_updates
log "workspace server ready: register it with POST /servers (private address $SERVER_PRIVATE_IP, port 2376)"

#!/usr/bin/env bash
# Shared hardening for every Podex server (seed Tasks 5.1, 5.2, 5.8): sshd, fail2ban,
# unattended-upgrades, the DOCKER-USER rules for Docker-published ports. Sourced by the role
# scripts; every step may run again safely.
set -euo pipefail

log() { printf '[podex-bootstrap] %s\n' "$*" >&2; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Writes $1 from stdin only when the content changes; returns 0 if it changed.
write_if_changed() {
  local target=$1 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$target" ] && cmp -s "$tmp" "$target"; then rm -f "$tmp"; return 1; fi
  install -m "${MODE:-0644}" "$tmp" "$target"
  rm -f "$tmp"
  return 0
}

# wait_for_files SECONDS HINT FILE…: private keys never ride in cloud-init user data (it stays
# readable on the server and from its metadata service); deploy/servers/deliver-certs.sh brings
# them over SSH, maybe while the bootstrap already runs. Past SECONDS (0: no wait) it stops here.
wait_for_files() {
  local deadline=$((SECONDS + $1)) hint=$2 f said=-60 missing
  shift 2
  while :; do
    missing=()
    for f in "$@"; do [ -s "$f" ] || missing+=("$f"); done
    [ "${#missing[@]}" -gt 0 ] || return 0
    if [ "$SECONDS" -ge "$deadline" ]; then log "missing ${missing[*]}: $hint"; exit 2; fi
    if [ $((SECONDS - said)) -ge 60 ]; then log "waiting for ${missing[*]}: $hint"; said=$SECONDS; fi
    sleep 1
  done
}

harden_sshd() {
  log "sshd: keys only, strong algorithms"
  if write_if_changed /etc/ssh/sshd_config.d/50-podex.conf <<'CONF'
PasswordAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
KbdInteractiveAuthentication no
KerberosAuthentication no
GSSAPIAuthentication no
ClientAliveInterval 300
ClientAliveCountMax 2
MaxAuthTries 3
MaxSessions 10
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
KexAlgorithms curve25519-sha256@libssh.org,diffie-hellman-group-exchange-sha256
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com
CONF
  then
    sshd -t && systemctl reload ssh
  fi
}

# harden_fail2ban [ADDRESS…]: the addresses (the platform's) are never banned. The Docker API
# jail counts only clients that fail mutual TLS (no certificate, or one our CA did not sign);
# a bare EOF is what a client that gives up (a health check, the platform's own retries on a
# flaky link) leaves, and must not ban the platform from its own fleet.
harden_fail2ban() {
  local a ignore="127.0.0.1/8 ::1"
  for a in "$@"; do
    [[ $a =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?$ ]] || { log "fail2ban: not an IPv4 address: $(printf %q "$a")"; exit 2; }
    ignore+=" $a"
  done
  apt_install fail2ban
  log "fail2ban: sshd and the Docker API"
  write_if_changed /etc/fail2ban/filter.d/docker-auth.conf <<'CONF' || true
[Definition]
failregex = ^.*\bhttp: TLS handshake error from <HOST>:\d+: tls: (?:client didn't provide a certificate|failed to verify client certificate|invalid signature by the client certificate)\b
ignoreregex =
CONF
  if write_if_changed /etc/fail2ban/jail.d/podex.local <<CONF
[DEFAULT]
bantime = 1h
findtime = 10m
maxretry = 5
banaction = ufw
ignoreip = $ignore

[sshd]
enabled = true
port = ssh
maxretry = 3
bantime = 24h

[docker-auth]
enabled = true
port = 2376
filter = docker-auth
backend = systemd
journalmatch = _SYSTEMD_UNIT=docker.service
maxretry = 3
bantime = 1h
CONF
  then
    systemctl enable --now fail2ban
    systemctl restart fail2ban
  fi
}

harden_updates() {
  apt_install unattended-upgrades
  log "unattended security upgrades"
  write_if_changed /etc/apt/apt.conf.d/50unattended-upgrades <<'CONF' || true
Unattended-Upgrade::Allowed-Origins {
    "${distro_id}:${distro_codename}";
    "${distro_id}:${distro_codename}-security";
};
Unattended-Upgrade::AutoFixInterruptedDpkg "true";
Unattended-Upgrade::MinimalSteps "true";
Unattended-Upgrade::Remove-Unused-Dependencies "true";
Unattended-Upgrade::Automatic-Reboot "false";
Unattended-Upgrade::MailReport "only-on-error";
CONF
  write_if_changed /etc/apt/apt.conf.d/20auto-upgrades <<'CONF' || true
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
CONF
  systemctl enable --now unattended-upgrades
}

# harden_docker_user ROLE NAME=VALUE…: installs podex-docker-user (docker-user.sh) with its
# settings and a unit that loads the rules before dockerd starts, so no container that Docker
# restarts at boot (restart policy, live-restore) is ever published without them. Docker keeps
# the chain's rules while it runs and across its restarts; PartOf loads them again at each
# restart anyway, and nothing ever unloads them (no ExecStop). RequiredBy: a server whose rules
# cannot load does not start Docker at all, rather than expose every workspace.
harden_docker_user() {
  local role=$1 common
  shift
  common=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  log "DOCKER-USER: published ports for the $role role"
  # Refused here, before anything is installed, if a setting is missing or malformed.
  env -i PATH="$PATH" "$@" bash "$common/docker-user.sh" rules "$role" >/dev/null
  install -d -m 0700 /etc/podex
  MODE=0755 write_if_changed /usr/local/sbin/podex-docker-user <"$common/docker-user.sh" || true
  printf '%s\n' "$@" | MODE=0600 write_if_changed /etc/podex/docker-user.env || true
  MODE=0644 write_if_changed /etc/systemd/system/podex-docker-user.service <<UNIT || true
[Unit]
Description=Podex: Docker-published ports admit only their one client (DOCKER-USER chain)
Before=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/podex/docker-user.env
ExecStart=/usr/local/sbin/podex-docker-user apply $role

[Install]
RequiredBy=docker.service
UNIT
  systemctl daemon-reload
  systemctl enable podex-docker-user.service
  # Loaded now as well: Docker is usually running already.
  systemctl restart podex-docker-user.service
}

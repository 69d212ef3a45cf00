#!/usr/bin/env bash
# The firewall for ports Docker publishes, which UFW cannot filter: Docker rewrites their
# destination (DNAT, nat PREROUTING) before UFW's INPUT rules run, and the packet then crosses
# FORWARD to the container. FORWARD's first stop is the DOCKER-USER chain, which Docker creates
# but never edits (it only appends a RETURN when the chain has none); this tool owns that chain.
# Installed as /usr/local/sbin/podex-docker-user; run by podex-docker-user.service (harden.sh).
#
#   podex-docker-user rules workspace|platform   print the chain as iptables-restore input (dry run)
#   podex-docker-user apply workspace|platform   replace the chain with it in one transaction
#
# workspace  PLATFORM_PRIVATE_IP, SERVER_PRIVATE_IP: every port published on this server (a
#            workspace's IDE, SSH, previews, bound to SERVER_PRIVATE_IP) is reached by the
#            platform server alone.
# platform   WORKSPACE_PROXY_IP, CLOUDFLARE_IPS_FILE: the Workspace Proxy's 443 on
#            WORKSPACE_PROXY_IP is reached from Cloudflare's ranges alone.
#
# IPv4 only: Docker's IPv6 is off on both servers (its default; the workspace daemon.json does
# not turn it on) and every port above is published on an IPv4 address, so ip6tables would have
# nothing to filter.
set -euo pipefail

die() { printf 'podex-docker-user: %s\n' "$*" >&2; exit 2; }

# Values are spliced into iptables-restore input: one stray newline would be a rule of its own.
ipv4() { [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]]; }
cidr4() { [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]]; }
need_ipv4() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || die "set $name"
    ipv4 "${!name}" || die "$name is not an IPv4 address: $(printf %q "${!name}")"
  done
}

workspace_rules() {
  need_ipv4 PLATFORM_PRIVATE_IP SERVER_PRIVATE_IP
  # Replies to admitted connections and to the containers' own outbound traffic: what is left
  # below is a new connection (or a stray packet).
  echo "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  # A connection Docker rewrote (DNAT) is one to a published port; after the rewrite the
  # destination is the container, so the address the client dialled is read from conntrack.
  # Admitted: the platform, dialling this server's private address.
  echo "-A DOCKER-USER -s $PLATFORM_PRIVATE_IP/32 -p tcp -m conntrack --ctstate DNAT --ctorigdst $SERVER_PRIVATE_IP -j RETURN"
  # Everyone else, on any interface and any address (a port published on the public address by
  # mistake included): other hosts of the private network, the internet, other workspaces.
  echo "-A DOCKER-USER -m conntrack --ctstate DNAT -j DROP"
  # A neighbour routing straight to a container's bridge address skips the DNAT; Docker 20.10
  # (Debian's) would accept it on a published container port. Containers' own traffic leaves
  # from a bridge and is not matched; Docker's isolation rules govern bridge to bridge.
  echo "-A DOCKER-USER ! -i br-+ -o br-+ -m conntrack --ctstate NEW -j DROP"
  echo "-A DOCKER-USER ! -i docker0 -o docker0 -m conntrack --ctstate NEW -j DROP"
}

platform_rules() {
  need_ipv4 WORKSPACE_PROXY_IP
  local file=${CLOUDFLARE_IPS_FILE:-/etc/podex/cloudflare-ips-v4.txt} range rest n=0
  [ -s "$file" ] || die "no Cloudflare ranges in $file"
  echo "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  while read -r range rest; do
    case $range in '' | '#'*) continue ;; esac
    if ! cidr4 "$range" || [ -n "$rest" ]; then die "$file: not one IPv4 range per line: $range $rest"; fi
    echo "-A DOCKER-USER -s $range -p tcp -m conntrack --ctstate DNAT --ctorigdst $WORKSPACE_PROXY_IP --ctorigdstport 443 -j RETURN"
    n=$((n + 1))
  done <"$file"
  [ "$n" -gt 0 ] || die "no Cloudflare ranges in $file"
  # Only the proxy's port: Coolify's own published ports are not this tool's to judge.
  echo "-A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdst $WORKSPACE_PROXY_IP --ctorigdstport 443 -j DROP"
}

# The whole chain, so loading it twice leaves it as loading it once.
rules() {
  case ${1:-} in workspace | platform) ;; *) die "usage: $0 rules|apply workspace|platform" ;; esac
  echo '*filter'
  # In --noflush mode this line empties the chain (or creates it) inside the same transaction.
  echo ':DOCKER-USER - [0:0]'
  "$1_rules"
  echo '-A DOCKER-USER -j RETURN'
  echo 'COMMIT'
}

apply() {
  local payload
  # Built in full before anything is loaded: bad input leaves the running rules untouched.
  payload=$(rules "$@")
  printf '%s\n' "$payload" | iptables-restore --wait=10 --noflush
  # Docker puts its own jump to the chain at the top of FORWARD; at boot this runs before dockerd
  # does, so the chain is in force from the first packet whichever of the two comes first.
  iptables -w 10 -C FORWARD -j DOCKER-USER 2>/dev/null || iptables -w 10 -I FORWARD 1 -j DOCKER-USER
}

case ${1:-} in
  rules) shift; out=$(rules "$@"); printf '%s\n' "$out" ;;
  apply) shift; apply "$@" ;;
  *) die "usage: $0 rules|apply workspace|platform" ;;
esac

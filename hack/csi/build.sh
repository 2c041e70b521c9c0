#!/usr/bin/env bash
# Builds the test CSI driver (csi-tmpfs) and the upstream sidecars it needs (csi-provisioner, csi-resizer) from their Go
# modules (through the Go module proxy) into a cache keyed by the content of hack/csi, and prints the bin directory.
# Usage: hack/csi/build.sh        -> prints the bin directory (builds what is missing)
# Each sidecar is built in a tools module of its own that carries the sidecar's own replaces (both pin the Kubernetes
# staging modules at v0.33.0, external-provisioner also k8s.io/kubernetes v1.33.1), so their graphs never meet ours.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PROVISIONER_MODULE=github.com/kubernetes-csi/external-provisioner/v5
PROVISIONER_VERSION=v5.3.0
RESIZER_MODULE=github.com/kubernetes-csi/external-resizer
RESIZER_VERSION=v1.14.0

cache_root=${CSI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/csi}
go_version=$(command -v go >/dev/null && go env GOVERSION || echo none)
# The driver's key: every source file of hack/csi (tests and docs excluded) and the Go version.
key=$( (cd "$here" && find . -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum -o -name build.sh \) -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum; echo "$go_version") | sha256sum | cut -c1-16)
# The sidecars' key: only what decides their build, so that driver edits do not rebuild them.
sidecar_key=$( (echo "$PROVISIONER_MODULE@$PROVISIONER_VERSION $RESIZER_MODULE@$RESIZER_VERSION $go_version"; sed -n '/^# sidecar-build-begin/,/^# sidecar-build-end/p' "$here/build.sh") | sha256sum | cut -c1-16)
bin_dir="$cache_root/$key/bin"
sidecar_dir="$cache_root/sidecars-$sidecar_key/bin"
binaries=(csi-tmpfs csi-provisioner csi-resizer)

complete() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
}

if complete; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the test CSI driver" >&2; exit 1; }
log() { echo "csi: $*" >&2; }

# One build at a time (the stack and the tests may both ask); the second finds the first one's result.
mkdir -p "$cache_root"
exec 9>"$cache_root/.build.lock"
flock 9
if complete; then
  echo "$bin_dir"
  exit 0
fi
export CGO_ENABLED=0 GOFLAGS=-mod=mod

# sidecar-build-begin
# build_sidecar <module> <version> <command> <output>: a tools module requiring <module>@<version> with the module's own
# replace directives (single-line and block form), so the build resolves exactly as upstream's does.
build_sidecar() {
  local module=$1 version=$2 cmd=$3 out=$4 work gomod
  work="$cache_root/sidecars-$sidecar_key/src/$cmd"
  mkdir -p "$work"
  gomod=$(cd "$work" && go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module local/csi-tools/$cmd"
    echo
    sed -n 's/^go \(.*\)/go \1/p' "$gomod"
    echo
    echo "require $module $version"
    echo
    echo "replace ("
    sed -n 's/^replace \(.* => .*\)/\t\1/p' "$gomod"
    sed -n '/^replace (/,/^)/{/=>/p}' "$gomod"
    echo ")"
  } >"$work/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/%s"\n' "$module" "$cmd" >"$work/tools.go"
  log "building $cmd $version"
  (cd "$work" && { go mod tidy -e >/dev/null 2>&1 || true; } && go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" "$module/cmd/$cmd")
}
# sidecar-build-end

if [ ! -x "$sidecar_dir/csi-provisioner" ] || [ ! -x "$sidecar_dir/csi-resizer" ]; then
  mkdir -p "$sidecar_dir.partial"
  build_sidecar "$PROVISIONER_MODULE" "$PROVISIONER_VERSION" csi-provisioner "$sidecar_dir.partial/csi-provisioner"
  build_sidecar "$RESIZER_MODULE" "$RESIZER_VERSION" csi-resizer "$sidecar_dir.partial/csi-resizer"
  rm -rf "$sidecar_dir"
  mv "$sidecar_dir.partial" "$sidecar_dir"
fi

mkdir -p "$bin_dir.partial"
log "building csi-tmpfs"
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin_dir.partial/csi-tmpfs" ./cmd/csi-tmpfs)
# Hard links (same cache filesystem) rather than 115 MB of copies per driver version.
ln -f "$sidecar_dir/csi-provisioner" "$sidecar_dir/csi-resizer" "$bin_dir.partial/" 2>/dev/null \
  || cp "$sidecar_dir/csi-provisioner" "$sidecar_dir/csi-resizer" "$bin_dir.partial/"
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
log "done: $bin_dir"
echo "$bin_dir"

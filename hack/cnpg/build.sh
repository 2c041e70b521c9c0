#!/usr/bin/env bash
# Builds CloudNativePG's `manager` from its Go module at the pinned version (hack/cnpg/versions.env) into a cache keyed by
# the version and this script, and prints two lines:
#   manager BINARY    the operator (`manager controller`) and the instance manager (`manager instance ...`) in one
#   module DIR        the module's source: its release manifest (releases/cnpg-X.Y.Z.yaml) and CRDs
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
log() { echo "cnpg: $*" >&2; }
die() { echo "cnpg: $*" >&2; exit 1; }

command -v go >/dev/null || die "Go is needed to build CloudNativePG"
cache_root=${CNPG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/cnpg}
key=$( { echo "$CNPG_VERSION"; cat "$here/build.sh"; } | sha256sum | cut -c1-16)
work="$cache_root/$key"
binary="$work/bin/manager"
export GOFLAGS=-mod=mod

module_dir() {
  (cd "$work/src" && go mod download -json "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION") |
    sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p'
}

mkdir -p "$work/src" "$work/bin"
# One build at a time (the image build and the installer may both ask).
exec 9>"$work/.lock"
flock 9
if [ ! -x "$binary" ]; then
  go_version=$(go env GOVERSION | sed 's/^go//; s/\([0-9]*\.[0-9]*\).*/\1/').0
  printf 'module local/cnpg\n\ngo %s\n' "$go_version" >"$work/src/go.mod"
  rm -f "$work/src/go.sum"
  log "resolving github.com/cloudnative-pg/cloudnative-pg $CNPG_VERSION"
  (cd "$work/src" && go get "github.com/cloudnative-pg/cloudnative-pg/cmd/manager@$CNPG_VERSION" >&2)
  log "building manager $CNPG_VERSION"
  # The version the operator reports (and stamps on what it creates) is the module's, not "dev".
  (cd "$work/src" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/cloudnative-pg/cloudnative-pg/pkg/versions.buildVersion=${CNPG_VERSION#v}" \
    -o "$binary.partial" github.com/cloudnative-pg/cloudnative-pg/cmd/manager)
  mv "$binary.partial" "$binary"
fi
dir=$(module_dir)
[ -f "$dir/releases/cnpg-${CNPG_VERSION#v}.yaml" ] || die "no releases/cnpg-${CNPG_VERSION#v}.yaml in $dir"
echo "manager $binary"
echo "module $dir"

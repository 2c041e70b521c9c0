#!/usr/bin/env bash
# Builds the helm CLI from its Go module (through the Go module proxy) into a cache keyed by the pinned versions and this
# script, and prints the binary's path. The chart's tests find helm here.
#
# Every module helm shares with the test control plane (Kubernetes' client, kubectl, apimachinery, golang.org/x/...) is
# built at the control plane's version: helm then reuses the packages the control plane's build compiled, which on a cold
# machine is most of helm's build. The helm release is the newest on the control plane's Kubernetes minor, so that these
# are patch-level moves.
# Usage: hack/helm/build.sh            -> prints the path of the helm binary (builds when missing; builds the control
#                                         plane first when it is missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELM_VERSION=v4.2.4

cache_root=${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/helm}
key=$( (echo "$HELM_VERSION"; cat "$here/build.sh" "$here/../controlplane/versions.env") | sha256sum | cut -c1-16)
bin="$cache_root/$key/bin/helm"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build helm" >&2; exit 1; }
log() { echo "helm: $*" >&2; }

work="$cache_root/$key/src"
mkdir -p "$work" "$(dirname "$bin")"
cat >"$work/go.mod" <<GOMOD
module local/helm

go $(go env GOVERSION | sed 's/^go//; s/\([0-9]*\.[0-9]*\).*/\1/').0

require helm.sh/helm/v4 $HELM_VERSION
GOMOD
cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v4/cmd/helm"
GO

export CGO_ENABLED=0 GOFLAGS=-mod=mod
log "resolving modules for helm $HELM_VERSION"
(cd "$work" && go mod tidy -e >/dev/null 2>&1 || true; go mod download)
cp "$work/go.mod" "$work/go.mod.helm"

# The control plane's module versions ("mod v" lines; its Kubernetes staging modules are "mod v0.0.0 => mod v").
controlplane_src="$(dirname "$("$here/../controlplane/build.sh" | tail -1)")/src/kube"
(cd "$controlplane_src" && go list -m all) | awk 'NF == 2 { print $1, $2 } NF == 5 && $1 == $4 { print $1, $5 }' \
  >"$work/controlplane.modules"
(cd "$work" && go list -m all) | awk 'NF == 2 { print $1, $2 }' >"$work/helm.modules"
{
  echo
  echo "replace ("
  awk 'NR == FNR { v[$1] = $2; next } ($1 in v) && v[$1] != $2 { print "\t" $1 " => " $1 " " v[$1] }' \
    "$work/controlplane.modules" "$work/helm.modules"
  echo ")"
} >>"$work/go.mod"

# helm reports its version from these variables (else "v4.x-unreleased"-like strings).
build() {
  (cd "$work" && go mod download && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    -o "$bin.partial" helm.sh/helm/v4/cmd/helm)
}
log "building helm $HELM_VERSION with the control plane's versions of $(grep -c ' => ' "$work/go.mod") shared modules"
if ! build; then
  log "that did not compile; building helm $HELM_VERSION with its own module versions"
  cp "$work/go.mod.helm" "$work/go.mod"
  build
fi
mv "$bin.partial" "$bin"
log "done: $bin"
echo "$bin"

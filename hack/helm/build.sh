#!/usr/bin/env bash
# Builds the helm CLI from its Go module (through the Go module proxy) into a cache keyed by the pinned version and this
# script, and prints the binary's path. The chart's tests find helm here.
# Usage: hack/helm/build.sh            -> prints the path of the helm binary (builds when missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELM_VERSION=v4.3.2

cache_root=${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/helm}
key=$( (echo "$HELM_VERSION"; cat "$here/build.sh") | sha256sum | cut -c1-16)
bin="$cache_root/$key/bin/helm"

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
log "building helm $HELM_VERSION"
# helm reports its version from these variables (else "v4.x-unreleased"-like strings).
(cd "$work" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" -o "$bin.partial" helm.sh/helm/v4/cmd/helm)
mv "$bin.partial" "$bin"
log "done: $bin"
echo "$bin"

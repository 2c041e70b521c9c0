#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from their Go modules (through the Go module proxy)
# into a cache keyed by the pinned versions, and prints the directory holding them.
# Usage: hack/controlplane/build.sh            -> prints the bin directory (builds when missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/controlplane}
key=$(cat "$here/versions.env" "$here/build.sh" | sha256sum | cut -c1-16)
bin_dir="$cache_root/$key/bin"
binaries=(kube-apiserver kube-controller-manager kubectl etcd)

complete() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
}

if complete; then
  echo "$bin_dir"
  exit 0
fi

# make test builds the control plane while the real node's build, which needs it too, waits here for it.
mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
flock 9
if complete; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the test control plane" >&2; exit 1; }
log() { echo "controlplane: $*" >&2; }

work="$cache_root/$key/src"
mkdir -p "$work/kube" "$work/etcd" "$bin_dir.partial"

# Kubernetes: k8s.io/kubernetes pins every staging module at v0.0.0 with local replaces; a consumer must replace each
# with the published staging version. The list comes from the tag's own go.mod so it never drifts.
kube_mod=$(cd "$work/kube" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module local/controlplane/kube"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/\([0-9]*\.[0-9]*\).*/\1/').0"
  echo
  echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
  echo
  echo "replace ("
  sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$KUBERNETES_STAGING_VERSION"'#p' "$kube_mod"
  echo ")"
} >"$work/kube/go.mod"
cat >"$work/kube/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

cat >"$work/etcd/go.mod" <<GOMOD
module local/controlplane/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
cat >"$work/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO

export CGO_ENABLED=0 GOFLAGS=-mod=mod
ldflags_kube="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"

log "resolving modules for Kubernetes $KUBERNETES_VERSION"
(cd "$work/kube" && go mod tidy -e >/dev/null 2>&1 || true; go mod download)
log "building kube-apiserver, kube-controller-manager and kubectl"
# One build for the three: their links run in parallel instead of one after another on an otherwise idle core.
(cd "$work/kube" && go build -trimpath -tags selinux,notest -ldflags "$ldflags_kube" -o "$bin_dir.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)

log "building etcd $ETCD_VERSION"
(cd "$work/etcd" && go mod tidy -e >/dev/null 2>&1 || true; go build -trimpath -ldflags "-s -w" -o "$bin_dir.partial/etcd" go.etcd.io/etcd/server/v3)

rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
log "done: $bin_dir"
echo "$bin_dir"

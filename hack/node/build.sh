#!/usr/bin/env bash
# Builds the real node's binaries from their Go modules (through the Go module proxy) into a cache keyed by the pins and
# this script, and prints the directory holding them:
#   kubelet, kube-proxy, kube-scheduler   k8s.io/kubernetes at the control plane's pin (hack/controlplane/versions.env)
#   coredns                               github.com/coredns/coredns, with only the plugins a test cluster needs
# Usage: hack/node/build.sh            -> prints the bin directory (builds what is missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../controlplane/versions.env
source "$here/../controlplane/versions.env"
COREDNS_VERSION=v1.14.1

cache_root=${NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/node}
key=$( (cat "$here/../controlplane/versions.env" "$here/build.sh") | sha256sum | cut -c1-16)
bin_dir="$cache_root/$key/bin"
kube_binaries=(kubelet kube-proxy kube-scheduler)

if [ -x "$bin_dir/coredns" ] && [ -x "$bin_dir/kubelet" ] && [ -x "$bin_dir/kube-proxy" ] && [ -x "$bin_dir/kube-scheduler" ]; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "node/build.sh: Go is needed to build the node" >&2; exit 1; }
log() { echo "node: $*" >&2; }

work="$cache_root/$key/src"
mkdir -p "$work/kube" "$work/coredns" "$bin_dir"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
go_version=$(go env GOVERSION | sed 's/^go//; s/\([0-9]*\.[0-9]*\).*/\1/').0

# Kubernetes: the same replaces as the control plane (hack/controlplane/build.sh), from the tag's own go.mod.
missing=()
for b in "${kube_binaries[@]}"; do [ -x "$bin_dir/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  kube_mod=$(cd "$work/kube" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module local/node/kube"
    echo
    echo "go $go_version"
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
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  ldflags_kube="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  log "resolving modules for Kubernetes $KUBERNETES_VERSION"
  (cd "$work/kube" && { go mod tidy -e >/dev/null 2>&1 || true; } && go mod download)
  log "building ${missing[*]}"
  # One build for all of them, so that their links run in parallel.
  rm -rf "$bin_dir/partial" && mkdir -p "$bin_dir/partial"
  (cd "$work/kube" && go build -trimpath -tags selinux,notest -ldflags "$ldflags_kube" -o "$bin_dir/partial/" \
    "${missing[@]/#/k8s.io/kubernetes/cmd/}")
  for cmd in "${missing[@]}"; do mv "$bin_dir/partial/$cmd" "$bin_dir/$cmd"; done
  rmdir "$bin_dir/partial"
fi

# CoreDNS: its own main with only the plugins a test cluster uses (the full set pulls in every cloud SDK).
if [ ! -x "$bin_dir/coredns" ]; then
  cat >"$work/coredns/go.mod" <<GOMOD
module local/node/coredns

go $go_version

require github.com/coredns/coredns $COREDNS_VERSION
GOMOD
  cat >"$work/coredns/main.go" <<'GO'
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
GO
  log "building coredns $COREDNS_VERSION"
  (cd "$work/coredns" && { go mod tidy -e >/dev/null 2>&1 || true; } && go build -trimpath -ldflags "-s -w" -o "$bin_dir/coredns.partial" .)
  mv "$bin_dir/coredns.partial" "$bin_dir/coredns"
fi

log "done: $bin_dir"
echo "$bin_dir"

#!/usr/bin/env bash
# Runs the test CSI driver's tests as root: go vet, the driver's gRPC tests with real tmpfs mounts, and the end-to-end
# test with the real sidecars against a real control plane (CONTROLPLANE_BIN, else hack/controlplane/build.sh;
# CSI_SKIP_E2E=1 skips it). Every mount the tests made is removed also when they fail or are interrupted.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the driver mounts tmpfs)" >&2; exit 1; }

export GOFLAGS=-mod=mod
CSI_BIN=$("$here/build.sh" | tail -1)
export CSI_BIN
if [ "${CSI_SKIP_E2E:-}" != 1 ]; then
  CONTROLPLANE_BIN=${CONTROLPLANE_BIN:-$("$repo/hack/controlplane/build.sh" | tail -1)}
  export CONTROLPLANE_BIN
fi

work=$(mktemp -d /tmp/csi-test.XXXXXX)
cleanup() {
  # CSI processes of a test that was killed before its own cleanup ran (launch.sh starts them detached).
  find "$work" -maxdepth 4 -type d -name csi-launch 2>/dev/null | while read -r state; do
    "$here/launch.sh" stop --state "$state" >/dev/null 2>&1 || true
  done
  # Whatever a crashed test left mounted under its temporary dirs, deepest first.
  awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    echo "test.sh: unmounting leftover $m" >&2
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$here"
go vet ./...
TMPDIR=$work go test -count=1 -timeout 10m "$@" ./...

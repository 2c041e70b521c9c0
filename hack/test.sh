#!/usr/bin/env bash
# make test: every check and every test, in the order of the README. The real node's binaries and images (kubelet,
# CoreDNS, the CSI sidecars, CloudNativePG's operator, the PostgreSQL and product images) are built in the background,
# at low priority, from the start of the run, and helm once the control plane is built, so that on a cold machine their
# builds overlap the checks and the tests that do not need them; the chart's tests, which need helm, run last of the
# integration tests. On a warm machine the builds only check their caches (and rebuild the product's images).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PWD/node_modules/.bin:$PATH

started=${TEST_STARTED:-$(date +%s)}
log_dir=.cache/test
mkdir -p "$log_dir"
build_log=$log_dir/node-build.log
helm_log=$log_dir/helm-build.log
phase() { echo "== $* ($(( $(date +%s) - started )) s)"; }

stack_was_up=0
hack/node/stack.sh status >/dev/null 2>&1 && stack_was_up=1
build_pid=
helm_pid=
stop_group() {
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  local rc=$?
  stop_group "$build_pid"
  stop_group "$helm_pid"
  [ "$stack_was_up" = 1 ] || hack/node/stack.sh down >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
# Waits for a background build; on failure shows the end of its log and stops the run.
await_build() {
  local rc=0
  wait "$1" || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 30 "$2" >&2
    echo "building $3 failed (exit $rc); full log: $2" >&2
    exit 1
  fi
}
trap 'exit 130' INT TERM

# Its own session, so that the cleanup can end the whole build (go, mmdebstrap, their children) at once. Its images
# (Debian packages) start at once; its Go builds wait for the control plane's, whose compiled packages they reuse.
setsid nice -n 10 hack/node/stack.sh build >"$build_log" 2>&1 &
build_pid=$!
phase "building the real node's binaries and images in the background (log: $build_log)"

phase "node $(node --version); building the control plane"
phase "control plane $(hack/controlplane/build.sh)"
# helm reuses the control plane's compiled Kubernetes packages (hack/helm/build.sh); the chart's tests wait for it.
setsid nice -n 5 hack/helm/build.sh >"$helm_log" 2>&1 &
helm_pid=$!
npm run --silent check
phase "unit tests"
# Debian's shellcheck, for the unit test of e2e/run-aks-e2e.sh (the test skips where shellcheck is missing; here it runs).
hack/ensure-debian.sh shellcheck shellcheck
npm run --silent test:unit
phase "integration tests (the chart's last: they need helm, built in the background; log: $helm_log)"
npx mocha --config test/.mocharc.integration.json --ignore 'test/integration/chart/**'
await_build "$helm_pid" "$helm_log" helm
helm_pid=
phase "the chart's integration tests"
npx mocha --extension ts --timeout 120000 --reporter spec --forbid-only 'test/integration/chart/**/*.test.ts'
phase "end-to-end scenarios on the AKS stand-in"
npx mocha --config e2e/.mocharc.json
phase "the README's first command, unattended: CI=true make demo"
CI=true node hack/demo.ts

phase "waiting for the real node's build"
await_build "$build_pid" "$build_log" "the real node"
build_pid=
phase "on a real node (kubelet, containerd, CSI resize flow, CloudNativePG): the product installed from its manifests,"
echo "== real PostgreSQL grown, the status on the Cluster; then end-to-end growth scenarios (e2e/README.md: why only these)"
hack/node/stack.sh up >/dev/null
npx mocha --config test/.mocharc.node.json
E2E_TARGET=node npx mocha --extension ts --timeout 900000 --reporter spec --forbid-only \
  --grep "${NODE_E2E_GREP:?}" e2e/scenarios/growth.test.ts
[ "$stack_was_up" = 1 ] || hack/node/stack.sh down >/dev/null
phase "leftovers"
hack/leftovers.sh --since "$started"
phase "done"

#!/usr/bin/env bash
# make test: every check and every test, in the order of the README. The real node's binaries and images (kubelet,
# CoreDNS, the CSI sidecars, CloudNativePG's operator, the PostgreSQL and product images) are built in the background,
# at low priority, from the start of the run, so that on a cold machine their builds overlap the checks and the tests
# that do not need them; on a warm one the build only checks its caches (and rebuilds the product's images).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PWD/node_modules/.bin:$PATH

started=${TEST_STARTED:-$(date +%s)}
log_dir=.cache/test
mkdir -p "$log_dir"
build_log=$log_dir/node-build.log
phase() { echo "== $* ($(( $(date +%s) - started )) s)"; }

stack_was_up=0
hack/node/stack.sh status >/dev/null 2>&1 && stack_was_up=1
build_pid=
cleanup() {
  local rc=$?
  if [ -n "$build_pid" ] && kill -0 "$build_pid" 2>/dev/null; then
    kill -TERM -- "-$build_pid" 2>/dev/null || true
    wait "$build_pid" 2>/dev/null || true
  fi
  [ "$stack_was_up" = 1 ] || hack/node/stack.sh down >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Its own session, so that the cleanup can end the whole build (go, mmdebstrap, their children) at once.
setsid nice -n 10 hack/node/stack.sh build >"$build_log" 2>&1 &
build_pid=$!
phase "building the real node's binaries and images in the background (log: $build_log)"

phase "node $(node --version); control plane $(hack/controlplane/build.sh)"
npm run --silent check
phase "unit tests"
npm run --silent test:unit
phase "helm (for the chart's tests)"
hack/helm/build.sh >/dev/null
phase "integration tests"
npm run --silent test:integration
phase "end-to-end scenarios on the AKS stand-in"
npx mocha --config e2e/.mocharc.json
phase "the README's first command, unattended: CI=true make demo"
CI=true node hack/demo.ts

phase "waiting for the real node's build"
build_rc=0
wait "$build_pid" || build_rc=$?
build_pid=
if [ "$build_rc" != 0 ]; then
  tail -n 30 "$build_log" >&2
  echo "building the real node failed (exit $build_rc); full log: $build_log" >&2
  exit 1
fi
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

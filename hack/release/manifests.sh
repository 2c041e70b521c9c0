#!/usr/bin/env bash
# Renders the manifests a release attaches: crds.yaml (every CRD) and cnpg-dynamic-storage.yaml (`kubectl kustomize
# daemonset/` with the release's agent and controller images, by digest when given one).
# Usage: hack/release/manifests.sh AGENT_IMAGE CONTROLLER_IMAGE OUTDIR
#   an image is name:tag, name@sha256:<hex> or name:tag@sha256:<hex>. KUBECTL=<path> picks kubectl (default: PATH).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ $# -eq 3 ] || { echo "usage: hack/release/manifests.sh AGENT_IMAGE CONTROLLER_IMAGE OUTDIR" >&2; exit 2; }
kubectl=${KUBECTL:-kubectl}
out=$(mkdir -p "$3" && cd "$3" && pwd)

# One kustomize images entry: the name in daemonset/ -> the given reference, split into name, tag and digest.
image_entry() {
  local from=$1 ref=$2 name tag="" digest=""
  if [[ $ref == *@* ]]; then digest=${ref#*@}; ref=${ref%%@*}; fi
  name=$ref
  if [[ ${ref##*/} == *:* ]]; then tag=${ref##*:}; name=${ref%:*}; fi
  if [[ -z $tag && -z $digest ]] || [[ -n $digest && ! $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "manifests.sh: $2 is not name:tag or name@sha256:<hex>" >&2
    exit 2
  fi
  echo "  - name: $from"
  echo "    newName: $name"
  [ -z "$tag" ] || echo "    newTag: \"$tag\""
  [ -z "$digest" ] || echo "    digest: $digest"
}

# The overlay sits inside the checkout because kustomize loads bases relative to it.
overlay=$(mktemp -d "$root/.release-overlay.XXXXXX")
trap 'rm -rf "$overlay"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - ../daemonset"
  echo "images:"
  image_entry ghcr.io/cnpg-dynamic-storage/agent "$1"
  image_entry ghcr.io/cnpg-dynamic-storage/controller "$2"
} >"$overlay/kustomization.yaml"
"$kubectl" kustomize "$overlay" >"$out/cnpg-dynamic-storage.yaml"

: >"$out/crds.yaml"
for crd in "$root"/crds/*.yaml; do
  [ -s "$out/crds.yaml" ] && echo "---" >>"$out/crds.yaml"
  cat "$crd" >>"$out/crds.yaml"
done
echo "$out/crds.yaml"
echo "$out/cnpg-dynamic-storage.yaml"

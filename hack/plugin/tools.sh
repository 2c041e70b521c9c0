#!/usr/bin/env bash
# Builds (once) the tools that make the self-contained plugin executable into a cache keyed by their versions, and
# prints two lines: the esbuild binary and the Python interpreter that has LIEF.
# esbuild builds from its Go module (github.com/evanw/esbuild) through the Go module proxy; LIEF installs from PyPI into a
# virtual environment. ESBUILD=<path> or SEA_PYTHON=<python with lief> use tools found elsewhere instead.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${PLUGIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/plugin-tools}
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }  # macOS has only shasum
key=$(cat "$here/versions.env" "$here/tools.sh" | sha256 | cut -c1-16)
dir="$cache_root/$key"
log() { echo "plugin-tools: $*" >&2; }

esbuild=${ESBUILD:-$dir/bin/esbuild}
if [ ! -x "$esbuild" ]; then
  command -v go >/dev/null || { echo "tools.sh: Go is needed to build esbuild (or set ESBUILD)" >&2; exit 1; }
  log "building esbuild $ESBUILD_VERSION"
  mkdir -p "$dir/src" "$dir/bin"
  cat >"$dir/src/go.mod" <<GOMOD
module local/plugin-tools

go 1.23

require github.com/evanw/esbuild $ESBUILD_VERSION
GOMOD
  cat >"$dir/src/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/evanw/esbuild/cmd/esbuild"
GO
  (cd "$dir/src" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
   cd "$dir/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$dir/bin/esbuild.partial" github.com/evanw/esbuild/cmd/esbuild)
  mv "$dir/bin/esbuild.partial" "$dir/bin/esbuild"
fi

python=${SEA_PYTHON:-$dir/venv/bin/python}
if ! "$python" -c 'import lief' 2>/dev/null; then
  command -v python3 >/dev/null || { echo "tools.sh: python3 is needed to install LIEF (or set SEA_PYTHON)" >&2; exit 1; }
  log "installing LIEF $LIEF_VERSION"
  rm -rf "$dir/venv"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "lief==$LIEF_VERSION"
  python="$dir/venv/bin/python"
fi

echo "$esbuild"
echo "$python"

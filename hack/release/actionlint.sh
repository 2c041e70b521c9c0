#!/usr/bin/env bash
# Lints the GitHub workflows with actionlint, built once from its Go module (github.com/rhysd/actionlint, through the Go
# module proxy) into a cache keyed by its version. Arguments go to actionlint (default: every file in .github/workflows).
# Usage: hack/release/actionlint.sh [--path] [actionlint arguments...]   --path: print the binary's path and stop.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${ACTIONLINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cnpg-dynamic-storage/actionlint}
key=$(cat "$here/versions.env" "$here/actionlint.sh" | sha256sum | cut -c1-16)
bin="$cache_root/$key/bin/actionlint"

if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "actionlint.sh: Go is needed to build actionlint" >&2; exit 1; }
  echo "actionlint: building $ACTIONLINT_VERSION" >&2
  src="$cache_root/$key/src"
  mkdir -p "$src" "$(dirname "$bin")"
  cat >"$src/go.mod" <<GOMOD
module local/actionlint

go 1.24

require github.com/rhysd/actionlint $ACTIONLINT_VERSION
GOMOD
  cat >"$src/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
GO
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
   cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$bin.partial" github.com/rhysd/actionlint/cmd/actionlint)
  mv "$bin.partial" "$bin"
fi

if [ "${1:-}" = --path ]; then
  echo "$bin"
  exit 0
fi
cd "$root"
exec "$bin" "$@"

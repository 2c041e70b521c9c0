#!/usr/bin/env bash
# Makes sure shellcheck is installed (Debian's `shellcheck` package), for the unit test that checks e2e/run-aks-e2e.sh,
# the one script users run against their own cloud. Installs the package when it is missing (needs root).
set -euo pipefail
if command -v shellcheck >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-shellcheck: shellcheck is missing; install Debian's package: sudo apt-get install shellcheck" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends shellcheck >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends shellcheck >/dev/null; }
command -v shellcheck >/dev/null

#!/usr/bin/env bash
# Makes sure the commands given are installed, from the Debian package given; installs it when any is missing (needs
# root). Prints what to install when it cannot.
#
#   hack/ensure-debian.sh <package> <command>...
set -euo pipefail
package=${1:?usage: ensure-debian.sh <package> <command>...}
shift
present() { local c; for c in "$@"; do command -v "$c" >/dev/null || return 1; done; }
if present "$@"; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-debian: $* missing; install Debian's package: sudo apt-get install $package" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "$package" >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$package" >/dev/null; }
present "$@"

#!/usr/bin/env bash
# Makes sure Prometheus and promtool are installed (Debian's `prometheus` package), for the test of
# `kubectl cnpg storage simulate --prometheus` against a real Prometheus. Installs the package when either is missing
# (needs root); on a host run by systemd, the service the package enables is stopped and disabled again, as the test
# starts its own server on a private port and data directory.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then exit 0; fi
"$here/ensure-debian.sh" prometheus prometheus promtool
if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi

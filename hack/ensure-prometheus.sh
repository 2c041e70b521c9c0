#!/usr/bin/env bash
# Makes sure Prometheus and promtool are installed (Debian's `prometheus` package), for the test of
# `kubectl cnpg storage simulate --prometheus` against a real Prometheus. Installs the package when either is missing
# (needs root); on a host run by systemd, the service the package enables is stopped and disabled again, as the test
# starts its own server on a private port and data directory.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-prometheus: prometheus and promtool are missing; install Debian's package: sudo apt-get install prometheus" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends prometheus >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; }
if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
command -v prometheus >/dev/null && command -v promtool >/dev/null

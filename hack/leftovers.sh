#!/usr/bin/env bash
# Lists what tests may have left behind (control-plane processes, simulator mounts, temp dirs) and exits 1 if anything
# is there. With --clean it also removes them. Tests clean up after themselves; this is the check that they did.
set -uo pipefail
clean=false
[ "${1:-}" = "--clean" ] && clean=true
found=0

pids=$(pgrep -f 'cnpg-ds-controlplane-|cnpg-ds-sim|dist/agent/main|agent/main.ts|controller/main.ts' 2>/dev/null | grep -vx "$$" || true)
if [ -n "$pids" ]; then
  found=1
  echo "leftover processes:"; ps -o pid=,args= -p $pids | cut -c1-160
  $clean && kill -9 $pids 2>/dev/null
fi
mounts=$(awk '$2 ~ /cnpg-ds-/ {print $2}' /proc/mounts | sort -r)
if [ -n "$mounts" ]; then
  found=1
  echo "leftover mounts:"; echo "$mounts"
  $clean && for m in $mounts; do umount -l "$m" 2>/dev/null; done
fi
dirs=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'cnpg-ds-*' 2>/dev/null)
if [ -n "$dirs" ]; then
  found=1
  echo "leftover temp dirs:"; echo "$dirs"
  $clean && rm -rf $dirs
fi
exit $found

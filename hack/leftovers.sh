#!/usr/bin/env bash
# Lists what tests may have left behind (control-plane processes, simulator and agent mounts, temp dirs) and exits 1 if
# anything is there. Tests clean up after themselves; this is the check that they did.
#   hack/leftovers.sh                 everything that looks like a test leftover
#   hack/leftovers.sh --since EPOCH   only what was started or created at or after EPOCH (the start of this test run),
#                                     so that leftovers of an earlier, interrupted run do not fail this one
#   hack/leftovers.sh --clean         also remove what it finds
set -uo pipefail
clean=false
since=0
while [ $# -gt 0 ]; do
  case "$1" in
    --clean) clean=true ;;
    --since) since="$2"; shift ;;
    *) echo "usage: hack/leftovers.sh [--since EPOCH] [--clean]" >&2; exit 2 ;;
  esac
  shift
done
now=$(date +%s)
found=0

recent_pids=()
for pid in $(pgrep -f 'cnpg-ds-controlplane-|cnpg-ds-sim|dist/agent/main|agent/main.ts|controller/main.ts' 2>/dev/null); do
  [ "$pid" = "$$" ] && continue
  age=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ') || continue
  [ -n "$age" ] && [ $((now - age)) -ge "$since" ] && recent_pids+=("$pid")
done
if [ ${#recent_pids[@]} -gt 0 ]; then
  found=1
  echo "leftover processes:"; ps -o pid=,args= -p "${recent_pids[@]}" | cut -c1-160
  $clean && kill -9 "${recent_pids[@]}" 2>/dev/null
fi

dirs=()
for dir in "${TMPDIR:-/tmp}"/cnpg-ds-*; do
  [ -e "$dir" ] || continue
  [ "$(stat -c %Y "$dir")" -ge "$since" ] && dirs+=("$dir")
done
mounts=$(for dir in "${dirs[@]}"; do awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts; done | sort -r)
if [ -n "$mounts" ]; then
  found=1
  echo "leftover mounts ($(echo "$mounts" | wc -l)):"; echo "$mounts" | head -10
  $clean && for m in $mounts; do umount -l "$m" 2>/dev/null; done
fi
if [ ${#dirs[@]} -gt 0 ]; then
  found=1
  echo "leftover temp dirs:"; printf '%s\n' "${dirs[@]}"
  $clean && rm -rf "${dirs[@]}"
fi
exit $found

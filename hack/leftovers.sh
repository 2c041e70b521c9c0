#!/usr/bin/env bash
# Lists what tests may have left behind (control-plane processes, simulator and agent mounts, temp dirs, and the real
# node's processes, mounts, network namespaces, bridge, iptables chains and cgroups) and exits 1 if anything is there. Tests clean up after themselves; this is the check that they did.
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
# The real node (hack/node/stack.sh): a stack that was already up before this run started is not this run's leftover.
node_stack=/var/lib/cnpg-ds-stack
stack_started=$(stat -c %Y "$node_stack" /var/lib/cnpg-ds-stack.host-state 2>/dev/null | sort -n | head -1)
if [ -z "$stack_started" ] || [ "$stack_started" -ge "$since" ]; then
  node_found=()
  pids=$(pgrep -f -- "$node_stack/" 2>/dev/null | grep -vx "$$" || true)
  [ -n "$pids" ] && node_found+=("processes (kubelet, containerd and its shims, kube-proxy, coredns, control plane):" "$(ps -o pid=,args= -p $(echo $pids | tr ' ' ',') | cut -c1-160)")
  node_mounts=$(awk -v a=/var/lib/kubelet -v b="$node_stack" '$2 == a || index($2, a "/") == 1 || index($2, b "/") == 1 {print $2}' /proc/mounts)
  [ -n "$node_mounts" ] && node_found+=("mounts ($(echo "$node_mounts" | wc -l)):" "$(echo "$node_mounts" | head -10)")
  ip link show cnpgds0 >/dev/null 2>&1 && node_found+=("network bridge cnpgds0")
  chains=$(for t in filter nat mangle; do iptables -w -t $t -S 2>/dev/null | awk -v t=$t '$1 == "-N" && $2 ~ /^(KUBE-|CNI-|CNPG-DS-)/ {print t "/" $2}'; done | tr '\n' ' ')
  [ -n "$chains" ] && node_found+=("iptables chains: $chains")
  cgroups=$(ls -d /sys/fs/cgroup/*/cnpg-ds-stack 2>/dev/null | tr '\n' ' ')
  [ -n "$cgroups" ] && node_found+=("cgroups: $cgroups")
  [ -e "$node_stack" ] && node_found+=("state dir $node_stack")
  if [ ${#node_found[@]} -gt 0 ]; then
    found=1
    echo "leftovers of the real node (hack/node/stack.sh):"; printf '  %s\n' "${node_found[@]}"
    $clean && "$(dirname "$0")/node/stack.sh" down
  fi
fi
exit $found

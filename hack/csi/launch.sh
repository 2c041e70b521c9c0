#!/usr/bin/env bash
# Starts and stops the test CSI driver (csi-tmpfs) and its sidecars (csi-provisioner, csi-resizer) as host processes
# next to a kubelet, and applies the CSIDriver object and StorageClasses (storageclasses.yaml).
#
#   hack/csi/launch.sh start --kubeconfig FILE [--kubelet-root /var/lib/kubelet] [--state DIR] [--bin DIR]
#                            [--node-id NAME] [--no-sidecars] [--volumes DIR] [--no-apply]
#   hack/csi/launch.sh stop  [--state DIR] [--keep-volumes]
#   hack/csi/launch.sh status [--state DIR]
#
# --state holds pid files, logs (<state>/logs/*.log) and, unless --volumes says otherwise, the driver's state dir
# (<state>/volumes: volume records, tmpfs mount points, faults.json). Several nodes: one `start` per kubelet, each with
# its own --state and --kubelet-root, the same --volumes, and --no-sidecars on all but one.
# `stop` stops the processes (pid files, checked against /proc/<pid>/exe) and, unless --keep-volumes, unmounts every
# volume of the state dir (also pods' bind mounts of them) and deletes <state>. Both are idempotent.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
DRIVER_NAME=tmpfs.csi.test.cnpg.io

cmd=${1:-}
[ $# -gt 0 ] && shift
kubeconfig="" kubelet_root=/var/lib/kubelet state=/var/lib/cnpg-ds-csi bin="" node_id="" sidecars=1 volumes="" apply=1 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --kubeconfig) kubeconfig=$2; shift 2 ;;
    --kubelet-root) kubelet_root=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --node-id) node_id=$2; shift 2 ;;
    --volumes) volumes=$2; shift 2 ;;
    --no-sidecars) sidecars=0; shift ;;
    --no-apply) apply=0; shift ;;
    --keep-volumes) keep=1; shift ;;
    *) echo "launch.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# The volumes dir of a started instance is recorded, so that stop needs only --state.
[ -n "$volumes" ] || volumes=$(cat "$state/volumes-dir" 2>/dev/null || echo "$state/volumes")
log() { echo "csi: $*" >&2; }

# pid_alive <name>: the process of <state>/<name>.pid is running and is still our binary.
pid_alive() {
  local f="$state/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  # Just after the launch the process may still be setsid, about to exec the binary.
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in */"$1"|*/"$1 (deleted)"|*/setsid) return 0 ;; esac
  return 1
}

stop_one() {
  local name=$1 pid i
  pid_alive "$name" || { rm -f "$state/$name.pid"; return 0; }
  pid=$(cat "$state/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do pid_alive "$name" || break; sleep 0.1; done
  if pid_alive "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
  for i in $(seq 20); do pid_alive "$name" || break; sleep 0.1; done
  rm -f "$state/$name.pid"
}

# launch <name> <args...>: a detached host process, logging to <state>/logs/<name>.log.
launch() {
  local name=$1; shift
  if pid_alive "$name"; then log "$name already running (pid $(cat "$state/$name.pid"))"; return 0; fi
  setsid "$bin/$name" "$@" </dev/null >>"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
  log "$name started (pid $!): $bin/$name $*"
}

find_kubectl() {
  if [ -n "${KUBECTL:-}" ]; then echo "$KUBECTL"; return; fi
  if command -v kubectl >/dev/null; then command -v kubectl; return; fi
  echo "$("$repo/hack/controlplane/build.sh" | tail -1)/kubectl"
}

start() {
  [ "$(id -u)" = 0 ] || { log "run as root (the driver mounts tmpfs)"; exit 1; }
  [ -n "$kubeconfig" ] || [ "$sidecars" = 0 ] || { log "--kubeconfig is needed"; exit 2; }
  bin=${bin:-$("$here/build.sh" | tail -1)}
  node_id=${node_id:-$(hostname)}
  mkdir -p "$state/logs" "$volumes"
  echo "$bin" >"$state/bin"
  echo "$volumes" >"$state/volumes-dir"
  local sock="$kubelet_root/plugins/$DRIVER_NAME/csi.sock"
  launch csi-tmpfs --node-id="$node_id" --kubelet-dir="$kubelet_root" --state-dir="$volumes"
  local i
  for i in $(seq 100); do [ -S "$sock" ] && break; pid_alive csi-tmpfs || break; sleep 0.1; done
  [ -S "$sock" ] || { log "csi-tmpfs did not open $sock: $(tail -5 "$state/logs/csi-tmpfs.log")"; exit 1; }
  if [ "$sidecars" = 1 ]; then
    launch csi-provisioner --csi-address="$sock" --kubeconfig="$kubeconfig" --leader-election=false \
      --extra-create-metadata --timeout=30s --retry-interval-start=500ms --retry-interval-max=10s --worker-threads=10 --v=3
    launch csi-resizer --csi-address="$sock" --kubeconfig="$kubeconfig" --leader-election=false \
      --handle-volume-inuse-error=false --timeout=10s --retry-interval-start=500ms --retry-interval-max=10s --workers=10 --v=3
  fi
  if [ "$apply" = 1 ] && [ -n "$kubeconfig" ]; then
    "$(find_kubectl)" --kubeconfig="$kubeconfig" apply -f "$here/storageclasses.yaml" >&2
  fi
  sleep 1
  for i in csi-tmpfs csi-provisioner csi-resizer; do
    [ "$sidecars" = 1 ] || [ "$i" = csi-tmpfs ] || continue
    pid_alive "$i" || { log "$i exited: $(tail -5 "$state/logs/$i.log")"; exit 1; }
  done
  log "running: driver $DRIVER_NAME on node $node_id, CSI socket $sock, volumes in $volumes, logs in $state/logs"
}

stop() {
  stop_one csi-provisioner
  stop_one csi-resizer
  stop_one csi-tmpfs
  if [ "$keep" = 0 ] && [ -d "$state" ]; then
    local driver_bin=${bin:-}
    [ -n "$driver_bin" ] || driver_bin=$(cat "$state/bin" 2>/dev/null || true)
    if [ -x "$driver_bin/csi-tmpfs" ]; then
      "$driver_bin/csi-tmpfs" cleanup --state-dir="$volumes" --remove
    else
      # No binary: unmount whatever is mounted under the state dir, deepest first.
      awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
    fi
    rm -rf --one-file-system "$state"
  fi
}

status() {
  local rc=0 i
  for i in csi-tmpfs csi-provisioner csi-resizer; do
    if pid_alive "$i"; then echo "$i running (pid $(cat "$state/$i.pid"))"; else echo "$i not running"; rc=1; fi
  done
  return $rc
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
